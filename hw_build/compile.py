"""Compiling a design with finn-plus for the PYNQ-Z2: estimate, code generation, bitstream.

FINN dataflow builds through finn-plus's Python API (``build_dataflow_cfg``), board
``Pynq-Z2`` with the Zynq shell. The flow's own steps run right after streamlining:
:func:`step_qpd_host_input` (integer-input designs, the default) moves the student's input
quantizer to the host, so the fabric takes integer codes and does no float arithmetic;
:func:`step_qpd_output_head` gives discrete policies their argmax as a LabelSelect layer inside
the accelerator (``IMPL=hls``; with ``IMPL=rtl``, :func:`step_qpd_host_argmax_head`: the host
takes the argmax of the integer logits, as LabelSelect exists only in HLS), and continuous ones
hand their output scale to the host.

Folding: chosen for the control loop (:mod:`hw_build.folding`): by default the fewest
resources whose estimated latency is within ``LATENCY_US``. The fit check counts the Zynq
shell around the dataflow partition (:mod:`hw_build.shell`).
"""

from __future__ import annotations

import json
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from hw_build.folding import (DEFAULT_MVAU_WWIDTH, FOLDING_FILES, OBJECTIVES, FoldingPoint, choose,
                              default_latency_us, explore, folding_table, write_folding_report)
from training import atomic
from training.errors import FlowError

BOARD = "Pynq-Z2"
PART = "xc7z020clg400-1"
#: Resources of the xc7z020 (BRAM counted as 18 Kb halves, as FINN's estimates do).
XC7Z020 = {"LUT": 53_200, "FF": 106_400, "BRAM_18K": 280, "DSP": 220}
#: A design fits comfortably when no resource estimate exceeds this share of the part.
COMFORT = 0.7
EXIT_NO_VIVADO = 3
INPUT_MODES = ("integer", "float")
#: How layers are implemented: FINN's HLS templates with thresholds inside the MVAUs, or RTL where FINN has it.
IMPLS = ("hls", "rtl")


def step_qpd_host_input(model, cfg):
    """FINN build step: the input quantizer goes to the host (see the module docstring)."""
    from hw_build.transforms import StripInputQuantizer

    return model.transform(StripInputQuantizer())


def step_qpd_worst_case_widths(model, cfg):
    """FINN build step for architecture probes: accumulators and thresholds at their worst-case width."""
    from hw_build.deployed import worst_case_widths

    return worst_case_widths(model)


def step_qpd_output_head(model, cfg):
    """FINN build step: the output head this flow needs (see the module docstring)."""
    from hw_build.transforms import InsertLabelSelectHead, StripOutputScale

    action = model.get_metadata_prop("qpd_action")
    if action == "discrete":
        return model.transform(InsertLabelSelectHead())
    if action == "continuous":
        return model.transform(StripOutputScale())
    raise FlowError("the QONNX model has no qpd_action metadata: export it with make export")


def step_qpd_host_argmax_head(model, cfg):
    """FINN build step of ``IMPL=rtl``: as :func:`step_qpd_output_head`, but a discrete policy ends in
    its last MVAU and the host takes the argmax (LabelSelect has no RTL implementation in FINN)."""
    from hw_build.transforms import StripArgmaxScale

    if model.get_metadata_prop("qpd_action") == "discrete":
        return model.transform(StripArgmaxScale())
    return step_qpd_output_head(model, cfg)


def _steps(kind: str, input_mode: str, worst_case: bool = False, impl: str = "hls",
           weights: str = "fixed") -> list:
    import finn.builder.build_dataflow_config as bc

    base = {"estimate": bc.estimate_only_dataflow_steps, "codegen": bc.hw_codegen_dataflow_steps,
            "bitstream": bc.default_build_dataflow_steps}[kind]
    steps: list = list(base)
    at = steps.index("step_streamline") + 1
    steps.insert(at, step_qpd_host_argmax_head if impl == "rtl" else step_qpd_output_head)
    if input_mode == "integer":
        steps.insert(at, step_qpd_host_input)
    if worst_case:
        steps.insert(steps.index("step_minimize_bit_width") + 1, step_qpd_worst_case_widths)
    if weights == "runtime":
        from hw_build.runtime_weights import insert_runtime_steps

        steps = insert_runtime_steps(steps)
    return steps


