"""QPD: distilling a PPO teacher into a low-bit Brevitas student, stage by stage.

Read top to bottom (CleanRL style):

1. load the teacher; fill the teacher memory with states from its own (stochastic) rollouts;
   set the student's input affine and the value standardisation from those states;
2. for each precision stage (high to low bits): build the student at the stage's bits,
   warm-start it from the previous stage's weights (quantizer scales re-initialised from the
   new statistics), and take Adam steps on the actor-critic distillation loss over batches
   mixed from teacher-visited and student-visited (DAgger) states, the teacher labelling
   every batch; every ``dagger_interval`` steps the student drives the environments and its
   states join the student memory; save the stage's checkpoint;
2b. optionally (``finetune:``), improve the final student by PPO with a KL term towards the
   teacher (training/qpd/finetune.py), at the same precision;
3. evaluate the final student on the seeded evaluation episodes; write ``results.json``,
   curves and the size figures.

A run resumes at stage granularity: a stage whose checkpoint exists is loaded, not retrained.
"""

from __future__ import annotations

import io
import json
import logging
import math
import shutil
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from tqdm.auto import tqdm

from training import atomic
from training.qpd.finetune import finetune
from training.qpd.loss import distillation_loss
from training.envs import env_info
from training.errors import FlowError
from training.evaluation import eval_seeds, evaluate
from training.qpd.config import QPDConfig, same_computation
from training.qpd.replay import Collector, ObservationMemory, mix_fraction
from training.runs import CONFIG_FILE, RESULTS_FILE, RUN_FORMAT_VERSION, read_run_config, runs_root
from training.students.frozen import FrozenStudent
from training.students.size import student_size, teacher_size
from training.students.student import QuantStudent, StudentSpec, student_from_state, student_state, transfer_float_weights
from training.teacher.policy import TeacherPolicy

log = logging.getLogger("training.qpd.distill")

STUDENT_FILE = "student.pt"
CURVE_FILE = "distill_curve.csv"
STAGES_FILE = "stages.json"
FINETUNE_CURVE_FILE = "finetune_curve.json"
#: Seed bases of the distillation's own episodes: far above the evaluation seeds (1000..).
TEACHER_SEED_BASE = 10_000_000
STUDENT_SEED_BASE = 20_000_000
AGREEMENT_SEED_BASE = 30_000_000
STUDENT_AGREEMENT_SEED_BASE = 40_000_000


class StudentPolicy:
    """A student as a batch policy for evaluation: argmax, or the clipped mean.

    Make one per evaluation: the student must not change while it acts. A flat quantized
    student's weights and scales are read once, at the first call (:class:`FrozenStudent`, bit
    for bit its eval forward), instead of requantized by Brevitas at every step
    (``bench/bench_qat_rollout.py`` measures both); other students act through Brevitas.
    """

    def __init__(self, student: QuantStudent, low: np.ndarray | None = None, high: np.ndarray | None = None) -> None:
        self.student, self.low, self.high = student, low, high
        self._frozen: FrozenStudent | None = None

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        if FrozenStudent.supports(self.student.spec):
            if self._frozen is None:
                self._frozen = self._in_eval_mode(FrozenStudent)
            actions = self._frozen.act(obs)
        else:
            actions = self._in_eval_mode(lambda student: student.act(obs))
        if self.low is not None:
            actions = np.clip(actions, self.low, self.high)
        return actions

    def _in_eval_mode(self, fn: Callable[[QuantStudent], Any]) -> Any:
        """``fn(student)`` in eval mode, leaving the student's mode as it found it."""
        if not self.student.training:  # the usual case: train()/eval() walk every Brevitas submodule
            return fn(self.student)
        self.student.eval()
        try:
            return fn(self.student)
        finally:
            self.student.train()


def stage_file(index: int, spec: StudentSpec) -> str:
    """Checkpoint name of a precision stage, e.g. ``student-stage4-2x32-w2a2.pt``."""
    return f"student-stage{index}-{spec.label()}.pt"


def save_student(path: Path, student: QuantStudent, extra: dict[str, Any]) -> None:
    """Write a student checkpoint atomically."""
    buf = io.BytesIO()
    torch.save({**student_state(student), **extra}, buf)
    atomic.write_bytes(path, buf.getvalue())


#: numpy scalars some older checkpoints hold in their records: plain data, allowed by name to the weights-only unpickler.
_NUMPY_SCALARS = [np.dtype, *(type(np.dtype(t)) for t in ("float64", "float32", "int64", "int32", "bool"))]


