"""The committed teachers: each agrees with its table's teacher record, episode for episode, and
commands that need the default teacher use it without training one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import REPO
from training.teacher.committed import COMMITTED_ROOT, committed_teachers, env_dir_name, restore_committed_teacher

TEACHERS = sorted(p for p in COMMITTED_ROOT.glob("*/*") if (p / "results.json").is_file())


def _table_teacher(env_id: str) -> dict | None:
    table = REPO / "docs" / "results" / env_dir_name(env_id) / "qpd_table.json"
    return json.loads(table.read_text())["teacher"] if table.exists() else None


def test_there_are_committed_teachers_and_they_are_small():
    assert TEACHERS, f"no committed teacher under {COMMITTED_ROOT}"
    for folder in TEACHERS:
        assert sum(f.stat().st_size for f in folder.iterdir()) < 8 * 2**20, folder


@pytest.mark.parametrize("folder", TEACHERS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_committed_teacher_is_its_tables_teacher(folder: Path):
    """The results the committed teacher was evaluated with are the table's teacher record, every
    episode; and re-evaluating the committed weights reproduces them. All episodes at once: they
    run as one batch, and MuJoCo amplifies the last-bit differences another batch size gives."""
    from training.evaluation import evaluate
    from training.teacher.policy import TeacherPolicy

    results = json.loads((folder / "results.json").read_text())
    env_id = results["env_id"]
    record = _table_teacher(env_id)
    assert record is not None, f"{folder} has no table under docs/results"
    assert Path(record["run"]).name == folder.name, "the table was made with another of this environment's teachers"
    if "returns" in record:  # tables made before records held per-episode returns hold mean and std only
        assert results["seeds"] == record["seeds"] and results["returns"] == record["returns"]
    assert results["mean_return"] == pytest.approx(record["mean_return"], rel=1e-12)
    assert results["std_return"] == pytest.approx(record["std_return"], rel=1e-12)
    teacher = TeacherPolicy.load(folder, env_id)
    if "weights_sha256" in record:  # tables made before hold returns only, which a retrained teacher can match
        assert teacher.fingerprint() == record["weights_sha256"], "the committed teacher is not the table's"
    again = evaluate(teacher, env_id, results["seeds"])
    assert again.returns == pytest.approx(results["returns"], rel=1e-9)


def test_the_default_teacher_comes_from_the_committed_one(tmp_path, monkeypatch):
    from training.teacher.policy import TeacherPolicy
    from training.teacher.train import ensure_teacher

    folder = TEACHERS[0]
    env_id = json.loads((folder / "results.json").read_text())["env_id"]
    monkeypatch.setenv("QPD_RUNS", str(tmp_path))
    path = ensure_teacher(env_id, None)
    assert path == tmp_path / env_id / folder.name and committed_teachers(env_id)
    assert (path / "results.json").read_bytes() == (folder / "results.json").read_bytes()
    TeacherPolicy.load(path, env_id)
    # Once restored it is the run folder's own: nothing is copied again.
    assert not restore_committed_teacher(env_id, path)
    # Outside the runs root a teacher folder is the user's: never written.
    assert not restore_committed_teacher(env_id, tmp_path / "elsewhere" / folder.name)


def test_the_fingerprint_names_the_weights_not_the_file():
    """Two loads of one teacher share a fingerprint; one changed weight, or changed observation
    statistics, give another (what tells a retrained teacher from its table's when both return 500)."""
    import dataclasses

    import torch

    from training.teacher.policy import TeacherPolicy

    folder = next(p for p in TEACHERS if (p / "obs_normalizer.npz").is_file())
    env_id = json.loads((folder / "results.json").read_text())["env_id"]
    teacher = TeacherPolicy.load(folder, env_id)
    first = teacher.fingerprint()
    assert TeacherPolicy.load(folder, env_id).fingerprint() == first and len(first) == 64
    teacher.normalizer = dataclasses.replace(teacher.normalizer, clip=teacher.normalizer.clip + 1)
    assert teacher.fingerprint() != first
    other = TeacherPolicy.load(folder, env_id)
    with torch.no_grad():
        next(other.model.policy.parameters()).view(-1)[0] += 1e-6
    assert other.fingerprint() != first


def test_targets_in_several_passes_are_the_targets_of_one_pass():
    """The distillation memory's targets, computed a few frames at a time to bound memory, are the
    one-pass targets (the value statistics and the log-std start come from them)."""
    import numpy as np
    import torch

    from training.envs import make_env
    from training.teacher.policy import TeacherPolicy

    folder = COMMITTED_ROOT / "MinAtar-SpaceInvaders-v1" / "ppo-teacher-s0"
    teacher = TeacherPolicy.load(folder, "MinAtar/SpaceInvaders-v1")
    env = make_env("MinAtar/SpaceInvaders-v1")
    obs, _ = env.reset(seed=0)
    frames = [obs]
    for step in range(36):
        obs, _, done, cut, _ = env.step(step % env.action_space.n)
        frames.append(env.reset(seed=step)[0] if done or cut else obs)
    frames = np.asarray(frames, dtype=np.float32)
    whole, batched = teacher.targets(frames), teacher.targets(frames, batch=5)
    assert whole.keys() == batched.keys() and len(batched["value"]) == len(frames)
    for key in whole:
        torch.testing.assert_close(batched[key], whole[key], rtol=1e-5, atol=1e-5)
