"""Teachers committed with the repository: the teacher of every committed results table.

A MuJoCo or MinAtar teacher costs 20 minutes to 1.5 hours of CPU to train; its students are
minutes each. So the teacher of each table under ``docs/results/`` is kept in the repository,
as stable-baselines3 saved it (``teacher.zip``, the observation normaliser's statistics in
``obs_normalizer.npz``) with its ``config.yaml`` and ``results.json``, under
``training/teachers/<env-dir>/<run-name>/``. When a command needs the default teacher of an
environment and ``runs/<env-id>/<run-name>`` holds none, the committed one is copied there, so
trials, tables and ``make distill`` use it without retraining, and every record keeps naming
the run folder its table names.

``teacher.zip`` is a pickle-bearing archive (SB3's format): load only teachers you trust. These
are the project's own, trained by ``make teacher`` with the committed hyperparameters and seed 0;
retraining reproduces them bit for bit on the project's CPU machines (the results record's
per-episode returns are the test, ``tests/test_committed_teachers.py``).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from training.runs import RESULTS_FILE, runs_root

#: Where the committed teachers live.
COMMITTED_ROOT = Path(__file__).resolve().parents[1] / "teachers"
#: The files of a committed teacher (the rest of a run folder is regenerated or not needed).
TEACHER_FILES = ("config.yaml", "results.json", "teacher.zip", "obs_normalizer.npz")


def env_dir_name(env_id: str) -> str:
    """An environment id as a folder name (``MinAtar/Breakout-v1`` → ``MinAtar-Breakout-v1``)."""
    return env_id.replace("/", "-")


def committed_teachers(env_id: str) -> list[Path]:
    """The committed teacher run folders of ``env_id`` (usually one), sorted by name."""
    folder = COMMITTED_ROOT / env_dir_name(env_id)
    return sorted(p for p in folder.iterdir() if (p / RESULTS_FILE).is_file()) if folder.is_dir() else []


def default_committed_teacher(env_id: str) -> Path | None:
    """The committed teacher of ``env_id``'s tables: the PPO one, else the only one (Hopper's SAC)."""
    found = committed_teachers(env_id)
    ppo = [p for p in found if p.name == "ppo-teacher-s0"]
    return (ppo or found or [None])[0]


def restore_committed_teacher(env_id: str, run_dir: Path) -> bool:
    """Copy the committed teacher named like ``run_dir`` into it when ``run_dir`` holds no trained
    teacher and ``run_dir`` is that teacher's place under the runs root; return whether it did."""
    run_dir = Path(run_dir)
    if (run_dir / RESULTS_FILE).exists():
        return False
    source = COMMITTED_ROOT / env_dir_name(env_id) / run_dir.name
    if not (source / RESULTS_FILE).is_file() or run_dir.resolve() != (runs_root() / env_id / run_dir.name).resolve():
        return False
    tmp = run_dir.with_name(run_dir.name + ".restoring")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name in TEACHER_FILES:
        if (source / name).exists():
            shutil.copy2(source / name, tmp / name)
    if run_dir.exists():  # an interrupted training's leftovers: the committed teacher replaces them
        shutil.rmtree(run_dir)
    tmp.rename(run_dir)
    print(f"using the committed teacher {source.relative_to(COMMITTED_ROOT.parents[1])} (copied to {run_dir})")
    return True
