"""Compiling a design with finn-plus for the PYNQ-Z2: estimate, code generation, bitstream.

One FINN dataflow build per command, through finn-plus's Python API (``build_dataflow_cfg``),
board ``Pynq-Z2`` with the Zynq shell. The flow's own step, :func:`step_qpd_output_head`, runs
right after streamlining: discrete policies get their argmax as a LabelSelect layer inside
the accelerator; continuous ones hand their output scale to the host.

Folding: the default is the fastest one that fits comfortably (every resource at most
:data:`COMFORT` of the xc7z020): we ask FINN's folding for ever lower throughput, from "as
parallel as it gets", until the estimate fits.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from training import atomic
from training.errors import FlowError

BOARD = "Pynq-Z2"
PART = "xc7z020clg400-1"
#: Resources of the xc7z020 (BRAM counted as 18 Kb halves, as FINN's estimates do).
XC7Z020 = {"LUT": 53_200, "FF": 106_400, "BRAM_18K": 280, "DSP": 220}
#: A design fits comfortably when no resource estimate exceeds this share of the part.
COMFORT = 0.7
#: Throughput targets tried by the default folding, fastest first (inferences per second).
FPS_LADDER = (100_000_000, 10_000_000, 3_000_000, 1_000_000, 300_000, 100_000, 30_000, 10_000, 1_000)
EXIT_NO_VIVADO = 3


def step_qpd_output_head(model, cfg):
    """FINN build step: the output head this flow needs (see the module docstring)."""
    from hw_build.transforms import InsertLabelSelectHead, StripOutputScale

    action = model.get_metadata_prop("qpd_action")
    if action == "discrete":
        return model.transform(InsertLabelSelectHead())
    if action == "continuous":
        return model.transform(StripOutputScale())
    raise FlowError("the QONNX model has no qpd_action metadata: export it with make export")


def _steps(kind: str) -> list:
    import finn.builder.build_dataflow_config as bc

    base = {"estimate": bc.estimate_only_dataflow_steps, "codegen": bc.hw_codegen_dataflow_steps,
            "bitstream": bc.default_build_dataflow_steps}[kind]
    steps: list = list(base)
    steps.insert(steps.index("step_streamline") + 1, step_qpd_output_head)
    return steps


def build_config(out_dir: Path, kind: str, target_fps: int, clock_ns: float, save_models: bool = True):
    """The ``DataflowBuildConfig`` of an estimate, codegen or bitstream build."""
    import finn.builder.build_dataflow_config as bc

    outputs = [bc.DataflowOutputType.ESTIMATE_REPORTS]
    if kind == "bitstream":
        outputs += [bc.DataflowOutputType.STITCHED_IP, bc.DataflowOutputType.BITFILE,
                    bc.DataflowOutputType.PYNQ_DRIVER, bc.DataflowOutputType.DEPLOYMENT_PACKAGE]
    return bc.DataflowBuildConfig(
        output_dir=str(out_dir), steps=_steps(kind), generate_outputs=outputs, target_fps=int(target_fps),
        synth_clk_period_ns=float(clock_ns), board=BOARD, shell_flow_type=bc.ShellFlowType.VIVADO_ZYNQ,
        save_intermediate_models=save_models, verbose=False, console_log_level=bc.LogLevel.NONE)


def run_build(qonnx: Path, cfg) -> None:
    """Run one FINN build; a failure becomes one sentence naming the step and the reason.

    FINN's builder replaces ``sys.stdout``/``sys.stderr`` with loggers that echo to the
    console and resets the root logger; its log goes to ``build_dataflow.log`` in the output
    folder either way. We hand it loggers that echo nowhere, and restore ours afterwards, so
    a command prints only its own summary.
    """
    import io
    import logging
    import sys

    from finn.builder.build_dataflow import PrintLogger, build_dataflow_cfg

    root = logging.getLogger()
    saved = sys.stdout, sys.stderr, root.handlers[:], root.level
    sink = io.StringIO()
    build_log = logging.getLogger("build_dataflow")
    sys.stdout, sys.stderr = PrintLogger(build_log, logging.INFO, sink), PrintLogger(build_log, logging.ERROR, sink)
    try:
        rc = build_dataflow_cfg(str(qonnx), cfg)
    except Exception as exc:  # FINN re-raises instead of returning an exit code under pytest
        rc, failure = -1, f"{type(exc).__name__}: {exc}"
    else:
        failure = None
    finally:
        sys.stdout, sys.stderr = saved[0], saved[1]
        root.handlers[:] = saved[2]
        root.setLevel(saved[3])
        logging.captureWarnings(False)
    if failure is not None:
        raise FlowError(f"FINN could not compile {qonnx}: {failure[:400]}")
    if rc != 0:
        log = Path(cfg.output_dir) / "build_dataflow.log"
        raise FlowError(f"FINN could not compile {qonnx}: {_failure_reason(log)} (full log: {log})")


def _failure_reason(log: Path) -> str:
    if not log.exists():
        return "the build failed before writing its log"
    lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    step = next((ln.split("Running step:")[1].split("[")[0].strip() for ln in reversed(lines) if "Running step:" in ln), "?")
    errors = [ln for ln in lines if "Error" in ln or "error" in ln or "not supported" in ln.lower()]
    return f"step {step} failed: {errors[-1][:300] if errors else lines[-1][:300]}"


@dataclass
class Estimate:
    """FINN's estimates of one build, against the xc7z020."""

    resources: dict[str, float]
    fps: float
    latency_ns: float
    target_fps: int
    clock_ns: float

    @property
    def utilisation(self) -> dict[str, float]:
        """Share of the part used by each estimated resource."""
        return {k: self.resources.get(k, 0.0) / XC7Z020[k] for k in ("LUT", "BRAM_18K", "DSP")}

    @property
    def fits(self) -> bool:
        """Every estimated resource within the part."""
        return all(u <= 1.0 for u in self.utilisation.values())

    @property
    def fits_comfortably(self) -> bool:
        """Every estimated resource within :data:`COMFORT` of the part."""
        return all(u <= COMFORT for u in self.utilisation.values())

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary."""
        return {"board": BOARD, "part": PART, "clock_ns": self.clock_ns, "target_fps": self.target_fps,
                "resources": self.resources, "part_resources": XC7Z020, "utilisation": self.utilisation,
                "estimated_fps": self.fps, "estimated_latency_ns": self.latency_ns, "fits": self.fits,
                "fits_comfortably": self.fits_comfortably, "comfort_limit": COMFORT}

    def summary(self, design: str) -> str:
        """What ``make estimate`` prints."""
        used = "  ".join(f"{k} {self.resources.get(k, 0):,.0f} / {XC7Z020[k]:,} ({100 * u:.1f} %)"
                         for k, u in self.utilisation.items())
        return (f"design {design} on {BOARD} ({PART}) at {1000 / self.clock_ns:.0f} MHz:\n  {used}\n"
                f"  estimated {self.fps:,.0f} inferences/s, latency {self.latency_ns / 1000:.2f} µs; "
                f"fits: {'yes' if self.fits else 'NO'}{' (comfortably)' if self.fits_comfortably else ''}")


def read_estimate(out_dir: Path, target_fps: int, clock_ns: float) -> Estimate:
    """Read FINN's estimate reports from a build folder."""
    report = out_dir / "report"
    res = json.loads((report / "estimate_layer_resources.json").read_text())["total"]
    perf = json.loads((report / "estimate_network_performance.json").read_text())
    return Estimate({k: float(v) for k, v in res.items()}, float(perf["estimated_throughput_fps"]),
                    float(perf["estimated_latency_ns"]), int(target_fps), float(clock_ns))


