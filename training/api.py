"""The training stage as a Python function: :func:`distill` returns a :class:`DistillResult`.

``make distill`` (``python -m training distill``) calls it; :mod:`flow.api` gathers it with the
hardware stages. It wraps :func:`training.qpd.distill.distill`, which writes the run folder.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class DistillResult:
    """A distilled student: its run folder and what ``results.json`` records."""

    run_dir: Path
    env_id: str
    method: str
    student: str
    mean_return: float
    std_return: float
    n_episodes: int
    agreement_with_teacher: float
    student_bits: int
    teacher_bits: int
    results: dict[str, Any] = field(repr=False)

    @classmethod
    def from_results(cls, run_dir: Path, results: dict[str, Any]) -> "DistillResult":
        """Read the summary out of a ``results.json`` mapping."""
        size = results["size"]
        return cls(Path(run_dir), results["env_id"], results["method"], results["student"],
                   float(results["mean_return"]), float(results["std_return"]), int(results["n_episodes"]),
                   float(results["agreement_with_teacher"]), int(size["student"]["total_bits"]),
                   int(size["teacher"]["total_bits"]), results)


def distill(env_id: str | None = None, teacher: str | Path | None = None, *, config: str | Path | None = None,
            run_dir: str | Path | None = None, force: bool = False, quiet: bool = False,
            **settings: Any) -> DistillResult:
    """Distil a teacher into a low-bit Brevitas student (``make distill``).

    Args:
        env_id: gymnasium id; default: the config file's, else the teacher's, else CartPole-v1.
        teacher: a teacher run folder, a stable-baselines3 PPO/SAC ``.zip`` or an rl-baselines3-zoo
            log folder (pickles: trusted teachers only); default ``runs/<env>/ppo-teacher-s0``,
            trained first where it is missing.
        config: a YAML file of distillation settings (:mod:`training.qpd.config`).
        run_dir: the run folder (default ``runs/<env>/<method>-<arch>-w<b>a<b>-s<seed>``).
        force: replace an existing run folder.
        quiet: print nothing.
        settings: any :class:`~training.qpd.config.QPDConfig` field, e.g. ``weight_bits=2``,
            ``hidden=[32, 32]``, ``updates=8000`` (``None`` values are ignored).

    Raises :class:`~training.errors.FlowError` (one sentence) for bad input.
    """
    from training.qpd.config import load_qpd_config
    from training.qpd.distill import distill as run_distill
    from training.qpd.distill import student_run_dir
    from training.teacher.train import ensure_teacher

    if env_id is None and teacher is not None:  # the teacher says its environment
        from training.errors import FlowError
        from training.teacher.policy import teacher_env_id

        env_id = teacher_env_id(teacher)
        if env_id is None:
            raise FlowError(f"the environment of teacher {teacher} is not in its name: give it with ENV=<id>")
    cfg = load_qpd_config(config, env_id=env_id, **settings)
    out = Path(run_dir) if run_dir is not None else student_run_dir(cfg)
    results = run_distill(cfg, ensure_teacher(cfg.env_id, None if teacher is None else str(teacher)), out,
                          force=force, quiet=quiet)
    return DistillResult.from_results(out, {"env_id": cfg.env_id, **results})
