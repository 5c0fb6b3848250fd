"""A short QPD distillation: the run folder, improvement, resume, and refusals."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from training.qpd.distill import STUDENT_FILE, StudentPolicy, agreement, distill, load_student, other_run
from training.errors import FlowError
from training.evaluation import eval_seeds, evaluate
from training.qpd.config import load_qpd_config
from training.qpd.replay import Collector
from training.students.student import QuantStudent, StudentSpec
from training.teacher.policy import TeacherPolicy


def test_run_folder_has_a_checkpoint_per_stage_and_the_record(short_qpd_student):
    run_dir, results = short_qpd_student
    names = {p.name for p in run_dir.iterdir()}
    assert {"student-stage0-2x16-w4a4.pt", "student-stage1-2x16-w2a2.pt", STUDENT_FILE, "results.json",
            "config.yaml", "distill_curve.csv", "distill_curve.png", "stages.json"} <= names
    assert results["student"] == "2x16-w2a2" and len(results["stages"]) == 2
    assert results["size"]["ratio"] == pytest.approx(results["size"]["student"]["total_bits"] / results["size"]["teacher"]["total_bits"])
    assert len(results["returns"]) == 5 and results["seeds"] == eval_seeds(5)


def test_short_distillation_improves_the_student(short_qpd_student, cartpole_teacher):
    run_dir, results = short_qpd_student
    teacher = TeacherPolicy.load(cartpole_teacher)
    states = Collector("CartPole-v1", 4, 55_000).collect(teacher.sample, 2000)
    torch.manual_seed(0)
    untrained = QuantStudent(StudentSpec(4, 2, True, (16, 16), 2, 2))
    untrained.train()
    untrained(torch.as_tensor(states[:256]))
    before_return = evaluate(StudentPolicy(untrained), "CartPole-v1", eval_seeds(5)).mean
    trained, _ = load_student(run_dir / STUDENT_FILE)
    assert agreement(trained, teacher, states) > max(agreement(untrained, teacher, states), 0.8)
    assert results["mean_return"] > before_return + 100


def test_a_run_folder_of_another_teacher_is_not_reused(short_qpd_student, cartpole_teacher, tiny_teacher, tmp_path):
    """The run records its teacher's weight fingerprint: a retrained teacher in the same folder, whose
    returns may well match, neither reuses nor resumes the old teacher's student."""
    run_dir, results = short_qpd_student
    fingerprint = TeacherPolicy.load(cartpole_teacher).fingerprint()
    assert results["teacher"]["weights_sha256"] == fingerprint
    assert __import__("yaml").safe_load((run_dir / "config.yaml").read_text())["teacher_sha256"] == fingerprint
    copy = tmp_path / "other-teacher"
    shutil.copytree(run_dir, copy)
    config = __import__("yaml").safe_load((copy / "config.yaml").read_text())
    with pytest.raises(FlowError, match="holds a student of another teacher"):
        distill(load_qpd_config(**config["qpd"]), tiny_teacher, copy, quiet=True)
    # What make demo asks before it distils again (with FORCE) rather than fail.
    cfg = load_qpd_config(**config["qpd"])
    assert other_run(copy, cfg, fingerprint) is None
    assert other_run(copy, cfg, TeacherPolicy.load(tiny_teacher).fingerprint()).startswith("a student of another teacher")


def test_student_evaluates_the_same_twice(short_qpd_student):
    run_dir, results = short_qpd_student
    student, _ = load_student(run_dir / STUDENT_FILE)
    assert evaluate(StudentPolicy(student), "CartPole-v1", eval_seeds(5)).returns == results["returns"]


def test_resume_loads_finished_stages(short_qpd_student, cartpole_teacher, tmp_path, caplog):
    run_dir, results = short_qpd_student
    copy = tmp_path / "resumed"
    shutil.copytree(run_dir, copy)
    for name in (STUDENT_FILE, "results.json", "student-stage1-2x16-w2a2.pt"):
        (copy / name).unlink()
    config = json.loads(json.dumps(__import__("yaml").safe_load((copy / "config.yaml").read_text())))
    cfg = load_qpd_config(**config["qpd"])
    with caplog.at_level("INFO", logger="training.qpd.distill"):
        again = distill(cfg, cartpole_teacher, copy, quiet=True)
    assert "stage 0 (2x16-w4a4) loaded" in caplog.text
    assert (copy / "student-stage1-2x16-w2a2.pt").exists() and again["updates"] == results["updates"]
    assert [s["label"] for s in again["stages"]] == ["2x16-w4a4", "2x16-w2a2"]  # the loaded stage is kept


def test_another_config_in_the_same_folder_is_refused(short_qpd_student, cartpole_teacher):
    run_dir, _ = short_qpd_student
    with pytest.raises(FlowError, match="another config"):
        distill(load_qpd_config(env_id="CartPole-v1", updates=9999), cartpole_teacher, run_dir, quiet=True)


def test_teacher_of_another_environment_is_refused(cartpole_teacher, tmp_path):
    with pytest.raises(FlowError, match="holds a policy for CartPole-v1, not for Acrobot-v1"):
        distill(load_qpd_config(env_id="Acrobot-v1"), cartpole_teacher, tmp_path / "x", quiet=True)


def test_corrupt_student_checkpoint(tmp_path):
    path = tmp_path / "student.pt"
    path.write_bytes(b"\x00garbage")
    with pytest.raises(FlowError, match="corrupt"):
        load_student(path)
    with pytest.raises(FlowError, match="does not exist"):
        load_student(tmp_path / "none.pt")


def test_student_policy_clips_continuous_actions():
    student = QuantStudent(StudentSpec(3, 1, False, (8,), 4, 4))
    student.train()
    student(torch.randn(256, 3) * 50)
    with torch.no_grad():
        student.actor_out.weight.fill_(5.0)
    actions = StudentPolicy(student, np.array([-2.0]), np.array([2.0]))(np.random.default_rng(0).normal(size=(64, 3)).astype("float32") * 50)
    assert actions.min() >= -2.0 and actions.max() <= 2.0