def load_student(path: Path) -> tuple[QuantStudent, dict[str, Any]]:
    """Read a student checkpoint (raises :class:`FlowError` if missing, corrupt, or holding more than data).

    ``torch.load(weights_only=True)``: tensors, containers and plain values only, so a file carrying
    a pickled object (a ``__reduce__`` payload) is refused unread instead of running its code.
    """
    import pickle

    if not path.is_file():
        raise FlowError(f"student checkpoint {path} does not exist")
    try:
        scalar = getattr(np, "_core", np.core).multiarray.scalar
        with torch.serialization.safe_globals([scalar, *_NUMPY_SCALARS]):
            state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise FlowError(f"student checkpoint {path} holds objects other than tensors and plain data, so it was "
                        "refused unread (weights-only loading): it was not written by make distill") from None
    except Exception as exc:  # a damaged file can fail in zip or pickle reading
        raise FlowError(f"student checkpoint {path} is corrupt ({type(exc).__name__})") from None
    try:
        if not isinstance(state, dict):
            raise TypeError("not a dict")
        return student_from_state(state), state
    except FlowError:
        raise
    except Exception as exc:  # a checkpoint of another shape fails in state-dict loading
        raise FlowError(f"student checkpoint {path} is corrupt ({type(exc).__name__})") from None


def input_affine(states: np.ndarray) -> tuple[list[float], list[float]]:
    """Per-channel shift and scale that map the bulk of ``states`` into about [-1, 1]."""
    shift = (np.percentile(states, 99.9, axis=0) + np.percentile(states, 0.1, axis=0)) / 2
    half_range = np.percentile(np.abs(states - shift), 99.9, axis=0)
    scale = 1.0 / np.maximum(half_range, 1e-6)
    return shift.astype(float).tolist(), scale.astype(float).tolist()


def agreement(student: QuantStudent, teacher: TeacherPolicy, states: np.ndarray) -> float:
    """Discrete: share of states where the student's action is the teacher's. Continuous: 1 - mean |Δmean| / action range."""
    student.eval()
    with torch.no_grad():
        s_out = student.actor(torch.as_tensor(states))
    t = teacher.targets(states)
    if teacher.discrete:
        return float((s_out.argmax(-1) == t["logits"].argmax(-1)).float().mean())
    span = torch.as_tensor(teacher.model.action_space.high - teacher.model.action_space.low)
    return float(1.0 - ((s_out - t["mean"]).abs() / span).mean())


def student_spec_for(info, cfg: QPDConfig, shift: list[float], scale: list[float]) -> StudentSpec:
    """The student ``cfg`` asks for on the environment ``info`` describes (a pixel student on frames)."""
    if cfg.conv and not info.pixels:
        raise FlowError(f"{info.env_id} has flat observations {info.obs_shape}: a convolutional student (conv "
                        f"{cfg.conv}) needs frames; leave conv unset")
    if info.pixels and not cfg.conv:
        raise FlowError(f"{info.env_id} has frames {info.obs_shape}: its student needs convolutions (conv)")
    if info.pixels and not info.binary_obs:
        raise FlowError(f"{info.env_id} has non-binary frames: pixel students take binary frames (MinAtar) only so far")
    if cfg.output_affine and info.discrete:
        raise FlowError(f"{info.env_id} has discrete actions: output_affine (a per-action output scale and bias) is for "
                        "continuous actions, a hardware argmax needs one output scale")
    return StudentSpec(info.obs_dim, info.n_actions, info.discrete, tuple(cfg.hidden), cfg.weight_bits, cfg.act_bits,
                       cfg.input_bits, shift, scale, cfg.narrow_weights, obs_shape=info.obs_shape, conv=tuple(cfg.conv),
                       kernel=cfg.kernel, stride=cfg.stride, binary_input=info.pixels, first_bits=cfg.first_bits,
                       last_bits=cfg.last_bits, output_affine=cfg.output_affine,
                       critic_hidden=tuple(cfg.critic_hidden) if cfg.critic == "separate" else ())


def _cosine(progress: float, final_factor: float) -> float:
    return final_factor + (1 - final_factor) * 0.5 * (1 + math.cos(math.pi * progress))


def student_run_dir(cfg: QPDConfig) -> Path:
    """The default run folder of a distillation run."""
    return runs_root() / cfg.env_id / cfg.run_name()


def other_run(run_dir: Path, cfg: QPDConfig, teacher_sha256: str | None = None) -> str | None:
    """What ``run_dir`` holds where it is not the distillation ``cfg`` asks for, of the teacher whose
    weight fingerprint is ``teacher_sha256`` (where given: a retrained teacher in the same folder
    must neither resume nor reuse the old one's student), in words; None where it holds nothing
    or that run."""
    if not (run_dir / CONFIG_FILE).exists():
        return None
    old = read_run_config(run_dir)
    if old.get("kind") != "student" or not same_computation(old.get("qpd"), cfg):
        return "a run with another config"
    if teacher_sha256 is not None and old.get("teacher_sha256", teacher_sha256) != teacher_sha256:
        return "a student of another teacher (its weights differ)"
    return None