def build_config(out_dir: Path, kind: str, target_fps: int | None, clock_ns: float, save_models: bool = True,
                 input_mode: str = "integer", worst_case: bool = False, impl: str = "hls",
                 mvau_wwidth_max: int = DEFAULT_MVAU_WWIDTH, folding_config: Path | None = None,
                 verify_io: tuple[Path, Path] | None = None, weights: str = "fixed"):
    """The ``DataflowBuildConfig`` of an estimate, codegen or bitstream build.

    ``folding_config``: FINN's folding file (``finn_folding_config.json``, what ``make estimate``
    chose), applied instead of folding for ``target_fps``. A bitstream build also measures the
    stitched accelerator's cycles in Vivado's simulator (``RTLSIM_PERFORMANCE``), sizes its FIFOs
    by FINN's simulation (stated explicitly: ``auto_fifo_depths``, ``DISTRIBUTED_SIMULATION``) in
    block RAM where they are large (the xc7z020 has no URAM, which FINN's ``auto`` picks for the
    deepest), and, given ``verify_io`` (input and expected output, :mod:`hw_build.vivado_build`),
    runs FINN's verification steps :data:`hw_build.vivado_build.VERIFY_STEPS` on them.

    ``mvau_wwidth_max``: how many weight bits an MVAU may read per PE and cycle when FINN folds
    it for ``target_fps`` (see :data:`hw_build.folding.DEFAULT_MVAU_WWIDTH`).

    ``impl="rtl"``: thresholds as layers of their own (``standalone_thresholds``), which FINN
    implements as ``Thresholding_rtl``, and MVAUs as ``MVAU_rtl`` wherever FINN's rules allow
    it (inputs and weights of 4 bits or more, DSP-based); ``"hls"``: thresholds inside the
    MVAUs, every MVAU in HLS (FINN's default for these students).

    ``weights="runtime"``: every weight and threshold memory writable over AXI-lite
    (:mod:`hw_build.runtime_weights`): thresholds as ``Thresholding_rtl`` layers of their own
    whatever ``impl`` says, MVAUs with decoupled writable weight memories, widths the architecture's.
    """
    import finn.builder.build_dataflow_config as bc

    if input_mode not in INPUT_MODES:
        raise FlowError(f"INPUT must be one of {', '.join(INPUT_MODES)}, got {input_mode!r}")

    specialize = None
    if impl == "rtl" or weights == "runtime":  # FINN falls back to HLS, with a warning in its log, where a layer has no possible RTL
        if weights == "runtime" and input_mode != "integer":
            raise FlowError("a writable design (WEIGHTS=runtime) takes integer inputs (INPUT=integer): FINN's writable "
                            "thresholds are integers, and each student's input quantizer runs on the host")
        specialize = Path(out_dir) / "specialize_layers.json"
        specialize.parent.mkdir(parents=True, exist_ok=True)
        rtl = ["MVAU", "Thresholding"] if impl == "rtl" else ["Thresholding"]
        specialize.write_text(json.dumps({"Defaults": {"preferred_impl_style": ["rtl", rtl]}}))
    outputs = [bc.DataflowOutputType.ESTIMATE_REPORTS]
    checks: dict[str, Any] = {}
    if kind == "bitstream":
        from hw_build.vivado_build import VERIFY_STEPS

        outputs += [bc.DataflowOutputType.STITCHED_IP, bc.DataflowOutputType.RTLSIM_PERFORMANCE,
                    bc.DataflowOutputType.BITFILE, bc.DataflowOutputType.PYNQ_DRIVER,
                    bc.DataflowOutputType.DEPLOYMENT_PACKAGE]
        checks = dict(auto_fifo_depths=True, auto_fifo_strategy=bc.AutoFIFOSizingMethod.DISTRIBUTED_SIMULATION,
                      large_fifo_mem_style=bc.LargeFIFOMemStyle.BRAM)
        if verify_io is not None:
            checks.update(verify_steps=[bc.VerificationStepType(step) for step in VERIFY_STEPS],
                          verify_input_npy=str(verify_io[0]), verify_expected_output_npy=str(verify_io[1]),
                          verification_atol=0.0, verification_mean_atol=0.0, verification_mean_rtol=0.0)
    if target_fps is None and folding_config is None:
        raise FlowError("a FINN build needs a throughput target or a folding config")
    return bc.DataflowBuildConfig(
        output_dir=str(out_dir), steps=_steps(kind, input_mode, worst_case, impl, weights), generate_outputs=outputs,
        target_fps=None if folding_config is not None else int(target_fps),
        folding_config_file=Path(folding_config) if folding_config is not None else None,
        synth_clk_period_ns=float(clock_ns), board=BOARD, shell_flow_type=bc.ShellFlowType.VIVADO_ZYNQ,
        save_intermediate_models=save_models, verbose=False, console_log_level=bc.LogLevel.NONE,
        standalone_thresholds=impl == "rtl" or weights == "runtime", specialize_layers_config_file=str(specialize) if specialize else None,
        mvau_wwidth_max=int(mvau_wwidth_max), **checks)


