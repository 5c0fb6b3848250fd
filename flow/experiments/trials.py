"""Independent experiment trials (one method × bits × width × seed), cached and run in parallel.

The QPD table and the frontier are grids of trials. Each trial's result is a JSON file named
after the trial, so a grid can be built up across invocations: a trial already done is read,
not run again. Trials run in this process, in ``jobs`` local processes (one torch thread each)
or, beyond one machine, as Ray tasks (``executor="ray"``, :mod:`flow.executors`; docs/scale.md).
"""

from __future__ import annotations

import functools
import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from tqdm.auto import tqdm

from training import atomic
from training.errors import FlowError

if TYPE_CHECKING:
    from training.qpd.config import QPDConfig

#: Methods of the QPD table, in the order the table lists them.
TABLE_METHODS = ("ptq", "qat-ppo", "float-ptq", "direct", "qpd")


@dataclass(frozen=True)
class Trial:
    """One cell of a grid: what to run and where its run folders live."""

    env_id: str
    method: str
    bits: int | None
    seed: int
    hidden: tuple[int, ...] = (32, 32)
    updates: int = 8000
    episodes: int = 100
    teacher_dir: str = ""
    runs_dir: str = "runs"
    qat_steps: int | None = None
    extra: tuple[tuple[str, Any], ...] = field(default_factory=tuple)

    @property
    def key(self) -> str:
        """File-name key, e.g. ``qpd-2x32-w2-s0`` (``qpd-2x64-w8a4-s0`` where the grid sets ``act_bits``)."""
        from training.qpd.config import layer_bits_suffix
        from training.students.student import arch_label, student_act_bits

        extra = dict(self.extra)
        arch = arch_label(self.hidden, self.conv, extra.get("kernel", 3), extra.get("stride", 1))
        # Activations are named only where a grid setting moves them off the students' rule.
        act = extra.get("act_bits")
        acts = f"a{act}" if self.bits is not None and act and act != student_act_bits(self.bits) else ""
        bits = "float" if self.bits is None else f"w{self.bits}{acts}" + layer_bits_suffix(
            self.bits, extra.get("first_bits"), extra.get("last_bits"), bool(extra.get("output_affine")))
        return f"{self.method}-{arch}-{bits}-s{self.seed}"


    @property
    def conv(self) -> tuple[int, ...]:
        """The student's convolution channels (pixel students; a grid setting in :attr:`extra`)."""
        return tuple(dict(self.extra).get("conv") or ())


def grid_extra(env_id: str, settings: dict[str, Any] | None) -> tuple[tuple[str, Any], ...]:
    """:func:`trial_extra` with the student's convolutions made explicit for an environment with
    frames (the default ones unless the grid's settings name others), so that trial keys and
    records say which architecture ran."""
    from training.qpd.config import default_architecture

    settings = dict(settings or {})
    conv = settings.get("conv", default_architecture(env_id)[0])
    if conv:
        settings["conv"] = tuple(int(c) for c in conv)
    return trial_extra(settings)


#: The distillation each distilling method runs (``float-ptq`` quantizes a float student).
DISTILLED_AS = {"qpd": "qpd", "direct": "direct", "float": "float", "float-ptq": "float"}


def distill_method(trial: Trial) -> str | None:
    """The distillation a trial runs, or None for a method that does not distil."""
    return DISTILLED_AS.get(trial.method)


def trial_extra(settings: dict[str, Any] | None) -> tuple[tuple[str, Any], ...]:
    """A grid's distillation settings as a :attr:`Trial.extra` (sorted, so equal settings give equal trials)."""
    return tuple(sorted((settings or {}).items()))


def trial_qpd_config(trial: Trial) -> QPDConfig:
    """The full distillation config a distilling trial runs with (defaults, then the grid's settings)."""
    from training.qpd.config import load_qpd_config

    method = distill_method(trial)
    bits = trial.bits if method != "float" and trial.bits is not None else 8
    return load_qpd_config(env_id=trial.env_id, seed=trial.seed, method=method, hidden=list(trial.hidden),
                           weight_bits=bits, updates=trial.updates, eval_episodes=trial.episodes, **dict(trial.extra))