def _clear_build_outputs(out_dir: Path) -> None:
    for name in ("report", "intermediate_models", "build_dataflow.log", "template_specialize_layers_config.json",
                 "time_per_step.json", HW_SOURCES):
        path = out_dir / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def estimate_design(design: str, *, target_fps: int | None = None, clock_ns: float = 10.0, kind: str = "estimate",
                    quiet: bool = False) -> Estimate:
    """``make estimate`` / ``make codegen``: build up to the estimates (and HLS/RTL sources) in the design folder."""
    from hw_build.accel_spec import write_accel_spec
    from hw_build.design import ESTIMATE_FILE, QONNX_FILE, existing_design_dir
    from hw_build.finn_env import prepare_finn

    if clock_ns <= 0:
        raise FlowError(f"CLOCK_NS must be positive, got {clock_ns}")
    if target_fps is not None and target_fps <= 0:
        raise FlowError(f"TARGET_FPS must be positive, got {target_fps}")
    out = existing_design_dir(design)
    prepare_finn(Path("build") / "finn")
    t0 = time.perf_counter()
    if target_fps is None:
        target_fps, chosen = _fastest_fitting(out, clock_ns)
    else:
        chosen = "as asked (TARGET_FPS)"
    _clear_build_outputs(out)
    run_build(out / QONNX_FILE, build_config(out, kind, target_fps, clock_ns))
    check_all_in_hardware(out)
    est = read_estimate(out, target_fps, clock_ns)
    sources = copy_hw_sources(out) if kind == "codegen" else None
    atomic.write_json(out / ESTIMATE_FILE, {**est.to_dict(), "folding": chosen, "kind": kind,
                                           "build_wall_s": round(time.perf_counter() - t0, 2)})
    write_accel_spec(out, clock_ns)
    if not quiet:
        print(est.summary(design) + f"\n  folding: {chosen}; reports in {out / 'report'}")
        if sources is not None:
            print(f"  HLS C++ and RTL sources of {sources} layers in {out / HW_SOURCES}")
    return est