class StepProgress:
    """Where FINN's builder prints, a line per build step with its time on the real console.

    FINN prints ``Running step: <name> [i/n]`` as each step starts; everything else it prints goes
    to its log only. ``out`` is where the lines go (the console), ``None`` for silence.
    """

    _STEP = re.compile(r"Running step: (\S+) \[(\d+)/(\d+)\]")

    def __init__(self, out: TextIO | None) -> None:
        self.out, self.started = out, None

    def write(self, text: str) -> int:
        """Take what FINN's builder prints to its console."""
        match = self._STEP.search(text)
        if match and self.out is not None:
            self.finish()
            self.out.write(f"    FINN step {match[2]:>2}/{match[3]} {match[1]} ...")
            self.out.flush()
            self.started = time.perf_counter()
        return len(text)

    def flush(self) -> None:
        """Nothing is buffered."""

    def finish(self, failed: bool = False) -> None:
        """End the line of the step under way with its time."""
        if self.started is not None and self.out is not None:
            self.out.write(f" {'failed after ' if failed else ''}{time.perf_counter() - self.started:.2f} s\n")
            self.out.flush()
        self.started = None


def run_build(qonnx: Path, cfg, progress: bool = False) -> None:
    """Run one FINN build; a failure becomes one sentence naming the step and the reason.

    FINN's builder replaces ``sys.stdout``/``sys.stderr`` with loggers that echo to the
    console and resets the root logger; its log goes to ``build_dataflow.log`` in the output
    folder either way. We hand it loggers that echo only its step lines (``progress``: a line per
    step with its time, and the log's path; otherwise nothing), and restore ours afterwards.
    """
    import logging
    import sys

    from finn.builder.build_dataflow import PrintLogger, build_dataflow_cfg

    root = logging.getLogger()
    saved = sys.stdout, sys.stderr, root.handlers[:], root.level
    log = Path(cfg.output_dir) / "build_dataflow.log"
    if progress:
        print(f"  FINN build in {cfg.output_dir} ({len(cfg.steps)} steps; FINN's log: {log})", flush=True)
    sink = StepProgress(saved[0] if progress else None)
    build_log = logging.getLogger("build_dataflow")
    sys.stdout, sys.stderr = PrintLogger(build_log, logging.INFO, sink), PrintLogger(build_log, logging.ERROR, StepProgress(None))
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
    sink.finish(failed=failure is not None or rc != 0)
    if failure is not None:
        raise FlowError(f"FINN could not compile {qonnx}: {failure[:400]} (FINN's log: {log})")
    if rc != 0:
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
    """FINN's estimates of one build, and the fit against the xc7z020 with the Zynq shell counted."""

    resources: dict[str, float]
    fps: float
    latency_ns: float
    target_fps: int
    clock_ns: float
    shell: dict[str, Any] | None = None

    @property
    def with_shell(self) -> dict[str, float]:
        """What the bitstream would use: dataflow partition, FIFOs/width converters and the shell allowance."""
        return self.shell["total"] if self.shell else {k: float(self.resources.get(k, 0)) for k in ("LUT", "BRAM_18K", "DSP")}

    @property
    def utilisation(self) -> dict[str, float]:
        """Share of the part used by each resource, the shell included."""
        return {k: self.with_shell.get(k, 0.0) / XC7Z020[k] for k in ("LUT", "BRAM_18K", "DSP")}

    @property
    def fits(self) -> bool:
        """Every resource, the shell included, within the part."""
        return all(u <= 1.0 for u in self.utilisation.values())

    @property
    def fits_comfortably(self) -> bool:
        """Every resource, the shell included, within :data:`COMFORT` of the part."""
        return all(u <= COMFORT for u in self.utilisation.values())

    def overflow(self) -> str:
        """Which resources exceed the part, and by how much (empty when it fits)."""
        return ", ".join(f"{k} by {self.with_shell[k] - XC7Z020[k]:,.0f} ({self.with_shell[k]:,.0f} of {XC7Z020[k]:,})"
                         for k, u in self.utilisation.items() if u > 1.0)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary."""
        return {"board": BOARD, "part": PART, "clock_ns": self.clock_ns, "target_fps": self.target_fps,
                "figures": "FINN estimates (est.); the shell allowance is a stated allowance, not an estimate",
                "resources": self.resources, "with_shell": self.shell, "part_resources": XC7Z020,
                "utilisation": self.utilisation, "estimated_fps": self.fps, "estimated_latency_ns": self.latency_ns,
                "fits": self.fits, "fits_comfortably": self.fits_comfortably, "comfort_limit": COMFORT}

    def summary(self, design: str) -> str:
        """What ``make estimate`` prints."""
        part = "  ".join(f"{k} {self.resources.get(k, 0):,.0f}" for k in ("LUT", "BRAM_18K", "DSP"))
        total = "  ".join(f"{k} {self.with_shell[k]:,.0f} / {XC7Z020[k]:,} ({100 * u:.1f} %)"
                          for k, u in self.utilisation.items())
        fit = "yes" + (" (comfortably)" if self.fits_comfortably else "") if self.fits else f"NO: over in {self.overflow()}"
        return (f"design {design} on {BOARD} ({PART}) at {1000 / self.clock_ns:.0f} MHz (FINN estimates):\n"
                f"  dataflow partition: est. {part}\n"
                f"  with FIFOs, width converters and the Zynq shell allowance: {total}\n"
                f"  est. fabric latency {self.latency_ns / 1000:.2f} µs, est. {self.fps:,.0f} inferences/s; fits: {fit}")


def read_estimate(out_dir: Path, target_fps: int, clock_ns: float) -> Estimate:
    """Read FINN's estimate reports from a build folder."""
    report = out_dir / "report"
    res = json.loads((report / "estimate_layer_resources.json").read_text())["total"]
    perf = json.loads((report / "estimate_network_performance.json").read_text())
    return Estimate({k: float(v) for k, v in res.items()}, float(perf["estimated_throughput_fps"]),
                    float(perf["estimated_latency_ns"]), int(target_fps), float(clock_ns))


