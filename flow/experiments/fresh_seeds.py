"""A grid's students, and its teacher, re-evaluated on episode seeds no choice was made on.

Every grid (table, ablation, frontier) evaluates on seeds 1000–1099, and every configuration is
chosen on those returns. Before such a choice is claimed, ``python -m flow fresh-seeds <grid
folder>`` plays each trial's student (from its run folder) and the teacher on fresh seeds
(2000–2099 by default), and writes ``fresh_seeds.json`` and ``fresh_seeds.md`` beside the grid:
mean return per trial and per group (variant or method, bits), and each seed's paired test
against the teacher on the same fresh episodes. Trials whose run folder is gone are listed as
such; nothing is trained.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from training import atomic
from training.errors import FlowError

FRESH_SEED_START = 2000
GRID_FILES = ("ablation.json", "qpd_table.json", "frontier.json", "input_precision.json")


def _grid(folder: Path) -> dict[str, Any]:
    for name in GRID_FILES:
        if (folder / name).is_file():
            return json.loads((folder / name).read_text())
    raise FlowError(f"{folder} holds no grid ({', '.join(GRID_FILES)})")


def fresh_episode_seeds(seed_start: int, episodes: int, used: int, chooser: str) -> list[int]:
    """The seeds of ``episodes`` fresh episodes from ``seed_start``, refused where they overlap the
    ``used`` evaluation episodes (from seed 1000) that ``chooser`` (the grid, the summary) chose on."""
    from training.evaluation import EVAL_SEED_START, eval_seeds

    if seed_start < EVAL_SEED_START + used and seed_start + episodes > EVAL_SEED_START:
        raise FlowError(f"seeds {seed_start}..{seed_start + episodes - 1} overlap the evaluation seeds "
                        f"{EVAL_SEED_START}..{EVAL_SEED_START + used - 1} {chooser} chose on")
    return eval_seeds(episodes, seed_start)


def reevaluate(folder: Path, *, seed_start: int = FRESH_SEED_START, episodes: int = 100) -> dict[str, Any]:
    """Evaluate the teacher and every trial's student of the grid in ``folder`` on fresh seeds."""
    from flow.experiments.hardware import trial_student
    from flow.experiments.table import keeps_teacher_paired
    from training.evaluation import evaluate
    from training.policies import load_policy

    grid = _grid(folder)
    env_id = grid["env_id"]
    used = int(grid.get("settings", {}).get("episodes", 100))  # the grid's own evaluation episodes
    seeds = fresh_episode_seeds(seed_start, episodes, used, "the grid")
    teacher_run = Path(grid["teacher"]["run"])
    if not (teacher_run / "results.json").exists():
        raise FlowError(f"the grid's teacher {teacher_run} is not here (make teacher, or the committed one)")
    teacher_policy, _ = load_policy(teacher_run, env_id)
    teacher = evaluate(teacher_policy, env_id, seeds)
    trials = []
    for rec in grid["trials"]:
        entry = {"key": rec["key"], "variant": rec.get("variant"), "method": rec["method"],
                 "student": trial_student(rec), "bits": rec["bits"],
                 "seed": rec["seed"], "eval_mean_return": rec["mean_return"]}
        run = Path(rec.get("run", ""))
        if not (run / "student.pt").exists():
            trials.append({**entry, "fresh_mean_return": None, "note": f"run folder {run} not here"})
            continue
        policy, _ = load_policy(run, env_id)
        result = evaluate(policy, env_id, seeds)
        keeps, p = keeps_teacher_paired({"seeds": seeds, "returns": result.returns},
                                        {"seeds": seeds, "returns": teacher.returns})
        trials.append({**entry, "fresh_mean_return": result.mean, "fresh_returns": result.returns,
                       "keeps_teacher_paired": keeps, "paired_p": p})
    data = {"env_id": env_id, "seeds": [seeds[0], seeds[-1]], "episodes": episodes,
            "teacher": {"run": str(teacher_run), "fresh_mean_return": teacher.mean, "fresh_std_return": teacher.std,
                        "fresh_returns": teacher.returns},
            "trials": trials,
            "command": f"python -m flow fresh-seeds {folder} --seed-start {seed_start} --episodes {episodes}"}
    atomic.write_json(folder / "fresh_seeds.json", data)
    atomic.write_text(folder / "fresh_seeds.md", markdown(data))
    return data


def markdown(data: dict[str, Any]) -> str:
    """``fresh_seeds.md``: per group (variant or method, student shape, bits), the mean over seeds on
    the evaluation seeds and on the fresh ones. Records made before they named the student's shape
    group without it."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for t in data["trials"]:
        groups.setdefault((t["variant"] or t["method"], t.get("student"), t["bits"]), []).append(t)
    shapes = any(t.get("student") for t in data["trials"])
    lines = [f"# {data['env_id']}: re-evaluated on fresh episode seeds {data['seeds'][0]}–{data['seeds'][1]}", "",
             f"Teacher on the fresh seeds: {data['teacher']['fresh_mean_return']:.2f} ± "
             f"{data['teacher']['fresh_std_return']:.2f}. Each student plays the same {data['episodes']} fresh "
             "episodes; *keeps (paired)*: seeds whose returns are not below the teacher's on those episodes "
             "(paired permutation test). Made by: `" + data["command"] + "`", "",
             "| group |" + (" student |" if shapes else "") + " bits | evaluation seeds: mean | fresh seeds: mean | "
             "fresh seeds: keeps (paired) |",
             "| --- |" + (" --- |" if shapes else "") + " ---: | ---: | ---: | ---: |"]
    for (group, student, bits), ts in groups.items():
        fresh = [t["fresh_mean_return"] for t in ts if t["fresh_mean_return"] is not None]
        kept = sum(1 for t in ts if t.get("keeps_teacher_paired"))
        cell = f"{np.mean(fresh):.2f}" if fresh else "run folders not here"
        lines.append(f"| {group} |" + (f" {student} |" if shapes else "") +
                     f" {bits} | {np.mean([t['eval_mean_return'] for t in ts]):.2f} | {cell} | "
                     f"{kept}/{len(ts)} |")
    return "\n".join(lines) + "\n"
