"""Run folders: where each training stage writes, and how a later stage finds and checks it.

Layout (docs/formats.md)::

    runs/<env-id>/<run-name>/
        config.yaml            everything needed to rerun (format_version, kind, env_id, ...)
        teacher.zip            stable-baselines3 PPO checkpoint (teacher runs)
        obs_normalizer.npz     observation normalisation statistics, when the teacher uses them
        results.json           N seeded deterministic episodes: seeds, returns, mean, std
        learning_curve.csv/png training curve
        train.log              the log
        checkpoint/            only while training: the resumable state
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from training.errors import FlowError

RUN_FORMAT_VERSION = 1
CONFIG_FILE = "config.yaml"
RESULTS_FILE = "results.json"


def runs_root() -> Path:
    """Root of all run folders: ``$QPD_RUNS`` or ``runs/`` in the current directory."""
    return Path(os.environ.get("QPD_RUNS", "runs"))


def teacher_run_dir(env_id: str, seed: int, root: Path | None = None, algo: str = "ppo") -> Path:
    """The default run folder of a teacher (``ppo-teacher-s0``, ``sac-teacher-s0``)."""
    return (root or runs_root()) / env_id / f"{algo}-teacher-s{seed}"


def read_run_config(run_dir: str | os.PathLike) -> dict[str, Any]:
    """Read and check a run folder's ``config.yaml`` (raises :class:`FlowError`)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FlowError(f"run folder {run_dir} does not exist")
    path = run_dir / CONFIG_FILE
    if not path.is_file():
        raise FlowError(f"{run_dir} is not a run folder: it has no {CONFIG_FILE}")
    try:
        config = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise FlowError(f"{path} is corrupt: {exc}") from None
    if not isinstance(config, dict) or "env_id" not in config or "kind" not in config:
        raise FlowError(f"{path} is not a run config of this project (no env_id/kind)")
    version = config.get("format_version")
    if version != RUN_FORMAT_VERSION:
        raise FlowError(
            f"{path} has format_version {version}, this version of the flow reads {RUN_FORMAT_VERSION}"
        )
    return config


def check_run_env(run_dir: str | os.PathLike, config: dict[str, Any], env_id: str | None) -> str:
    """Return the run's environment id, refusing a run folder made for another environment."""
    if env_id is not None and env_id != config["env_id"]:
        raise FlowError(f"run folder {run_dir} holds a policy for {config['env_id']}, not for {env_id}")
    return config["env_id"]
