"""The flow's stages as Python functions, each returning a result dataclass.

    from flow.api import distill, export, estimate, verify, compare

    student = distill("CartPole-v1", weight_bits=2)          # DistillResult
    design = export(student.run_dir, "my-cartpole")           # ExportResult
    est = estimate(design.design)                             # EstimateResult (FINN's estimate, est.)
    ladder = verify(design.design)                            # VerifyResult
    report = compare(design.design, episodes=20)              # CompareResult (emulated fabric)

The command lines call the same functions (``make distill`` -> :func:`training.api.distill`,
``make export|estimate|verify`` -> :mod:`hw_build.api`, ``make compare`` -> :func:`compare`).
A bad input raises :class:`training.errors.FlowError` (:class:`host.errors.HostError` from the
host's checks), whose message is the one sentence the command line prints.
On the board, the design's policy is :class:`host.FpgaPolicy`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hw_build.api import EstimateResult, ExportResult, VerifyResult, estimate, export, verify
from training.api import DistillResult, distill

__all__ = ["CompareResult", "DistillResult", "EstimateResult", "ExportResult", "VerifyResult", "compare", "distill",
           "estimate", "export", "verify"]


@dataclass(frozen=True)
class CompareResult:
    """Hardware vs software on the same seeds: the accelerator's and each software policy's returns."""

    design: str
    env_id: str
    backend: str
    episodes: int
    hardware_mean_return: float
    hardware_std_return: float
    software: dict[str, dict[str, Any]]  # per policy: mean_return, std_return, step_agreement, paired_test, ...
    report_dir: Path
    report: dict[str, Any] = field(repr=False)


def compare(design: str, *, backend: str = "emulated", episodes: int = 100, num_envs: int = 1, env: str | None = None,
            board: str | None = None, out: str | Path | None = None) -> CompareResult:
    """``make compare``: the accelerator (emulated here, ``backend="remote"`` with ``board="<host>:<port>"``
    for a board serving it) against FINN's execution, the Brevitas student and the float teacher on
    the same seeds; writes ``compare.md/json/png`` into ``<design>/compare-<backend>`` (or ``out``)."""
    from flow.cli import build_parser

    argv = ["compare", "--design", str(design), "--backend", backend, "--episodes", str(episodes),
            "--num-envs", str(num_envs)]
    argv += ["--env", env] if env else []
    argv += ["--board", board] if board else []
    argv += ["--out", str(out)] if out else []
    return compare_args(build_parser().parse_args(argv))


def compare_args(args: Any) -> CompareResult:
    """:func:`compare` from the parsed options of ``python -m flow compare``."""
    from flow.compare import policy_references, workstation_references
    from host.cli import compare as host_compare
    from host.cli import resolve_design

    references = workstation_references
    if getattr(args, "run", None) or getattr(args, "policy", None):
        package = student_package(args.design, getattr(args, "run", None), args.policy)
        args.policy = str(package)
        finn = not getattr(args, "no_finn_reference", False)
        references = lambda design, spec: policy_references(package, spec, finn)  # noqa: E731
    report = host_compare(args, references, prog="python -m flow")
    folder = resolve_design(args.design)
    hw = report["hardware"]
    return CompareResult(report.get("design", folder.name), report.get("env_id", ""), args.backend,
                         int(report["episodes"]), float(hw["mean_return"]), float(hw["std_return"]),
                         dict(report["software"]), Path(args.out) if args.out else folder / (
                             f"compare-{args.backend}" + (f"-{Path(args.policy).name}" if args.policy else "")),
                         report)


def student_package(design: str, run: str | None, policy: str | None) -> Path:
    """A writable design's policy package for a student: a package already made (``policy``: its name in
    ``<design>/policies/`` or its folder), or one ``make load-policy`` prepares now from a run folder or an
    exported design folder."""
    from host.cli import resolve_design
    from host.design.policy_package import POLICIES_DIR, POLICY_FILE
    from hw_build.load_policy import prepare_policy

    folder = resolve_design(design)
    if run:
        return prepare_policy(folder.name, run=run, quiet=True)
    for candidate in (Path(policy), folder / POLICIES_DIR / policy):
        if (candidate / POLICY_FILE).is_file():
            return candidate
    return prepare_policy(folder.name, policy=policy, quiet=True)
