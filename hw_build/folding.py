"""Choosing a design's folding for the control loop, and the report of every folding tried.

FINN folds a design for a throughput target (``target_fps``). A control loop calls the
accelerator once per environment step, some 10^4 to 10^5 times a second at most from the
ARM, so throughput beyond that is never used; what the loop feels is the fabric's latency,
which is small next to the host's per-call time once it is a few microseconds. So the default
objective, ``smallest``, takes the folding with the fewest resources (LUT, then BRAM_18K, then
DSP) whose estimated fabric latency is within the budget (``LATENCY_US``, default
:data:`DEFAULT_LATENCY_US`); ``fastest`` keeps the former rule, the fastest folding that fits
comfortably. Candidates come from FINN's own folding (``SetFolding`` through ``target_fps``)
over :data:`FPS_LADDER`, fastest first; every figure is FINN's estimate.
"""

from __future__ import annotations

import io
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

from training import atomic
from training.errors import FlowError

#: Throughput targets handed to FINN's folding, fastest first (inferences per second).
FPS_LADDER = (100_000_000, 30_000_000, 10_000_000, 3_000_000, 1_000_000, 500_000, 300_000, 100_000, 30_000,
              10_000, 1_000)
#: Default fabric latency budget: 2 µs is a tenth of the fastest host call measured for the demo
#: design in the bench (about 20 µs per call on this workstation; several times more on the
#: board's Cortex-A9), so the fabric stays a small share of every control-loop step.
DEFAULT_LATENCY_US = 2.0
#: Default budget of a design that takes frames: the sliding window streams a frame's pixels one
#: by one (a MinAtar frame is 100 pixels, 1 µs at 100 MHz at the very least; FINN's fastest folding
#: of the default pixel student is est. 4.1 µs, and 2 µs is out of reach). One MinAtar step alone
#: takes 6-8 µs in numpy on this workstation (bench/bench_pixels.py) and several times that on the
#: board's Cortex-A9, so 10 µs keeps the fabric below the rest of one control-loop step.
PIXEL_LATENCY_US = 10.0


def default_latency_us(qonnx_path) -> float:
    """The default latency budget of a design: :data:`PIXEL_LATENCY_US` for frames, else :data:`DEFAULT_LATENCY_US`."""
    from qonnx.core.modelwrapper import ModelWrapper

    model = ModelWrapper(str(qonnx_path))
    return PIXEL_LATENCY_US if len(model.get_tensor_shape(model.graph.input[0].name)) == 4 else DEFAULT_LATENCY_US


#: FINN's ``SetFolding`` widens an MVAU's SIMD only while the weights it reads per PE and cycle
#: stay within this many bits (``DataflowBuildConfig.mvau_wwidth_max``, FINN's default): 4 lanes
#: at 8-bit weights, 18 at 2-bit. The convolution of an 8-bit pixel student is bound by it.
DEFAULT_MVAU_WWIDTH = 36
#: Wider weight streams the ``smallest`` search tries, in order, when no folding at the default
#: reaches the latency budget (each costs LUT or BRAM for the wider weight memory; the estimates say how much).
WIDER_MVAU_WWIDTHS = (72, 144, 288)
OBJECTIVES = ("smallest", "fastest")
FOLDING_FILES = ("folding.json", "folding.md", "folding.png")


@dataclass
class FoldingPoint:
    """One folding FINN produced, with its estimates."""

    target_fps: int
    resources: dict[str, float]
    latency_ns: float
    fps: float
    folding: dict[str, dict[str, int]]
    fits_comfortably: bool
    mvau_wwidth_max: int = DEFAULT_MVAU_WWIDTH

    @property
    def cost(self) -> tuple[float, float, float, float]:
        """What ``smallest`` minimises: LUT, then BRAM_18K, then DSP (then latency)."""
        r = self.resources
        return r.get("LUT", 0.0), r.get("BRAM_18K", 0.0), r.get("DSP", 0.0), self.latency_ns

    def to_dict(self) -> dict[str, Any]:
        """JSON-able fields."""
        return asdict(self)


def explore(build: Callable[[int, int], FoldingPoint], objective: str, latency_us: float) -> list[FoldingPoint]:
    """Foldings along :data:`FPS_LADDER`, as far as the objective needs; ``build(target_fps, mvau_wwidth_max)``.

    ``smallest`` walks from the fastest target down and stops at the first folding over the
    latency budget (slower targets only get slower); where none at FINN's default weight-stream
    width (:data:`DEFAULT_MVAU_WWIDTH`) is within the budget, it walks again at each of
    :data:`WIDER_MVAU_WWIDTHS` until one is. ``fastest`` stops at the first that fits comfortably,
    at the default width. Identical foldings are kept once.
    """
    points: list[FoldingPoint] = []
    _walk(build, objective, latency_us, DEFAULT_MVAU_WWIDTH, points)
    if objective == "smallest":
        for width in WIDER_MVAU_WWIDTHS:
            if any(p.latency_ns <= latency_us * 1000 for p in points):
                break
            _walk(build, objective, latency_us, width, points)
    return points


def _walk(build: Callable[[int, int], FoldingPoint], objective: str, latency_us: float, width: int,
          points: list[FoldingPoint]) -> None:
    for fps in FPS_LADDER:
        point = build(fps, width)
        if any(p.folding == point.folding for p in points):
            continue
        points.append(point)
        if objective == "fastest" and point.fits_comfortably:
            break
        if objective == "smallest" and point.latency_ns > latency_us * 1000:
            break


