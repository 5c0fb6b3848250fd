"""Loading runs no code: a student checkpoint or a teacher zip carrying a ``__reduce__`` payload is not
executed; a damaged results.json is one sentence before make eval evaluates anything."""

from __future__ import annotations

import base64
import io
import json
import pickle
import shutil
import zipfile
from pathlib import Path

import pytest

from tests.conftest import run_cli
from training.errors import FlowError


class Payload:
    """Unpickling this would create ``marker``: the proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_a_real_student_loads_weights_only(short_qpd_student):
    from training.qpd.distill import STUDENT_FILE, load_student

    student, state = load_student(short_qpd_student[0] / STUDENT_FILE)
    assert student.spec.discrete and "state_dict" in state


def test_a_student_checkpoint_with_a_payload_is_refused_unread(short_qpd_student, tmp_path):
    import torch

    from training.qpd.distill import STUDENT_FILE, load_student

    run = tmp_path / "run"
    shutil.copytree(short_qpd_student[0], run)
    marker = tmp_path / "payload-ran"
    state = torch.load(run / STUDENT_FILE, weights_only=True)
    torch.save({**state, "env_id": Payload(marker)}, run / STUDENT_FILE)
    with pytest.raises(FlowError, match="holds objects other than tensors and plain data, so it was refused unread"):
        load_student(run / STUDENT_FILE)
    assert not marker.exists()
    done = run_cli("training", "eval", str(run), "--episodes", "1")  # make eval RUN=<run>
    assert done.returncode == 2 and "refused unread" in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and not marker.exists()


def test_a_teacher_zip_with_a_payload_loads_without_running_it(tiny_teacher, tmp_path):
    """Every pickled entry of an SB3 zip is replaced by what config.yaml and the environment say
    (custom_objects), so a payload in one is never unpickled; the teacher acts as before."""
    import numpy as np

    from training.teacher.policy import TEACHER_FILE, TeacherPolicy

    run = tmp_path / "teacher"
    shutil.copytree(tiny_teacher, run)
    marker = tmp_path / "payload-ran"
    src = run / TEACHER_FILE
    with zipfile.ZipFile(src) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    data = json.loads(members["data"])
    poisoned = base64.b64encode(pickle.dumps(Payload(marker))).decode()
    for key in ("policy_kwargs", "observation_space", "lr_schedule"):
        data[key] = {":type:": "<class 'dict'>", ":serialized:": poisoned}
    members["data"] = json.dumps(data).encode()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    src.write_bytes(buf.getvalue())
    teacher = TeacherPolicy.load(run)
    assert not marker.exists()
    reference = TeacherPolicy.load(tiny_teacher)
    obs = np.random.default_rng(0).normal(size=(64, 4)).astype(np.float32)
    np.testing.assert_array_equal(teacher.act(obs), reference.act(obs))


@pytest.mark.parametrize("content, expected", [
    ('{"seeds": [1000], "ret', "not valid JSON"),
    ('{"seeds": [1000], "returns": ["a"], "n_episodes": 1}', "'returns.0'"),
    ('[1, 2]', "valid"),
])
def test_a_corrupt_results_json_is_one_sentence_before_evaluating(tiny_teacher, tmp_path, content, expected):
    run = tmp_path / "teacher"
    shutil.copytree(tiny_teacher, run)
    (run / "results.json").write_text(content)
    done = run_cli("training", "eval", str(run), "--episodes", "1")
    assert done.returncode == 2 and "results.json is corrupt" in done.stderr and expected in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and "evaluating" not in done.stdout + done.stderr