def _folding_of(out_dir: Path) -> dict[str, dict[str, int]]:
    config = json.loads((out_dir / "report" / "auto_folding_config.json").read_text())
    return {layer: {k: v for k, v in attrs.items() if k in ("PE", "SIMD")}
            for layer, attrs in config.items() if layer != "Defaults"}


def _clear_build_outputs(out_dir: Path) -> None:
    for name in ("report", "intermediate_models", "build_dataflow.log", "template_specialize_layers_config.json",
                 "time_per_step.json", HW_SOURCES, "verification_output", "stitched_ip", "bitfile", "driver", "deploy"):
        path = out_dir / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


@dataclass
class BuildChoice:
    """How a design is built: input mode, folding objective and budget, or a fixed target."""

    input_mode: str = "integer"
    objective: str = "smallest"
    latency_us: float | None = None  # None: the design's default (hw_build.folding.default_latency_us)
    target_fps: int | None = None
    clock_ns: float = 10.0
    impl: str = "hls"
    mvau_wwidth_max: int = DEFAULT_MVAU_WWIDTH  # the search sets it with target_fps (a wider one where the default misses)
    hls_layers: list | None = None  # IMPL=rtl: the layers FINN kept in HLS, and why (set by the build)
    weights: str = "fixed"  # runtime: every weight and threshold memory writable over AXI-lite (hw_build.runtime_weights)

    def check(self) -> None:
        """Refuse impossible settings in one sentence."""
        if self.clock_ns <= 0:
            raise FlowError(f"CLOCK_NS must be positive, got {self.clock_ns}")
        if self.target_fps is not None and self.target_fps <= 0:
            raise FlowError(f"TARGET_FPS must be positive, got {self.target_fps}")
        if self.latency_us is not None and self.latency_us <= 0:
            raise FlowError(f"LATENCY_US must be positive, got {self.latency_us}")
        if self.objective not in OBJECTIVES:
            raise FlowError(f"OBJECTIVE must be one of {', '.join(OBJECTIVES)}, got {self.objective!r}")
        if self.input_mode not in INPUT_MODES:
            raise FlowError(f"INPUT must be one of {', '.join(INPUT_MODES)}, got {self.input_mode!r}")
        if self.impl not in IMPLS:
            raise FlowError(f"IMPL must be one of {', '.join(IMPLS)}, got {self.impl!r}")
        from hw_build.runtime_weights import WEIGHTS_MODES

        if self.weights not in WEIGHTS_MODES:
            raise FlowError(f"WEIGHTS must be one of {', '.join(WEIGHTS_MODES)}, got {self.weights!r}")
        if self.weights == "runtime" and self.input_mode != "integer":
            raise FlowError("a writable design (WEIGHTS=runtime) takes integer inputs (INPUT=integer): FINN's writable "
                            "thresholds are integers, and each student's input quantizer runs on the host")


