"""The summary's claims re-evaluated on episode seeds no choice was made on.

``make summary`` chooses, per environment, the smallest student that keeps the teacher and the
best one within 0.5 % of its bits, from returns on the tables' evaluation episodes (seeds
1000–1099). A student chosen on those episodes is not yet a claim. ``make summary-fresh``
(``python -m flow summary-fresh``) plays every seed's student of each chosen entry, and the
teacher, on fresh episodes (2000–2099 by default), and files their returns in
``docs/results/summary_fresh.json``. ``make summary`` then reports those returns, and the seeds
that keep the teacher on them by the paired test. The returns on the evaluation seeds stay in
the entry under ``selected_on``.

Each student comes from its trial's run folder, or is recreated from the committed trial record
(:func:`flow.board_students.student_run`, strict: a recreated student must reproduce the record's
returns episode for episode, else it is not re-evaluated and the reason is filed). The teacher
must be the table's (its evaluation mean return equal to the table's record, and its weight
fingerprint equal to the one the table records, where it records one), so a retrained teacher
that differs is refused rather than compared. Every finished student is written at once,
so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

from flow.experiments.fresh_seeds import FRESH_SEED_START, fresh_episode_seeds
from training import atomic
from training.errors import FlowError

FRESH_FILE = "summary_fresh.json"
#: The summary's two choices per environment.
CHOICES = ("smallest_keeping", "best_within_half_percent")


def load_fresh(results_dir: Path) -> dict[str, Any]:
    """The filed fresh-seed returns of ``results_dir`` (an empty record where none are)."""
    path = Path(results_dir) / FRESH_FILE
    if not path.is_file():
        return {"envs": {}}
    try:
        data = json.loads(path.read_text())
    except ValueError:
        raise FlowError(f"{path} is not valid JSON: delete it and run make summary-fresh again") from None
    if not isinstance(data, dict) or not isinstance(data.get("envs"), dict):
        raise FlowError(f"{path} is not a fresh-seed record (no envs): delete it and run make summary-fresh again")
    return data


def same_return(a: float, b: float) -> bool:
    """Two mean returns as the summary rounds them."""
    return round(float(a), 2) == round(float(b), 2)


def report_fresh(choice: dict[str, Any] | None, fresh_env: dict[str, Any] | None,
                 trial_means: dict[str, float]) -> dict[str, Any] | None:
    """``choice`` with its figures on the fresh seeds where every seed's student has them.

    ``trial_means``: each trial's mean return on the evaluation seeds, by ``<source>/<key>``,
    so that a fresh result filed for an older run of a trial is not taken for the current one.
    Without fresh figures the choice comes back unchanged but for ``fresh_seeds`` false and, where
    the re-evaluation was tried and failed, ``fresh_note`` saying why.
    """
    if choice is None:
        return None
    teacher = (fresh_env or {}).get("teacher")
    if not teacher or not same_return(teacher["eval_mean_return"], choice["teacher_return"]):
        return {**choice, "fresh_seeds": False}
    found = _fresh_trials(choice["trials"], fresh_env, trial_means)
    if not isinstance(found, list):
        return {**choice, "fresh_seeds": False, **({"fresh_note": found} if found else {})}
    selected_on = {k: choice[k] for k in ("mean_return", "seeds_kept", "seeds_kept_paired", "test", "teacher_return")}
    tied = {m: _fresh_trials(names, fresh_env, trial_means) for m, names in choice.get("tied_trials", {}).items()}
    return {**choice, **_fresh_figures(found), "test": "paired",
            "teacher_return": round(float(teacher["mean_return"]), 2), "fresh_seeds": True,
            "fresh_episode_seeds": [fresh_env["seeds"][0], fresh_env["seeds"][1]],
            "selected_on": {"episode_seeds": [1000, 1099], **selected_on},
            "tied_fresh": {m: _fresh_figures(f) for m, f in tied.items() if isinstance(f, list)}}


def _fresh_trials(names: list[str], fresh_env: dict[str, Any], trial_means: dict[str, float]) -> list[dict] | str | None:
    """The filed fresh results of these trials; else why not (a skip's reason, or None: not filed)."""
    found = []
    for name in names:
        rec = fresh_env.get("students", {}).get(name)
        if rec is None or not same_return(rec["eval_mean_return"], trial_means[name]):
            return None
        if rec.get("skipped"):
            return f"{name.split('/')[-1]}: {rec['skipped']}"
        found.append(rec)
    return found


def _fresh_figures(found: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean over seeds of the fresh mean returns, and the seeds keeping the teacher on them."""
    kept = sum(1 for r in found if r["keeps_teacher_paired"])
    return {"mean_return": round(sum(r["mean_return"] for r in found) / len(found), 2), "seeds_kept": kept,
            "seeds_kept_paired": kept}


def _records(table_dir: Path, choice: dict[str, Any], names: list[str]) -> Iterator[tuple[str, dict[str, Any]]]:
    """The committed trial records ``names`` (``<source>/<key>``) of a chosen entry of the table in
    ``table_dir`` (a frontier's source is its folder beside the table)."""
    source = choice.get("source", "qpd_table")
    grid = table_dir if source == "qpd_table" else table_dir / source
    for name in names:
        path = grid / "trials" / f"{name.split('/', 1)[1]}.json"
        if not path.is_file():
            raise FlowError(f"the trial record {path} of the summary's choice is not here")
        yield name, json.loads(path.read_text())


def _file_env(results_dir: Path, env_id: str, env: dict[str, Any], **meta: Any) -> dict[str, Any]:
    """Write one environment's entry into the record, re-read under a lock: runs for different
    environments (``--env``) may share the file at once; return the record as written."""
    import fcntl
    import os

    fd = os.open(results_dir, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        filed = load_fresh(results_dir)
        filed.update(meta)
        filed["envs"][env_id] = env
        atomic.write_json(Path(results_dir) / FRESH_FILE, filed)
        return filed
    finally:
        os.close(fd)  # releases the lock


def reevaluate_summary(results_dir: Path, *, envs: list[str] | None = None, seed_start: int = FRESH_SEED_START,
                       episodes: int = 100, recreate: bool = True) -> dict[str, Any]:
    """Evaluate the summary's chosen students and their teachers on fresh seeds; file them in
    ``results_dir/summary_fresh.json`` as each finishes; return what is filed."""
    from tqdm.auto import tqdm

    from flow.board_students import student_run
    from flow.experiments.summary import summarise
    from flow.experiments.table import keeps_teacher_paired
    from training.evaluation import evaluate
    from training.policies import load_policy
    from training.runs import RESULTS_FILE
    from training.teacher.committed import restore_committed_teacher
    from training.teacher.policy import TeacherPolicy

    seeds = fresh_episode_seeds(seed_start, episodes, 100, "the summary")  # the tables' 100 episodes
    results_dir = Path(results_dir)
    summary = summarise(results_dir, fresh=False)
    unknown = sorted(set(envs or ()) - set(summary))
    if unknown:
        raise FlowError(f"no committed table of {', '.join(unknown)}; tables: {', '.join(summary)}")
    filed = load_fresh(results_dir)
    for env_id, entry in summary.items():
        if envs and env_id not in envs:
            continue
        choices = [entry[c] for c in CHOICES if entry[c] is not None]
        if not choices:
            print(f"{env_id}: nothing chosen, nothing to re-evaluate")
            continue
        env = filed["envs"].get(env_id)
        if env is None or env.get("seeds") != [seeds[0], seeds[-1]]:
            env = {"seeds": [seeds[0], seeds[-1]], "students": {}}
        teacher_run = Path(entry["teacher"]["run"])
        restore_committed_teacher(env_id, teacher_run)
        if not (teacher_run / RESULTS_FILE).is_file():
            print(f"{env_id}: skipped: the table's teacher {teacher_run} is not here and none is committed")
            continue
        trained = json.loads((teacher_run / RESULTS_FILE).read_text())["mean_return"]
        if not same_return(trained, entry["teacher"]["mean_return"]):
            print(f"{env_id}: skipped: the teacher in {teacher_run} returns {trained:.2f} on the evaluation seeds, "
                  f"the table's {entry['teacher']['mean_return']:.2f}: it is not the table's teacher")
            continue
        recorded = entry["teacher"].get("weights_sha256")
        stale = not env.get("teacher") or not same_return(env["teacher"]["eval_mean_return"], trained)
        teacher = TeacherPolicy.load(teacher_run, env_id) if recorded is not None or stale else None
        if recorded is not None and teacher.fingerprint() != recorded:
            print(f"{env_id}: skipped: the teacher in {teacher_run} has other weights than the table records "
                  "(weights_sha256): it is not the table's teacher")
            continue
        if stale:
            result = evaluate(teacher, env_id, seeds, progress=True, desc=f"{env_id} teacher")
            env["teacher"] = {"run": str(teacher_run), "eval_mean_return": float(trained),
                              "mean_return": result.mean, "returns": result.returns}
            env["students"] = {}  # another teacher's pairs are void
            filed = _file_env(results_dir, env_id, env, seed_start=seed_start, episodes=episodes)
        table_dir = results_dir / Path(entry["table"]).parent
        records = [item for choice in choices for item in _records(table_dir, choice, choice["trials"])]
        records += [item for choice in choices for names in choice.get("tied_trials", {}).values()
                    for item in _records(table_dir, choice, names)]
        for name, record in tqdm(records, desc=f"{env_id} students", unit="student", leave=False):
            done = env["students"].get(name)
            if done is not None and same_return(done["eval_mean_return"], record["mean_return"]):
                continue
            row = {"eval_mean_return": float(record["mean_return"])}
            try:
                run = student_run(record, Path(record.get("runs_dir") or results_dir / "runs"), recreate=recreate)
                result = evaluate(load_policy(run, env_id)[0], env_id, seeds)
                keeps, p = keeps_teacher_paired({"seeds": seeds, "returns": result.returns},
                                                {"seeds": seeds, "returns": env["teacher"]["returns"]})
                row.update(run=str(run), mean_return=result.mean, returns=result.returns,
                           keeps_teacher_paired=keeps, paired_p=p)
            except FlowError as exc:
                row["skipped"] = str(exc)
            env["students"][name] = row
            filed = _file_env(results_dir, env_id, env, seed_start=seed_start, episodes=episodes)
            print(f"{env_id} {name}: " + (f"skipped: {row['skipped']}" if "skipped" in row else
                                         f"{row['mean_return']:.2f} on fresh seeds (evaluation seeds "
                                         f"{row['eval_mean_return']:.2f}), keeps the teacher: {row['keeps_teacher_paired']}"))
    return filed