def _plain(data: Any) -> Any:
    return json.loads(json.dumps(data))


def _distill_trial(trial: Trial, force: bool = False) -> dict[str, Any]:
    from training.qpd.distill import distill

    cfg = trial_qpd_config(trial)
    run_dir = Path(trial.runs_dir) / trial.env_id / cfg.run_name()
    results = distill(cfg, trial.teacher_dir, run_dir, force=force, quiet=True)
    return {"run": str(run_dir), "size_bits": results["size"]["student"]["total_bits"],
            "agreement": results["agreement_with_teacher"], "wall_s": results["distill_wall_s"],
            **({"agreement_student_states": results["agreement_on_student_states"]}
               if "agreement_on_student_states" in results else {}),
            "distill_config": _plain(cfg.effective_dict()), "teacher_sha256": results["teacher"]["weights_sha256"],
            **{k: results[k] for k in ("mean_return", "std_return", "returns", "seeds")}}


def run_trial(trial: Trial, rerun: bool = False) -> dict[str, Any]:
    """Run one trial in this process and return its result record.

    ``rerun``: the trial's cached result is stale; its run folder is distilled again.
    """
    import torch

    torch.set_num_threads(1)
    if trial.method in ("qpd", "direct", "float"):
        out = _distill_trial(trial, force=rerun)
    elif trial.method == "float-ptq":
        from training.qpd.baselines import ptq_student
        from training.qpd.distill import STUDENT_FILE, load_student
        from training.teacher.policy import TeacherPolicy

        float_trial = _distill_trial(trial)
        float_run = float_trial["run"]
        student, _ = load_student(Path(float_run) / STUDENT_FILE)
        _, out = ptq_student(student, TeacherPolicy.load(trial.teacher_dir, trial.env_id), trial.env_id,
                             trial.bits, trial.seed, trial.episodes)
        out["float_run"] = float_run
        out["distill_config"] = float_trial["distill_config"]
        out["teacher_sha256"] = float_trial["teacher_sha256"]
    elif trial.method == "ptq":
        from training.qpd.baselines import ptq_teacher
        from training.teacher.policy import TeacherPolicy

        teacher = TeacherPolicy.load(trial.teacher_dir, trial.env_id)
        out = {**ptq_teacher(teacher, trial.env_id, trial.bits, trial.seed, trial.episodes),
               "teacher_sha256": teacher.fingerprint()}
    elif trial.method == "qat-ppo":
        from training.qpd.baselines import qat_ppo

        run_dir = Path(trial.runs_dir) / trial.env_id / trial.key
        if rerun:
            shutil.rmtree(run_dir, ignore_errors=True)
        _, out = qat_ppo(trial.env_id, trial.bits, list(trial.hidden), trial.seed, trial.episodes, trial.qat_steps,
                         conv=list(trial.conv), run_dir=run_dir)
        out["run"] = str(run_dir)
    else:
        raise FlowError(f"unknown method {trial.method!r}")
    keep = ("mean_return", "std_return", "returns", "seeds", "size_bits", "agreement", "wall_s", "run", "float_run",
            "train_timesteps", "distill_config", "agreement_student_states", "teacher_sha256")
    return {**asdict(trial), "key": trial.key, **{k: out[k] for k in keep if k in out}}


@functools.lru_cache(maxsize=None)
def teacher_fingerprint(teacher_dir: str) -> str | None:
    """The weight fingerprint of the teacher in ``teacher_dir`` (:meth:`TeacherPolicy.fingerprint`),
    or None where there is no teacher to compare with (a grid that trains none, a folder not there)."""
    from training.teacher.policy import TeacherPolicy

    if not teacher_dir or not (Path(teacher_dir) / "results.json").is_file():
        return None
    return TeacherPolicy.load(teacher_dir).fingerprint()


def made_with_another_teacher(record: dict[str, Any], teacher_dir: str) -> bool:
    """Whether a cached trial record names a teacher (by weight fingerprint) other than the one now
    in ``teacher_dir``; records from before fingerprints were kept, or with no teacher here, are not."""
    if "teacher_sha256" not in record:
        return False
    now = teacher_fingerprint(teacher_dir)
    return now is not None and record["teacher_sha256"] != now