def compile_estimate(qonnx: Path, out: Path, choice: BuildChoice, *, kind: str = "estimate", worst_case: bool = False,
                     search_dir: Path | None = None,
                     progress: bool = False) -> tuple[Estimate, str, list[FoldingPoint], FoldingPoint | None]:
    """Choose the folding, build ``qonnx`` into ``out`` up to the estimates, and count the shell.

    Returns the estimate, the folding rule in words, every folding tried and the chosen one
    (no search when ``choice.target_fps`` is set). ``progress``: a line per folding tried and per
    step of the final build.
    """
    from hw_build.accel_spec import FINAL_MODEL
    from hw_build.shell import glue_estimate, with_shell

    choice.check()
    budget_given = choice.latency_us is not None
    if not budget_given:
        choice.latency_us = default_latency_us(qonnx)
    points: list[FoldingPoint] = []
    chosen: FoldingPoint | None = None
    if choice.target_fps is not None:
        target, rule = choice.target_fps, "as asked (TARGET_FPS)"
    else:
        trial_dir = search_dir or Path("build") / "finn" / "folding-search" / out.name

        def build(fps: int, wwidth: int) -> FoldingPoint:
            if trial_dir.exists():
                shutil.rmtree(trial_dir)
            run_build(qonnx, build_config(trial_dir, "estimate", fps, choice.clock_ns, save_models=False,
                                          input_mode=choice.input_mode, worst_case=worst_case, impl=choice.impl,
                                          mvau_wwidth_max=wwidth, weights=choice.weights))
            est = read_estimate(trial_dir, fps, choice.clock_ns)
            if progress:
                print(f"  folding tried: target_fps {fps:,}, weights ≤ {wwidth} bits per PE: est. LUT "
                      f"{est.resources.get('LUT', 0):,.0f}, est. latency {est.latency_ns / 1000:.2f} µs", flush=True)
            return FoldingPoint(fps, est.resources, est.latency_ns, est.fps, _folding_of(trial_dir),
                                est.fits_comfortably, wwidth)

        points = explore(build, choice.objective, choice.latency_us)
        shutil.rmtree(trial_dir, ignore_errors=True)
        chosen, rule = choose(points, choice.objective, choice.latency_us, budget_given)
        target, choice.mvau_wwidth_max = chosen.target_fps, chosen.mvau_wwidth_max
    _clear_build_outputs(out)
    run_build(qonnx, build_config(out, kind, target, choice.clock_ns, input_mode=choice.input_mode,
                                  worst_case=worst_case, impl=choice.impl, mvau_wwidth_max=choice.mvau_wwidth_max,
                                  weights=choice.weights),
              progress=progress)
    shutil.copyfile(out / "report" / "auto_folding_config.json", out / FOLDING_CONFIG)
    check_all_in_hardware(out)
    choice.hls_layers = check_rtl_mvus(out) if choice.impl == "rtl" else []
    est = read_estimate(out, target, choice.clock_ns)
    est.shell = with_shell(est.resources, glue_estimate(str(out / "intermediate_models" / FINAL_MODEL), PART))
    return est, rule, points, chosen


