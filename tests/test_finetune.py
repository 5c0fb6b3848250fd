"""RL fine-tuning after distillation (training/qpd/finetune.py): how it is configured, named,
kept apart from older records, and that its KL term pulls the student towards the teacher."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from training.errors import FlowError
from training.qpd.config import RECIPE_DEFAULTS, load_qpd_config, same_computation
from training.qpd.finetune import FinetuneConfig, _teacher_kl, finetune
from training.qpd.distill import FINETUNE_CURVE_FILE, distill
from training.qpd.replay import Collector
from training.teacher.policy import TeacherPolicy


def test_finetune_settings_are_named_validated_and_apart_from_old_records(tmp_path):
    cfg = load_qpd_config(env_id="HalfCheetah-v5", weight_bits=3, finetune={"steps": 1000, "kl_coef": 0.5})
    assert isinstance(cfg.finetune, FinetuneConfig) and cfg.finetune.kl_coef == 0.5
    assert cfg.run_name() == "qpd-2x32-w3a3-ft-s0"
    plain = load_qpd_config(env_id="HalfCheetah-v5", weight_bits=3)
    old = {k: v for k, v in plain.effective_dict().items() if k not in RECIPE_DEFAULTS}
    assert same_computation(old, plain) and not same_computation(old, cfg)
    path = tmp_path / "ft.yaml"
    path.write_text("finetune:\n  steps: 200000\n  lr: 1e-4\n")
    assert load_qpd_config(path).finetune == FinetuneConfig(steps=200_000, lr=1e-4)


@pytest.mark.parametrize("finetune, match", [
    ({"stepz": 10}, "unknown finetune setting 'stepz'; known: steps"),
    ({"steps": 0}, "finetune.steps must be positive"),
    ({"clip": 1.5}, "clip must be in"),
])
def test_bad_finetune_settings_are_one_sentence(finetune, match):
    with pytest.raises(FlowError, match=match):
        load_qpd_config(finetune=finetune)


def _kl_to_teacher(student, teacher, states) -> float:
    with torch.no_grad():
        return float(_teacher_kl(student, student.actor(torch.as_tensor(states)), teacher.targets(states)))


def test_finetuning_runs_resumes_and_its_kl_term_pulls_towards_the_teacher(tmp_path, cartpole_teacher):
    """A short CartPole run: the stage is logged, checkpointed and loaded again instead of
    retrained; with a dominant KL weight, PPO's updates bring the student closer to the teacher."""
    teacher_dir = cartpole_teacher
    cfg = load_qpd_config(env_id="CartPole-v1", weight_bits=3, updates=1000, eval_episodes=3, stage_eval_episodes=2,
                          teacher_states=4000, agreement_states=500, schedule=[3],
                          finetune={"steps": 2048, "rollout": 64, "kl_coef": 50.0, "critic_warmup": 0, "lr": 1e-3})
    run = tmp_path / "run"
    results = distill(cfg, teacher_dir, run, quiet=True)
    entry = results["stages"][-1]
    assert entry["stage"] == "finetune" and entry["env_steps"] == 2048
    curve = json.loads((run / FINETUNE_CURVE_FILE).read_text())
    assert len(curve) == 4 and all(row["policy_updates"] for row in curve)

    teacher = TeacherPolicy.load(teacher_dir, "CartPole-v1")
    states = Collector("CartPole-v1", 4, 123).collect(teacher.sample, 800)
    from training.qpd.distill import load_student

    distilled, _ = load_student(run / "student-stage0-2x32-w3a3.pt")
    before = _kl_to_teacher(distilled, teacher, states)
    tuned, _ = finetune(distilled, teacher, "CartPole-v1", cfg.finetune, n_envs=4, seed=1, critic_hidden=[16],
                        quiet=True)
    assert _kl_to_teacher(tuned, teacher, states) < before

    # Resumed: the fine-tuned checkpoint is loaded, not trained again.
    (run / "results.json").unlink()
    import training.qpd.distill as distill_module

    def refuse(*args, **kwargs):
        raise AssertionError("fine-tuned again instead of loading the checkpoint")

    original = distill_module.finetune
    distill_module.finetune = refuse
    try:
        again = distill(cfg, teacher_dir, run, quiet=True)
    finally:
        distill_module.finetune = original
    assert again["stages"][-1] == entry