def run_trials(trials: list[Trial], cache_dir: Path, jobs: int = 1, desc: str = "trials",
               executor: str = "process", cache_name: Callable[[Trial], str] | None = None) -> list[dict[str, Any]]:
    """Run the trials not yet in ``cache_dir``; return every trial's record.

    ``cache_name``: a trial's record file under ``cache_dir`` without ``.json`` (default: its
    key); a grid whose trials share keys (one study varying a setting the key does not name)
    files them in subfolders so that all of them run in one call, every job busy to the end.

    ``executor``: ``process`` (``jobs`` local processes) or ``ray`` (one Ray task per trial, on
    ``RAY_ADDRESS``'s cluster or a local Ray; see :mod:`flow.executors`). Each finished trial's
    record is written into the cache here, by the driver, as it arrives; a trial that fails is
    reported and the others go on, and then the grid stops with one sentence naming the failed
    trials (the finished ones stay cached, so running the same command again retries only those).
    A cached distilling trial whose stored config is not what the current defaults would run
    (a default changed since), or a cached trial of another teacher than its ``teacher_dir`` holds
    now (a retrained teacher: its weight fingerprint differs), is run again, its run folder
    replaced. Records from before configs (or fingerprints) were stored carry none and are taken
    as they are.
    """
    from flow.executors import TaskRunner
    from training.qpd.config import same_computation

    name = cache_name or (lambda t: t.key)
    runner = TaskRunner(executor, jobs)
    cache_dir.mkdir(parents=True, exist_ok=True)
    records: dict[str, dict[str, Any]] = {}
    todo = []
    stale: set[str] = set()
    for trial in trials:
        path = cache_dir / f"{name(trial)}.json"
        if path.exists():
            record = json.loads(path.read_text())
            # Where the trial's run folders went does not change its result: not compared.
            settings = {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(trial).items() if k != "runs_dir"}
            stored = {k: record.get(k) for k in settings}
            if _plain(stored) != _plain(settings):
                raise FlowError(f"{path} was run with other settings than this grid asks for; "
                                "delete it or write the grid to another folder")
            # Records store the full distillation config they ran with, so a changed default
            # (training/qpd/config.py) cannot pass a stale result off as current.
            if "distill_config" in record and not same_computation(record["distill_config"], trial_qpd_config(trial)):
                why = "was distilled with other settings (a default changed since)"
            elif made_with_another_teacher(record, trial.teacher_dir):
                why = f"was made with another teacher than the one now in {trial.teacher_dir}"
            else:
                records[name(trial)] = record
                continue
            tqdm.write(f"{name(trial)}: cached result {why}; running it again")
            stale.add(name(trial))
        todo.append(trial)
    failed: dict[str, str] = {}
    left = len(todo)
    bar = tqdm(total=len(trials), initial=len(records), desc=desc, unit="trial", dynamic_ncols=True)
    bar.set_postfix_str(f"running {min(runner.slots, left)}, failed 0")
    for outcome in runner.run(run_trial, todo, lambda t: (t, name(t) in stale)):
        trial, left = outcome.item, left - 1
        if outcome.error is None:
            atomic.write_json(cache_dir / f"{name(trial)}.json", outcome.result)
            records[name(trial)] = outcome.result
            bar.update(1)
            last = f"{name(trial)}: {outcome.result['mean_return']:.1f}"
        else:
            failed[name(trial)] = outcome.error
            tqdm.write(f"{name(trial)}: failed: {outcome.error}")
            last = f"{name(trial)} failed"
        bar.set_postfix_str(f"running {min(runner.slots, left)}, failed {len(failed)}; {last}")
    bar.close()
    if failed:
        keys = sorted(failed)
        named = ", ".join(keys[:5]) + (f" and {len(keys) - 5} more" if len(keys) > 5 else "")
        raise FlowError(f"{len(failed)} of {len(trials)} trials failed ({named}; first: "
                        f"{next(iter(failed.values()))}); the {len(records)} others are cached in {cache_dir}: "
                        "run the same command again to retry the failed ones")
    return [records[name(t)] for t in trials]


def default_jobs() -> int:
    """One job per core."""
    return max(1, os.cpu_count() or 1)