def refuse_standalone_thresholds_after_conv(qonnx_path: Path, choice: "BuildChoice") -> None:
    """Refuse, in one sentence, ``IMPL=rtl`` or ``WEIGHTS=runtime`` for a pixel student: both make the
    thresholds layers of their own, and after the convolution FINN's conversion stops on them
    (finn-plus 1.6.1, ``step_convert_to_hw``: "MultiThreshold (MultiThreshold_0) input (NCHW) and
    output (NHWC) layout mismatch"), so its RTL (Thresholding_rtl) cannot be reached."""
    if choice.impl != "rtl" and choice.weights != "runtime":
        return
    import onnx

    convs = [n.name or n.op_type for n in onnx.load(str(qonnx_path), load_external_data=False).graph.node
             if n.op_type == "Conv"]
    if convs:
        setting = "IMPL=rtl" if choice.impl == "rtl" else "WEIGHTS=runtime"
        raise FlowError(f"{setting} is not available for a student with a convolution ({convs[0]}): it makes the "
                        "thresholds layers of their own, and FINN cannot convert a standalone threshold after the "
                        "convolution (MultiThreshold_0: NCHW input, NHWC output); build it with IMPL=hls and fixed weights")


def estimate_design(design: str, *, choice: BuildChoice | None = None, kind: str = "estimate",
                    quiet: bool = False) -> Estimate:
    """``make estimate`` / ``make codegen``: build up to the estimates (and HLS/RTL sources) in the design folder."""
    from hw_build.accel_spec import write_accel_spec
    from hw_build.design import BUILD_CHECK_FILES, ESTIMATE_FILE, QONNX_FILE, existing_design_dir
    from hw_build.finn_env import prepare_finn

    choice = choice or BuildChoice()
    choice.check()
    out = existing_design_dir(design)
    refuse_standalone_thresholds_after_conv(out / QONNX_FILE, choice)
    prepare_finn(Path("build") / "finn")
    t0 = time.perf_counter()
    est, rule, points, chosen = compile_estimate(out / QONNX_FILE, out, choice, kind=kind, progress=not quiet)
    for name in FOLDING_FILES + BUILD_CHECK_FILES:
        (out / name).unlink(missing_ok=True)
    if chosen is not None:
        write_folding_report(out, points, chosen, choice.objective, choice.latency_us)
    sources = copy_hw_sources(out) if kind == "codegen" else None
    spec = write_accel_spec(out, choice.clock_ns, input_mode=choice.input_mode)
    writable: dict[str, Any] = {}
    if choice.weights == "runtime":
        from hw_build.runtime_weights import writability_cost

        writable = {"weights": "runtime", "writability_cost": writability_cost(
            out / QONNX_FILE, est, choice, Path("build") / "finn" / "fixed-counterpart" / out.name)}
    atomic.write_json(out / ESTIMATE_FILE, {**est.to_dict(), **writable, "folding": rule, "objective": choice.objective,
                                           "latency_budget_us": choice.latency_us, "input": choice.input_mode,
                                           "impl": choice.impl, "mvau_wwidth_max": choice.mvau_wwidth_max,
                                           **({"kept_in_hls": choice.hls_layers} if choice.impl == "rtl" else {}),
                                           "kind": kind, "deployed": spec["deployed"],
                                           "finn_folding_config": FOLDING_CONFIG,
                                           "build_wall_s": round(time.perf_counter() - t0, 2)})
    if not est.fits:
        raise FlowError(f"design {design} does not fit the {PART}: {est.overflow()} (est., the Zynq shell counted); "
                        "choose a smaller student or a slower folding (LATENCY_US, TARGET_FPS)")
    if not quiet:
        print(est.summary(design))
        if chosen is not None:
            print("  foldings tried (est.):\n    " + "\n    ".join(folding_table(points, chosen)))
        dep = spec["deployed"]
        input_words = "binary frames, as they are" if spec["input"]["transform"]["kind"] == "binary" else choice.input_mode
        print(f"  folding: {rule}\n  deployed: {dep['total_bits']:,} bits ({dep['fabric_bits']:,} in the fabric, "
              f"{dep['host_bits']:,} on the host); input {input_words}; layers {choice.impl.upper()} where FINN has "
              f"them; reports in {out / 'report'}")
        for kept in choice.hls_layers or []:
            print(f"  IMPL=rtl: {kept['layer']} stays {kept['op']}: {kept['why']}")
        if sources is not None:
            print(f"  HLS C++ and RTL sources of {sources} layers in {out / HW_SOURCES}")
        if writable:
            from hw_build.runtime_weights import cost_lines

            memories = spec["runtime_weights"]["memories"]
            print("\n".join(cost_lines(writable["writability_cost"])))
            print(f"  writable: {len(memories)} memories over AXI-lite ({sum(m['words'] for m in memories):,} words of 32 "
                  f"bits); a student of the same architecture signature loads with make load-policy DESIGN={design} RUN=<run>")
    return est