def distill(cfg: QPDConfig, teacher_dir: str | Path, run_dir: str | Path | None = None, *, force: bool = False,
            threads: int = 1, quiet: bool = False) -> dict[str, Any]:
    """Distil the teacher of ``teacher_dir`` as ``cfg`` says; return the ``results.json`` data."""
    teacher_dir = Path(teacher_dir)
    run_dir = Path(run_dir) if run_dir is not None else student_run_dir(cfg)
    teacher = TeacherPolicy.load(teacher_dir, cfg.env_id)
    teacher_sha256 = teacher.fingerprint()
    config = {"format_version": RUN_FORMAT_VERSION, "kind": "student", "env_id": cfg.env_id,
              "teacher": str(teacher_dir), "teacher_sha256": teacher_sha256, "qpd": cfg.to_dict()}
    if force and run_dir.exists():
        shutil.rmtree(run_dir)
    if (run_dir / CONFIG_FILE).exists():
        other = other_run(run_dir, cfg, teacher_sha256)
        if other:
            raise FlowError(f"{run_dir} holds {other}; pass FORCE=1 (--force) to replace it")
        if (run_dir / RESULTS_FILE).exists() and (run_dir / STUDENT_FILE).exists():
            results = json.loads((run_dir / RESULTS_FILE).read_text())
            if not quiet:
                print(f"student already distilled in {run_dir}: {results['mean_return']:.2f} ± {results['std_return']:.2f}")
            return results
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic.write_yaml(run_dir / CONFIG_FILE, config)
    torch.set_num_threads(threads)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    info = env_info(cfg.env_id)
    student_spec_for(info, cfg, [], [])  # refuse a student that does not fit the observations before any work
    t_start = time.perf_counter()

    # 1. Teacher memory, input affine, value standardisation.
    teacher_collector = Collector(cfg.env_id, cfg.n_envs, TEACHER_SEED_BASE + 100_000 * cfg.seed)
    teacher_mem = ObservationMemory(cfg.teacher_states, info.obs_shape)
    teacher_mem.add(teacher_collector.collect(teacher.sample, cfg.teacher_states))
    teacher_collector.close()
    held_out = Collector(cfg.env_id, cfg.n_envs, AGREEMENT_SEED_BASE + 100_000 * cfg.seed)
    agreement_states = held_out.collect(teacher.sample, cfg.agreement_states)
    held_out.close()
    binary = info.pixels and info.binary_obs  # binary frames go in as they are: no affine
    shift, scale = ([], []) if binary else input_affine(teacher_mem.data[: len(teacher_mem)].reshape(len(teacher_mem), -1))
    memory_targets = teacher.targets(teacher_mem.data[: len(teacher_mem)])
    values = memory_targets["value"]
    value_mean, value_std = float(values.mean()), float(values.std().clamp_min(1e-6))
    # The teacher's log-std where it has one: the student's Gaussian can start there (log_std_init: teacher).
    teacher_log_std = memory_targets["log_std"].reshape(-1, info.n_actions).mean(0) if "log_std" in memory_targets else None
    base_spec = student_spec_for(info, cfg, shift, scale)

    # 2. Precision stages.
    student_mem = ObservationMemory(cfg.student_memory, info.obs_shape)
    student_collector = Collector(cfg.env_id, cfg.n_envs, STUDENT_SEED_BASE + 100_000 * cfg.seed)
    low, high = (info.action_low, info.action_high) if not info.discrete else (None, None)
    stages, counts = cfg.stages(), cfg.stage_updates()
    total, done = sum(counts), 0
    curve: list[dict[str, Any]] = []
    stage_log: list[dict[str, Any]] = []
    earlier_wall = 0.0  # seconds spent on stages trained by an earlier, interrupted invocation
    prev: QuantStudent | None = None
    extra = {"value_mean": value_mean, "value_std": value_std, "env_id": cfg.env_id}
    bar = tqdm(total=total, desc=f"{cfg.method} {base_spec.label()}", unit="upd", disable=quiet or None, dynamic_ncols=True)
    for index, ((wbits, abits), n_updates) in enumerate(zip(stages, counts)):
        spec = base_spec.with_bits(wbits, abits)
        path = run_dir / stage_file(index, spec)
        if path.exists():
            student, state = load_student(path)
            log.info("stage %d (%s) loaded from %s", index, spec.label(), path.name)
            if "stage" in state:
                stage_log.append(state["stage"])
                earlier_wall += float(state["stage"].get("wall_s", 0.0))
            done += n_updates
            bar.update(n_updates)
            prev = student
            continue
        t_stage = time.perf_counter()
        student = QuantStudent(spec)
        if prev is not None:
            transfer_float_weights(prev, student)
        elif cfg.log_std_init == "teacher" and teacher_log_std is not None:
            with torch.no_grad():
                student.log_std.copy_(teacher_log_std)
        student.train()
        optimizer = torch.optim.Adam(student.parameters(), lr=cfg.lr)
        stage_start = done
        for step in range(n_updates):
            progress = (stage_start + step) / total if cfg.lr_schedule == "global" else step / n_updates
            for group in optimizer.param_groups:
                group["lr"] = cfg.lr * _cosine(progress, cfg.lr_final_factor)
            beta = mix_fraction(done / total, cfg.mix_start, cfg.mix_end) if cfg.dagger and len(student_mem) else 0.0
            n_student = int(round(beta * cfg.batch_size))
            obs = teacher_mem.sample(cfg.batch_size - n_student, rng)
            if n_student:
                obs = np.concatenate([obs, student_mem.sample(n_student, rng)])
            targets = teacher.targets(obs)
            targets["value"] = (targets["value"] - value_mean) / value_std
            if cfg.clip_targets and not info.discrete:
                targets["mean"] = torch.clamp(targets["mean"], torch.as_tensor(low), torch.as_tensor(high))
            out, value = student(torch.as_tensor(obs))
            loss, parts = distillation_loss(out, value, targets, cfg.loss, discrete=info.discrete,
                                            student_log_std=student.log_std)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            done += 1
            if cfg.dagger and done % cfg.dagger_interval == 0:
                student.eval()
                student_mem.add(student_collector.collect(StudentPolicy(student, low, high), cfg.dagger_steps))
                student.train()
            if done % 100 == 0 or step == n_updates - 1:
                curve.append({"update": done, "stage": index, "bits": spec.label(), "mix": round(beta, 4), **parts})
                bar.set_postfix(stage=f"{index}:{spec.label()}", loss=f"{parts['loss']:.4f}")
            bar.update(1)
        student.eval()
        quick = evaluate(StudentPolicy(student, low, high), cfg.env_id, eval_seeds(cfg.stage_eval_episodes))
        entry = {"stage": index, "label": spec.label(), "weight_bits": wbits, "act_bits": abits, "updates": n_updates,
                 "mean_return": quick.mean, "std_return": quick.std, "episodes": cfg.stage_eval_episodes,
                 "agreement": agreement(student, teacher, agreement_states), "checkpoint": path.name,
                 "wall_s": round(time.perf_counter() - t_stage, 1)}
        stage_log.append(entry)
        log.info("stage %d %s: return %.2f, agreement %.3f", index, spec.label(), quick.mean, entry["agreement"])
        save_student(path, student, {**extra, "stage": entry})
        prev = student
    bar.close()
    student_collector.close()
    assert prev is not None
    student = prev
    final_path = run_dir / stage_file(len(stages) - 1, student.spec)
    if cfg.finetune is not None:  # RL fine-tuning at the target precision (training/qpd/finetune.py)
        student, final_path, earlier_wall = _finetune_stage(student, teacher, cfg, run_dir, extra, stage_log, low, high,
                                                            earlier_wall, quiet)
    wall = time.perf_counter() - t_start + earlier_wall

    # 3. Final evaluation and the record.
    save_student(run_dir / STUDENT_FILE, student, {**extra, "stage_checkpoint": final_path.name})
    result = evaluate(StudentPolicy(student, low, high), cfg.env_id, eval_seeds(cfg.eval_episodes),
                      progress=not quiet, desc="evaluating student")
    # Agreement on the states the final student itself visits (its own seeds): where DAgger's data comes from.
    own = Collector(cfg.env_id, cfg.n_envs, STUDENT_AGREEMENT_SEED_BASE + 100_000 * cfg.seed)
    own_states = own.collect(StudentPolicy(student, low, high), cfg.agreement_states)
    own.close()
    s_size, t_size = student_size(student.spec), teacher_size(teacher)
    teacher_results_path = teacher_dir / RESULTS_FILE
    teacher_results = json.loads(teacher_results_path.read_text()) if teacher_results_path.exists() else {}
    results = {
        "format_version": RUN_FORMAT_VERSION, "policy": "student", "method": cfg.method,
        "student": student.spec.label(), "checkpoint": STUDENT_FILE,
        "size": {"student": s_size.to_dict(), "teacher": t_size.to_dict(),
                 "ratio": s_size.total_bits / t_size.total_bits,
                 "counted": "actor only: weights at their bit width, biases at 32 bits"},
        "agreement_with_teacher": agreement(student, teacher, agreement_states),
        "agreement_on_student_states": agreement(student, teacher, own_states),
        "teacher": {"run": str(teacher_dir), "mean_return": teacher_results.get("mean_return"),
                    "std_return": teacher_results.get("std_return"), "weights_sha256": teacher_sha256},
        "stages": stage_log,
        "distill_wall_s": round(wall, 1), "updates": total,
        **result.to_dict(),
    }
    atomic.write_json(run_dir / RESULTS_FILE, results)
    atomic.write_json(run_dir / STAGES_FILE, stage_log)
    if curve:
        _write_curves(run_dir, curve, cfg)
    if not quiet:
        print(summary_line(results, run_dir))
    return results