HW_SOURCES = "hw_sources"


def check_all_in_hardware(out: Path) -> None:
    """Refuse a design where FINN left layers outside the accelerator, naming them and why."""
    from qonnx.core.modelwrapper import ModelWrapper

    parent = ModelWrapper(str(out / "intermediate_models" / "dataflow_parent.onnx"))
    outside = [n for n in parent.graph.node if n.op_type != "StreamingDataflowPartition"]
    if outside:
        names = ", ".join(f"{n.op_type} ({n.name})" for n in outside)
        raise FlowError(
            f"FINN could not compile all of {out.name}: {names} stayed outside the accelerator because FINN has no "
            "hardware layer for it in this position (a float operation between quantized layers, or a per-channel "
            "output scale in front of the argmax); the student must use per-tensor output scales and no float ops")


def copy_hw_sources(out: Path) -> int:
    """Copy each layer's generated HLS/RTL folder into ``<design>/hw_sources/<layer>/``; return the count."""
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.custom_op.registry import getCustomOp

    model = ModelWrapper(str(out / "intermediate_models" / "step_hw_codegen.onnx"))
    target = out / HW_SOURCES
    if target.exists():
        shutil.rmtree(target)
    count = 0
    for node in model.graph.node:
        src = getCustomOp(node).get_nodeattr("code_gen_dir_ipgen")
        if src and Path(src).is_dir():
            shutil.copytree(src, target / node.name)
            count += 1
    return count


def _fastest_fitting(out: Path, clock_ns: float) -> tuple[int, str]:
    from hw_build.design import QONNX_FILE

    trial_dir = Path("build") / "finn" / "folding-search" / out.name
    for fps in FPS_LADDER:
        if trial_dir.exists():
            shutil.rmtree(trial_dir)
        run_build(out / QONNX_FILE, build_config(trial_dir, "estimate", fps, clock_ns, save_models=False))
        est = read_estimate(trial_dir, fps, clock_ns)
        if est.fits_comfortably:
            shutil.rmtree(trial_dir, ignore_errors=True)
            return fps, f"fastest that fits comfortably (target_fps {fps:,} asked, ≤ {int(100 * COMFORT)} % of every resource)"
    raise FlowError(f"design {out.name} does not fit the {PART} comfortably even at {FPS_LADDER[-1]} inferences/s")


def bitstream_design(design: str, *, target_fps: int | None = None, clock_ns: float = 10.0) -> int:
    """``make bitstream``: the full build with Vivado; without it, stop before the first step that needs it."""
    from hw_build.design import BITFILE, HWHFILE, QONNX_FILE, existing_design_dir
    from hw_build.finn_env import prepare_finn, vivado_available

    if not vivado_available():
        est = estimate_design(design, target_fps=target_fps, clock_ns=clock_ns, kind="codegen", quiet=True)
        out = existing_design_dir(design)
        print(est.summary(design))
        print(f"Vivado is not installed (XILINX_VIVADO is unset), so the build stopped before HLS synthesis: "
              f"{out} holds the estimates, the HLS/RTL sources, accel.json and weights.npz, but no bitstream.")
        return EXIT_NO_VIVADO
    out = existing_design_dir(design)
    prepare_finn(Path("build") / "finn")
    if target_fps is None:
        previous = out / "estimate.json"
        target_fps = (json.loads(previous.read_text())["target_fps"] if previous.exists()
                      else _fastest_fitting(out, clock_ns)[0])
    _clear_build_outputs(out)
    run_build(out / QONNX_FILE, build_config(out, "bitstream", target_fps, clock_ns))
    bit = next(out.rglob("*.bit"), None)
    hwh = next(out.rglob("*.hwh"), None)
    if bit is None or hwh is None:
        raise FlowError(f"the Vivado build of {design} finished without a .bit/.hwh in {out}")
    shutil.copyfile(bit, out / BITFILE)
    shutil.copyfile(hwh, out / HWHFILE)
    from hw_build.accel_spec import write_accel_spec

    write_accel_spec(out, clock_ns)
    print(f"bitstream written: {out / BITFILE}")
    return 0