HW_SOURCES = "hw_sources"
#: FINN's folding of the chosen build (its ``auto_folding_config.json``), which ``make bitstream`` applies.
FOLDING_CONFIG = "finn_folding_config.json"


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


def check_rtl_mvus(out: Path) -> list[dict[str, str]]:
    """For ``IMPL=rtl``: the layers FINN kept in HLS, each with FINN's reason (its
    ``_mvu_rtl_possible`` rules); the build goes on with them. Full-range signed weights are the
    usual one: FINN's RTL MVU on the xc7z020's DSP48E1 needs narrow-range weights (NARROW=1)."""
    import numpy as np
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.custom_op.registry import getCustomOp

    from hw_build.accel_spec import FINAL_MODEL

    model = ModelWrapper(str(out / "intermediate_models" / FINAL_MODEL))
    kept = []
    for node in model.graph.node:
        if not node.op_type.endswith("_hls"):
            continue
        op = getCustomOp(node)
        if node.op_type == "MVAU_hls":
            weights, wdt = model.get_initializer(node.input[1]), model.get_tensor_datatype(node.input[1])
            if wdt.signed() and wdt.bitwidth() > 1 and weights is not None and np.min(weights) == wdt.min():
                why = (f"its weights use the full signed range ({wdt.name}, down to {int(wdt.min())}); FINN's RTL MVU "
                       "on the xc7z020's DSP48E1 needs narrow-range weights (distil with NARROW=1)")
            elif not wdt.signed():
                why = f"its weights are unsigned ({wdt.name}); FINN's RTL MVU takes signed weights"
            elif op.get_input_datatype(0).bitwidth() < 2 or wdt.bitwidth() < 2:
                why = "1-bit inputs or weights; FINN's RTL MVU takes 2 bits or more"
            else:
                why = "FINN's _mvu_rtl_possible refused it (datapath widths beyond the DSP48E1's)"
        else:
            why = f"FINN has no RTL implementation of {node.op_type.rsplit('_', 1)[0]}"
        kept.append({"layer": node.name, "op": node.op_type, "why": why})
    return kept


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


def _estimate_folding(design: str, out: Path, choice: BuildChoice, progress: bool) -> Path:
    """The folding ``make estimate`` chose for these settings (its FINN folding file), or choose it now."""
    from hw_build.design import ESTIMATE_FILE

    previous = out / ESTIMATE_FILE
    chose = json.loads(previous.read_text()) if previous.exists() else {}
    same = ((chose.get("input"), chose.get("impl", "hls"), chose.get("clock_ns"), chose.get("weights", "fixed")) ==
            (choice.input_mode, choice.impl, choice.clock_ns, choice.weights)
            and choice.target_fps in (None, chose.get("target_fps")) and (out / FOLDING_CONFIG).exists())
    if same:
        choice.target_fps = chose["target_fps"]
        choice.mvau_wwidth_max = chose.get("mvau_wwidth_max", DEFAULT_MVAU_WWIDTH)
        if progress:
            print(f"  folding: the one make estimate chose ({out / FOLDING_CONFIG}, target_fps {choice.target_fps:,})")
    else:
        if progress:
            print("  folding: no make estimate with these settings yet, so it is chosen now")
        estimate_design(design, choice=choice, quiet=not progress)
        choice.target_fps = json.loads(previous.read_text())["target_fps"]
    return out / FOLDING_CONFIG


def bitstream_config(out: Path, choice: BuildChoice, folding: Path, verify_io: tuple[Path, Path] | None):
    """The ``DataflowBuildConfig`` of ``make bitstream`` (see :func:`build_config`)."""
    return build_config(out, "bitstream", choice.target_fps, choice.clock_ns, input_mode=choice.input_mode,
                        impl=choice.impl, mvau_wwidth_max=choice.mvau_wwidth_max, folding_config=folding,
                        verify_io=verify_io, weights=choice.weights)