def _finetune_stage(student: QuantStudent, teacher: TeacherPolicy, cfg: QPDConfig, run_dir: Path,
                    extra: dict[str, Any], stage_log: list[dict[str, Any]], low, high, earlier_wall: float,
                    quiet: bool) -> tuple[QuantStudent, Path, float]:
    """Run (or load, when an earlier invocation finished it) the RL fine-tuning stage; return the
    student, its checkpoint and the wall time of earlier invocations."""
    assert cfg.finetune is not None
    path = run_dir / f"student-finetune-{student.spec.label()}.pt"
    if path.exists():
        loaded, state = load_student(path)
        if "stage" in state:
            stage_log.append(state["stage"])
            earlier_wall += float(state["stage"].get("wall_s", 0.0))
        log.info("RL fine-tuning loaded from %s", path.name)
        return loaded, path, earlier_wall
    t0 = time.perf_counter()
    student, curve = finetune(student, teacher, cfg.env_id, cfg.finetune, n_envs=cfg.n_envs, seed=cfg.seed,
                              critic_hidden=cfg.critic_hidden, action_low=low, action_high=high, quiet=quiet)
    quick = evaluate(StudentPolicy(student, low, high), cfg.env_id, eval_seeds(cfg.stage_eval_episodes))
    entry = {"stage": "finetune", "label": student.spec.label(), "env_steps": curve[-1]["env_steps"],
             "mean_return": quick.mean, "std_return": quick.std, "episodes": cfg.stage_eval_episodes,
             "checkpoint": path.name, "wall_s": round(time.perf_counter() - t0, 1)}
    stage_log.append(entry)
    atomic.write_json(run_dir / FINETUNE_CURVE_FILE, curve)
    save_student(path, student, {**extra, "stage": entry})
    return student, path, earlier_wall


