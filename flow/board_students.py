"""Deployable students of a committed grid: each trial's student as a run folder, recreated where missing.

A grid folder (``docs/results/<env>/``) commits each trial's record (``trials/<key>.json``), not
its checkpoints: the distilled students' run folders are git-ignored, and the PTQ and QAT-PPO
baselines never wrote one. ``make board-table`` needs each student as a run folder
(``config.yaml`` + ``student.pt``, what ``make export`` reads), so :func:`student_run` finds it, or
reruns the trial from its record (the same settings, seeds and teacher: the trials are
deterministic on the project's CPU machines) and saves the student it made. A recreated student
whose evaluation returns differ from the record's is refused, so the table's rows are the
committed table's students, not look-alikes.
"""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path
from typing import Any

from training import atomic
from training.errors import FlowError

#: Methods whose trial makes a student of the grid's own architecture (PTQ of the teacher keeps the teacher's).
STUDENT_METHODS = ("qat-ppo", "float-ptq", "direct", "qpd")
#: What a recreated run records beside its student: the trial it recreates and how it compared.
RECREATED_FILE = "recreated.json"


def trial_of(record: dict[str, Any]):
    """The :class:`~flow.experiments.trials.Trial` a trial record was run with."""
    from flow.experiments.trials import Trial

    names = {f.name for f in fields(Trial)}
    kwargs = {k: record[k] for k in names if k in record}
    kwargs["hidden"] = tuple(kwargs.get("hidden") or (32, 32))
    kwargs["extra"] = tuple(tuple(item) for item in kwargs.get("extra") or ())
    return Trial(**kwargs)


def run_folder_name(record: dict[str, Any]) -> str:
    """The run folder a trial's student gets: the distillation's own name where it distils
    (``qpd-2x32-w2a2-s0``), the trial key otherwise (``qat-ppo-2x32-w2-s0``)."""
    if record["method"] in ("qpd", "direct"):
        return Path(record["run"]).name if record.get("run") else record["key"]
    return record["key"]


def _student_config(record: dict[str, Any], teacher_dir: str) -> dict[str, Any]:
    from training.runs import RUN_FORMAT_VERSION

    return {"format_version": RUN_FORMAT_VERSION, "kind": "student", "env_id": record["env_id"], "teacher": teacher_dir,
            "made_by": f"flow.board_students: trial {record['key']} ({record['method']}) rerun from its record"}


def _same_result(record: dict[str, Any], result: dict[str, Any]) -> str | None:
    """Why a rerun's evaluation is not the record's (None when it is, episode for episode)."""
    if list(result["seeds"]) != list(record["seeds"]):
        return "it was evaluated on other episode seeds"
    if [round(float(r), 6) for r in result["returns"]] != [round(float(r), 6) for r in record["returns"]]:
        diff = sum(abs(float(a) - float(b)) > 1e-6 for a, b in zip(result["returns"], record["returns"]))
        return f"its returns differ from the record's on {diff} of {len(record['returns'])} episodes"
    return None


