"""The hardware stages as Python functions: :func:`export`, :func:`estimate`, :func:`verify`.

Each returns a result dataclass (never None); ``make export|estimate|codegen|verify``
(``python -m hw_build``) call them, and :mod:`flow.api` gathers them with the other stages.
They wrap :mod:`hw_build.export`, :mod:`hw_build.compile` and :mod:`hw_build.verify`, which
write the design folder (``bitstreams/<design>``, or ``$QPD_BITSTREAMS/<design>``).
Every resource figure here is FINN's estimate (est.), not synthesis.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class ExportResult:
    """A student exported to QONNX: the design folder and the Brevitas-vs-QONNX parity record."""

    design: str
    folder: Path
    action_agreement: float
    n_states: int
    record: dict[str, Any] = field(repr=False)


@dataclass(frozen=True)
class EstimateResult:
    """FINN's estimate of a design (est.): resources with the Zynq shell counted, throughput, latency."""

    design: str
    folder: Path
    resources: dict[str, float]
    utilisation: dict[str, float]
    fps: float
    latency_ns: float
    fits: bool
    estimate: Any = field(repr=False)  # hw_build.compile.Estimate


@dataclass(frozen=True)
class VerifyResult:
    """The verification ladder on real states: each level's agreement and the verdict."""

    design: str
    passed: bool
    levels: list[dict[str, Any]]
    record: dict[str, Any] = field(repr=False)


def export(run_dir: str | Path, design: str | None = None, *, force: bool = False, states: int = 1000) -> ExportResult:
    """Export a distilled student's actor to ``<design>/policy.qonnx.onnx`` with the parity check
    (``make export``); raises :class:`~training.errors.FlowError` where QONNX disagrees with Brevitas."""
    from hw_build.design import design_dir
    from hw_build.export import export_design

    record = export_design(run_dir, design, force=force, n_states=states)
    parity = record["parity"]
    return ExportResult(record["design"], design_dir(record["design"]), float(parity["action_agreement"]),
                        int(parity["n_states"]), record)


def estimate(design: str, *, input: str = "integer", objective: str = "smallest", latency_us: float | None = None,
             target_fps: int | None = None, clock_ns: float = 10.0, impl: str = "hls", kind: str = "estimate",
             quiet: bool = False, weights: str = "fixed") -> EstimateResult:
    """FINN build up to the estimates, the folding chosen and ``accel.json`` written (``make estimate``;
    ``kind="codegen"``: the HLS/RTL sources too, as ``make codegen``; ``weights="runtime"``: a writable
    design, :mod:`hw_build.runtime_weights`)."""
    from hw_build.compile import BuildChoice, estimate_design
    from hw_build.design import design_dir

    choice = BuildChoice(input_mode=input, objective=objective, latency_us=latency_us, target_fps=target_fps,
                         clock_ns=clock_ns, impl=impl, weights=weights)
    est = estimate_design(design, choice=choice, kind=kind, quiet=quiet)
    return EstimateResult(design, design_dir(design), dict(est.with_shell), dict(est.utilisation), float(est.fps),
                          float(est.latency_ns), bool(est.fits), est)


def verify(design: str, *, states: int = 10_000) -> VerifyResult:
    """The verification ladder (Brevitas, QONNX, FINN graphs) on real states (``make verify``);
    raises :class:`~training.errors.FlowError` where a level disagrees."""
    from hw_build.verify import verify_design

    record = verify_design(design, n_states=states)
    return VerifyResult(design, bool(record["passed"]), list(record["levels"]), record)
