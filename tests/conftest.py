"""Shared fixtures: a tiny trained CartPole teacher, made once per test session."""

from __future__ import annotations

import os
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

#: Distillation settings that keep a test's trial short: fewer teacher states, shorter DAgger
#: rounds, fewer episodes between stages (what the student fixtures below use too).
FAST_DISTILL = dict(teacher_states=5000, dagger_interval=300, dagger_steps=800, stage_eval_episodes=2,
                    agreement_states=1000)


@pytest.fixture(scope="session")
def tiny_teacher(tmp_path_factory) -> Path:
    """A CartPole-v1 teacher trained for 2,048 steps with 32-wide nets, evaluated on 3 episodes."""
    from training.teacher.train import train_teacher

    run_dir = tmp_path_factory.mktemp("runs") / "CartPole-v1" / "tiny-teacher"
    train_teacher("CartPole-v1", 0, run_dir=run_dir, steps=2048, net_arch=[32, 32], eval_episodes=3)
    return run_dir


@pytest.fixture(scope="session")
def cartpole_teacher(tmp_path_factory) -> Path:
    """A CartPole-v1 teacher that balances well (64-wide nets, 40k steps: about 15 s)."""
    from training.teacher.train import train_teacher

    run_dir = tmp_path_factory.mktemp("runs") / "CartPole-v1" / "small-teacher"
    train_teacher("CartPole-v1", 0, run_dir=run_dir, steps=40_000, net_arch=[64, 64], eval_episodes=5)
    return run_dir


@pytest.fixture(scope="session")
def short_qpd_student(cartpole_teacher, tmp_path_factory) -> tuple[Path, dict]:
    """A 2x16 w2a2 QPD student distilled briefly (schedule 4 -> 2) from the CartPole teacher."""
    from training.qpd.distill import distill
    from training.qpd.config import load_qpd_config

    cfg = load_qpd_config(env_id="CartPole-v1", hidden=[16, 16], schedule=[4, 2], updates=1200, eval_episodes=5,
                          **FAST_DISTILL)
    run_dir = tmp_path_factory.mktemp("runs") / "CartPole-v1" / "short-qpd"
    results = distill(cfg, cartpole_teacher, run_dir, quiet=True)
    return run_dir, results


@pytest.fixture(scope="session")
def narrow_qpd_student(cartpole_teacher, tmp_path_factory) -> tuple[Path, dict]:
    """As ``short_qpd_student``, with narrow-range weights (NARROW=1: 2 bits are -1, 0, 1), for IMPL=rtl."""
    from training.qpd.distill import distill
    from training.qpd.config import load_qpd_config

    cfg = load_qpd_config(env_id="CartPole-v1", hidden=[16, 16], schedule=[4, 2], updates=1200, narrow_weights=True,
                          eval_episodes=5, **FAST_DISTILL)
    run_dir = tmp_path_factory.mktemp("runs") / "CartPole-v1" / "narrow-qpd"
    results = distill(cfg, cartpole_teacher, run_dir, quiet=True)
    return run_dir, results


def run_cli(*args: str, cwd: Path | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run ``python -m <args>`` and capture its output."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", *args], cwd=cwd or REPO, env=full_env,
                          capture_output=True, text=True, timeout=600)


@contextmanager
def exported_design(run_dir: Path, design: str, root: Path, n_states: int = 300):
    """``run_dir`` exported and estimated as ``design`` under ``root`` (``QPD_BITSTREAMS``, restored
    after): yields ``(folder, export record, estimate)``."""
    from hw_build.compile import estimate_design
    from hw_build.export import export_design

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("QPD_BITSTREAMS", str(root))
        export = export_design(run_dir, design, n_states=n_states)
        yield root / design, export, estimate_design(design, quiet=True)