def _how(point: FoldingPoint) -> str:
    """``target_fps 1,000,000`` and, where it is not FINN's default, the weight-stream width."""
    wider = "" if point.mvau_wwidth_max == DEFAULT_MVAU_WWIDTH else f", weights ≤ {point.mvau_wwidth_max} bits per PE"
    return f"target_fps {point.target_fps:,}{wider}"


def choose(points: list[FoldingPoint], objective: str, latency_us: float,
           budget_given: bool = True) -> tuple[FoldingPoint, str]:
    """The folding the objective picks, and why in words. An impossible budget is refused when the
    user set it (``budget_given``); the default budget gives way to the fastest folding, and says so."""
    if objective == "fastest":
        fitting = [p for p in points if p.fits_comfortably]
        if not fitting:
            raise FlowError(f"no folding fits the xc7z020 comfortably, even at {FPS_LADDER[-1]:,} inferences/s")
        return fitting[0], f"fastest that fits comfortably (target_fps {fitting[0].target_fps:,})"
    within = [p for p in points if p.latency_ns <= latency_us * 1000]
    if not within:
        best = min(points, key=lambda p: p.latency_ns)
        if not budget_given and best.fits_comfortably:
            return best, (f"fastest folding, est. {best.latency_ns / 1000:.2f} µs: no folding reaches the default "
                          f"{latency_us:g} µs ({_how(best)}; {len(points)} foldings tried)")
        raise FlowError(f"no folding reaches LATENCY_US={latency_us:g}: the fastest FINN's folding reaches is "
                        f"{best.latency_ns / 1000:.2f} µs est. ({_how(best)}); raise LATENCY_US")
    best = min(within, key=lambda p: p.cost)
    return best, (f"fewest resources within {latency_us:g} µs est. latency ({_how(best)}; "
                  f"{len(points)} foldings tried)")


def write_folding_report(out: Path, points: list[FoldingPoint], chosen: FoldingPoint, objective: str,
                         latency_us: float) -> list[Path]:
    """``folding.json``, ``folding.md`` and ``folding.png`` in the design folder."""
    data = {"objective": objective, "latency_budget_us": latency_us if objective == "smallest" else None,
            "figures": "FINN estimates (est.), dataflow partition only",
            "chosen_target_fps": chosen.target_fps, "chosen_mvau_wwidth_max": chosen.mvau_wwidth_max,
            "points": [p.to_dict() for p in points]}
    atomic.write_json(out / FOLDING_FILES[0], data)
    atomic.write_text(out / FOLDING_FILES[1], folding_markdown(points, chosen, objective, latency_us))
    _plot(out / FOLDING_FILES[2], points, chosen, objective, latency_us)
    return [out / name for name in FOLDING_FILES]


def folding_table(points: list[FoldingPoint], chosen: FoldingPoint) -> list[str]:
    """Rows of the foldings tried (what ``make estimate`` prints and folding.md shows)."""
    rows = ["| target fps | weight bits per PE (≤) | est. LUT | est. BRAM_18K | est. DSP | est. latency (µs) "
            "| est. inferences/s | |",
            "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    for p in points:
        r = p.resources
        rows.append(f"| {p.target_fps:,} | {p.mvau_wwidth_max} | {r.get('LUT', 0):,.0f} | {r.get('BRAM_18K', 0):,.0f} "
                    f"| {r.get('DSP', 0):,.0f} "
                    f"| {p.latency_ns / 1000:.2f} | {p.fps:,.0f} | {'**chosen**' if p is chosen else ''} |")
    return rows


def folding_markdown(points: list[FoldingPoint], chosen: FoldingPoint, objective: str, latency_us: float) -> str:
    """``folding.md``."""
    rule = (f"fewest resources (LUT, then BRAM_18K, then DSP) whose estimated fabric latency is within "
            f"{latency_us:g} µs" if objective == "smallest" else "the fastest folding that fits comfortably")
    return "\n".join([f"# Folding ({objective})", "", f"Rule: {rule}. All figures are FINN estimates of the "
                      "dataflow partition (the Zynq shell is not included here; see estimate.json's fit check).", "",
                      *folding_table(points, chosen), ""])


def _plot(path: Path, points: list[FoldingPoint], chosen: FoldingPoint, objective: str, latency_us: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(11, 3.4))
    for ax, key in zip(axes, ("LUT", "BRAM_18K", "DSP")):
        ax.plot([p.latency_ns / 1000 for p in points], [p.resources.get(key, 0) for p in points], "o-", ms=4)
        ax.plot([chosen.latency_ns / 1000], [chosen.resources.get(key, 0)], "r*", ms=12, label="chosen")
        if objective == "smallest":
            ax.axvline(latency_us, color="grey", ls=":", label=f"budget {latency_us:g} µs")
        ax.set_xscale("log")
        ax.set_xlabel("est. fabric latency (µs, log)")
        ax.set_ylabel(f"est. {key}")
        ax.grid(alpha=0.3, which="both")
    axes[0].legend(fontsize=7)
    fig.suptitle(f"foldings tried (FINN estimates), objective {objective}")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    atomic.write_bytes(path, buf.getvalue())