def student_run(record: dict[str, Any], runs_dir: Path, *, recreate: bool = True, strict: bool = True) -> Path:
    """The run folder of a trial's student under ``runs_dir/<env>/``, recreated from the record if missing.

    Raises :class:`FlowError` for a method without a student of its own, for a missing student
    when ``recreate`` is false, and (``strict``) for a rerun whose returns are not the record's;
    without ``strict`` such a rerun is kept, and its ``recreated.json`` says how it differs
    (:func:`rerun_difference`).
    """
    import torch

    from training.qpd.distill import STUDENT_FILE, save_student
    from training.runs import CONFIG_FILE

    method = record["method"]
    if method not in STUDENT_METHODS:
        raise FlowError(f"trial {record['key']} ({method}) makes no student of the grid's architecture")
    run = Path(runs_dir) / record["env_id"] / run_folder_name(record)
    if (run / STUDENT_FILE).is_file() and (run / CONFIG_FILE).is_file():
        return run
    if not recreate:
        raise FlowError(f"trial {record['key']} has no student in {run}")
    from flow.experiments.trials import _distill_trial
    from training.teacher.committed import restore_committed_teacher

    trial = trial_of(record)
    restore_committed_teacher(trial.env_id, Path(trial.teacher_dir))
    torch.set_num_threads(1)
    if method in ("qpd", "direct"):
        import dataclasses

        out = _distill_trial(dataclasses.replace(trial, runs_dir=str(runs_dir)))
        run = Path(out["run"])
        student_made = None
    elif method == "float-ptq":
        from training.qpd.baselines import ptq_student
        from training.qpd.config import load_qpd_config
        from training.qpd.distill import distill, load_student
        from training.teacher.policy import TeacherPolicy

        # the float student as the record distilled it (its stored config: a default may have changed since)
        cfg = load_qpd_config(**record["distill_config"]) if record.get("distill_config") else None
        if cfg is None:
            import dataclasses

            float_run = Path(_distill_trial(dataclasses.replace(trial, runs_dir=str(runs_dir)))["run"])
        else:
            float_run = Path(runs_dir) / trial.env_id / f"float-for-{record['key']}"
            distill(cfg, trial.teacher_dir, float_run, quiet=True)
        student, _ = load_student(float_run / STUDENT_FILE)
        student_made, out = ptq_student(student, TeacherPolicy.load(trial.teacher_dir, trial.env_id), trial.env_id,
                                        trial.bits, trial.seed, trial.episodes)
    else:  # qat-ppo
        from training.qpd.baselines import qat_ppo

        student_made, out = qat_ppo(trial.env_id, trial.bits, list(trial.hidden), trial.seed, trial.episodes,
                                    trial.qat_steps, conv=list(trial.conv), run_dir=run / "qat-ppo")
    why = _same_result(record, out)
    if why is not None and strict:
        raise FlowError(f"trial {record['key']} rerun from its record is not the committed student: {why}")
    if student_made is not None:
        run.mkdir(parents=True, exist_ok=True)
        atomic.write_yaml(run / CONFIG_FILE, _student_config(record, trial.teacher_dir))
        save_student(run / STUDENT_FILE, student_made, {"trial": record["key"]})
    atomic.write_json(run / RECREATED_FILE, {"trial": record["key"], "method": method,
                                             "returns_equal_to_record": why is None, "differs": why,
                                             "mean_return": out["mean_return"], "std_return": out["std_return"]})
    return run


def rerun_difference(run: Path) -> dict[str, Any] | None:
    """For a student recreated without being the record's (``strict=False``): how it differs and its own
    return; None for a student that is the record's (or was not recreated here)."""
    path = Path(run) / RECREATED_FILE
    if not path.is_file():
        return None
    data = json.loads(path.read_text())
    return None if data.get("returns_equal_to_record", True) else data


def grid_records(grid_dir: Path, bits: int | None = None) -> list[dict[str, Any]]:
    """The trial records of a grid folder (``trials/*.json``), those at ``bits`` when given, in table order."""
    from flow.experiments.trials import TABLE_METHODS

    folder = Path(grid_dir) / "trials"
    if not folder.is_dir():
        raise FlowError(f"{grid_dir} is not a grid folder: it has no trials/ (make qpd-table writes one)")
    records = []
    for path in sorted(folder.glob("*.json")):
        try:
            record = json.loads(path.read_text())
        except ValueError:
            raise FlowError(f"{path} is not valid JSON") from None
        if not isinstance(record, dict) or not {"key", "method", "env_id", "seed"} <= set(record):
            raise FlowError(f"{path} is not a trial record (no key, method, env_id or seed)")
        if bits is None or record.get("bits") == bits:
            records.append(record)
    order = {m: i for i, m in enumerate(TABLE_METHODS)}
    return sorted(records, key=lambda r: (order.get(r["method"], len(order)), -(r.get("bits") or 99), r["seed"]))
