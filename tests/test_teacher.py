"""Teacher training: run folder contents, determinism, resume after an interruption."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from training.evaluation import eval_seeds, evaluate
from training.teacher.policy import TeacherPolicy
from training.teacher.train import TeacherCallback, train_teacher


def test_run_folder_holds_everything_design_section_3_names(tiny_teacher: Path):
    names = {p.name for p in tiny_teacher.iterdir()}
    assert {"config.yaml", "teacher.zip", "results.json", "learning_curve.csv", "learning_curve.png", "train.log"} <= names
    assert "checkpoint" not in names and not any(n.endswith(".tmp") for n in names)
    config = yaml.safe_load((tiny_teacher / "config.yaml").read_text())
    assert config["kind"] == "teacher" and config["env_id"] == "CartPole-v1" and config["format_version"] == 1
    assert config["hyperparams"]["n_timesteps"] == 2048
    results = json.loads((tiny_teacher / "results.json").read_text())
    assert results["seeds"] == [1000, 1001, 1002] and len(results["returns"]) == 3
    assert results["train_timesteps"] == 2048


def test_evaluating_a_saved_teacher_twice_gives_the_same_returns(tiny_teacher: Path):
    stored = json.loads((tiny_teacher / "results.json").read_text())
    teacher = TeacherPolicy.load(tiny_teacher)
    again = evaluate(teacher, "CartPole-v1", eval_seeds(3))
    assert again.returns == stored["returns"]


def test_a_trained_run_is_not_trained_again(tiny_teacher: Path, capsys):
    before = (tiny_teacher / "teacher.zip").stat().st_mtime_ns
    train_teacher("CartPole-v1", 0, run_dir=tiny_teacher, steps=2048, net_arch=[32, 32], eval_episodes=3)
    assert (tiny_teacher / "teacher.zip").stat().st_mtime_ns == before
    assert "already trained" in capsys.readouterr().out


def test_another_config_in_the_same_folder_is_refused(tiny_teacher: Path):
    from training.errors import FlowError

    with pytest.raises(FlowError, match="another config"):
        train_teacher("CartPole-v1", 0, run_dir=tiny_teacher, steps=4096, net_arch=[32, 32], eval_episodes=3)


def test_interrupted_training_leaves_a_checkpoint_and_resumes(tmp_path: Path, monkeypatch):
    run_dir = tmp_path / "run"
    original = TeacherCallback._on_step

    def interrupt_halfway(self):
        if self.num_timesteps >= 2048:
            raise KeyboardInterrupt
        return original(self)

    monkeypatch.setattr(TeacherCallback, "_on_step", interrupt_halfway)
    with pytest.raises(KeyboardInterrupt, match="run the same command again to resume"):
        train_teacher("CartPole-v1", 1, run_dir=run_dir, steps=4096, net_arch=[16], eval_episodes=2)
    assert not (run_dir / "teacher.zip").exists()
    state = json.loads((run_dir / "checkpoint" / "state.json").read_text())
    assert 0 < state["timesteps"] < 4096
    assert not list(run_dir.rglob("*.tmp"))

    monkeypatch.setattr(TeacherCallback, "_on_step", original)
    results = train_teacher("CartPole-v1", 1, run_dir=run_dir, steps=4096, net_arch=[16], eval_episodes=2)
    assert results["train_timesteps"] == 4096
    assert (run_dir / "teacher.zip").exists() and not (run_dir / "checkpoint").exists()
    steps = [float(row.split(",")[0]) for row in (run_dir / "learning_curve.csv").read_text().splitlines()[1:]]
    assert steps == sorted(steps) and steps[-1] >= 4096 - 256


def test_normalised_teacher_carries_its_statistics(tmp_path: Path):
    run_dir = tmp_path / "acrobot"
    train_teacher("Acrobot-v1", 0, run_dir=run_dir, steps=1024, net_arch=[16], eval_episodes=1)
    assert (run_dir / "obs_normalizer.npz").exists()
    teacher = TeacherPolicy.load(run_dir)
    assert teacher.normalizer is not None and teacher.normalizer.mean.shape == (6,)
    out = teacher.targets(teacher.normalizer.mean[None, :].astype("float32"))
    assert out["logits"].shape == (1, 3) and out["value"].shape == (1,)