def summary_line(results: dict[str, Any], run_dir: Path) -> str:
    """What a person reads at the end of ``make distill``."""
    t = results["teacher"]
    teacher = f"teacher {t['mean_return']:.2f} ± {t['std_return']:.2f}" if t.get("mean_return") is not None else "teacher n/a"
    return (f"{results['method']} student {results['student']}: {results['mean_return']:.2f} ± {results['std_return']:.2f} "
            f"over {results['n_episodes']} episodes ({teacher}); size {results['size']['student']['total_bits']:,} bits = "
            f"{100 * results['size']['ratio']:.3f} % of the teacher's actor; agreement with the teacher "
            f"{100 * results['agreement_with_teacher']:.1f} %; {results['distill_wall_s']:.0f} s\n  run folder {run_dir}")


def _write_curves(run_dir: Path, curve: list[dict[str, Any]], cfg: QPDConfig) -> None:
    import csv

    from training.plots import plt, save_figure

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(curve[0]))
    writer.writeheader()
    writer.writerows(curve)
    atomic.write_text(run_dir / CURVE_FILE, buf.getvalue())
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    ax.semilogy([r["update"] for r in curve], [max(r["policy"], 1e-8) for r in curve], label="policy KL")
    ax.semilogy([r["update"] for r in curve], [max(r["value"], 1e-8) for r in curve], label="value loss", alpha=0.7)
    for stage in sorted({r["stage"] for r in curve})[1:]:
        first = min(r["update"] for r in curve if r["stage"] == stage)
        ax.axvline(first, color="grey", lw=0.8, ls=":")
    ax.set_xlabel("update (dotted: a new precision stage)")
    ax.set_ylabel("loss")
    ax.set_title(f"{cfg.method} on {cfg.env_id}: {cfg.run_name()}")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    save_figure(fig, run_dir / "distill_curve.png")