def bitstream_design(design: str, *, choice: BuildChoice | None = None, progress: bool = False) -> int:
    """``make bitstream``: the full build with Vivado, checked in Vivado's simulator on real states.

    Without Vivado, Vitis HLS or FINN's dependencies, everything that needs none of them is made
    (:func:`hw_build.vivado_build.prepare_for_vivado`), one sentence names each thing missing, and
    the exit code is :data:`EXIT_NO_VIVADO`. ``progress``: a line per FINN step (the command line's).
    """
    from hw_build import finn_deps, vivado_build
    from hw_build.accel_spec import FINAL_MODEL, write_accel_spec
    from hw_build.design import BITFILE, HWHFILE, existing_design_dir
    from hw_build.finn_env import boot_for_vivado, missing_tools, prepare_finn, xsi_environment
    from hw_build.shell import glue_estimate, with_shell

    choice = choice or BuildChoice()
    choice.check()
    out = existing_design_dir(design)
    prepare_finn(Path("build") / "finn")
    missing = missing_tools()
    deps = finn_deps.status()
    if deps.missing:
        missing.append(deps.sentence())
    folding = _estimate_folding(design, out, choice, progress)
    verify_io = vivado_build.write_verification_io(out)
    cfg = bitstream_config(out, choice, folding, verify_io)
    qonnx = out / "policy.qonnx.onnx"
    if missing:
        _clear_build_outputs(out)
        run_build(qonnx, vivado_build.vivado_free(cfg), progress=progress)
        check_all_in_hardware(out)
        sources = copy_hw_sources(out)
        made = vivado_build.prepare_for_vivado(out, cfg, PART, BOARD)
        write_accel_spec(out, choice.clock_ns, input_mode=choice.input_mode)
        if (out / "driver" / "runtime_weights").is_dir():
            print(f"  FINN's driver step wrote the design's own student as runtime weights: {out / 'driver' / 'runtime_weights'}")
        est = read_estimate(out, choice.target_fps, choice.clock_ns)
        est.shell = with_shell(est.resources, glue_estimate(str(out / "intermediate_models" / FINAL_MODEL), PART))
        print(est.summary(design))
        print(f"  prepared for Vivado in {out}: the folding make estimate chose; {len(made['fifos_and_dwcs'])} FIFOs and "
              f"width converters inserted (unsized: FINN sizes them in Vivado's simulator); IODMAs "
              f"{', '.join(made['iodmas'])} in {made['partitions']} dataflow partitions; FINN's driver settings "
              f"{made['driver_settings']}; HLS/RTL sources of {sources} layers and the inserted FIFOs/DWCs in "
              f"{out / HW_SOURCES}; FINN's verification input and expected output ({vivado_build.VERIFY_INPUT}, "
              f"{vivado_build.VERIFY_OUTPUT}); accel.json and weights.npz")
        for sentence in missing:
            print(f"missing: {sentence}")
        print("make bitstream stopped before HLS synthesis, the first step that needs them: no bitstream.")
        return EXIT_NO_VIVADO
    boot_for_vivado()
    if xsi_environment():
        raise FlowError("LD_LIBRARY_PATH lacks the Vivado simulator's libraries FINN's FIFO sizing and rtlsim load "
                        f"in this process ({xsi_environment()['LD_LIBRARY_PATH']}): run the build through make "
                        "bitstream (python -m hw_build bitstream restarts itself with them)")
    _clear_build_outputs(out)
    started = time.time()
    run_build(qonnx, cfg, progress=progress)
    bit = vivado_build.require(out / "bitfile" / "finn-accel.bit", started, "a bitstream")
    hwh = vivado_build.require(out / "bitfile" / "finn-accel.hwh", started, "a hardware handoff (.hwh)")
    settings = vivado_build.require(out / vivado_build.DRIVER_SETTINGS, started, "FINN's driver settings")
    shutil.copyfile(bit, out / BITFILE)
    shutil.copyfile(hwh, out / HWHFILE)
    write_accel_spec(out, choice.clock_ns, input_mode=choice.input_mode)
    results = vivado_build.vivado_results(out, [s.value for s in cfg.verify_steps], choice.clock_ns)
    lines, failures = vivado_build.results_summary(results)
    vivado_build.write_bitstream_record(out, {"design": design, "bitstream": BITFILE, "hwh": HWHFILE,
                                              "driver_settings": str(settings.relative_to(out)),
                                              "finn_folding_config": FOLDING_CONFIG, **results,
                                              "passed": not failures})
    print("\n".join(lines))
    if failures:
        raise FlowError(f"the bitstream of {design} was built, but {failures[0]} (see {out / vivado_build.BITSTREAM_FILE})")
    print(f"bitstream written: {out / BITFILE} (and {HWHFILE}); FINN's checks passed; {out / vivado_build.BITSTREAM_FILE}")
    return 0
