"""Shared fixtures: a tiny trained CartPole teacher, made once per test session."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def tiny_teacher(tmp_path_factory) -> Path:
    """A CartPole-v1 teacher trained for 2,048 steps with 32-wide nets, evaluated on 3 episodes."""
    from training.train_teacher import train_teacher

    run_dir = tmp_path_factory.mktemp("runs") / "CartPole-v1" / "tiny-teacher"
    train_teacher("CartPole-v1", 0, run_dir=run_dir, steps=2048, net_arch=[32, 32], eval_episodes=3)
    return run_dir


def run_cli(*args: str, cwd: Path | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run ``python -m <args>`` and capture its output."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", *args], cwd=cwd or REPO, env=full_env,
                          capture_output=True, text=True, timeout=600)
