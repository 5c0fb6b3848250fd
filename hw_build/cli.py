"""The hardware command line: ``python -m hw_build <verb>``; the Makefile's targets call these.

A :class:`~training.errors.FlowError` becomes one sentence on stderr and exit code 2; a
bitstream build without Vivado exits with 3 after saying what it produced.
"""

from __future__ import annotations

import argparse
import warnings
from typing import Sequence

from host.errors import run_command
from hw_build.compile import IMPLS, INPUT_MODES
from hw_build.folding import DEFAULT_LATENCY_US, OBJECTIVES, PIXEL_LATENCY_US
from hw_build.runtime_weights import WEIGHTS_MODES
from training.errors import FlowError


def _design_name(args: argparse.Namespace) -> str:
    if not args.design:
        raise FlowError("a design name is needed: DESIGN=<name> (see bitstreams/)")
    return args.design


def _add_build_options(p: argparse.ArgumentParser, impl: str) -> None:
    """The options of a FINN build (estimate, codegen, bitstream; rtlsim's codegen where it runs one)."""
    p.add_argument("--input", choices=INPUT_MODES, default="integer",
                   help="integer (default): the host quantizes observations and the fabric takes integer codes; "
                        "float: the fabric takes float32 and quantizes them in a Thresholding layer")
    p.add_argument("--objective", choices=OBJECTIVES, default="smallest",
                   help="smallest (default): fewest resources (LUT, BRAM, DSP) within --latency-us; "
                        "fastest: the fastest folding that fits comfortably")
    p.add_argument("--latency-us", type=float, default=None,
                   help=f"fabric latency budget of the smallest objective, est. (default {DEFAULT_LATENCY_US:g} µs; "
                        f"{PIXEL_LATENCY_US:g} µs for a design that takes frames)")
    p.add_argument("--target-fps", type=int, default=None,
                   help="a fixed throughput target for FINN's folding instead of the objective")
    p.add_argument("--clock-ns", type=float, default=10.0, help="clock period in ns (default 10 = 100 MHz)")
    p.add_argument("--impl", choices=IMPLS, default=impl,
                   help="hls: thresholds inside HLS MVAUs, the argmax in LabelSelect_hls; rtl: thresholds as "
                        "Thresholding_rtl layers, MVAU_rtl where FINN allows it (the others named), the argmax of a "
                        f"discrete policy on the host (make rtlsim simulates the RTL layers); default {impl}")
    p.add_argument("--weights", choices=WEIGHTS_MODES, default="fixed",
                   help="fixed (default): weights and thresholds in the bitstream; runtime: every weight and threshold "
                        "memory writable over AXI-lite, so one bitstream serves every student of its architecture "
                        "(make load-policy; thresholds as Thresholding_rtl layers)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m hw_build``."""
    parser = argparse.ArgumentParser(prog="python -m hw_build",
                                     description="Hardware side of the QPD flow: QONNX export, FINN compilation for the PYNQ-Z2, verification.")
    sub = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    p = sub.add_parser("export", help="export a run's student to bitstreams/<design>/policy.qonnx.onnx, with the parity check")
    p.add_argument("run", help="run folder of a distilled student, e.g. runs/CartPole-v1/qpd-2x32-w2a2-s0")
    p.add_argument("--design", default=None, help="design name (default <env>-<run folder name>)")
    p.add_argument("--states", type=int, default=1000, help="states from real episodes for the parity check (default 1000)")
    p.add_argument("--force", action="store_true", help="replace an existing design of that name")
    for verb, text in (("estimate", "FINN build up to the estimate reports; accel.json and weights.npz"),
                       ("codegen", "as estimate, plus the HLS C++ and RTL sources"),
                       ("bitstream", "the full build with Vivado (stops with exit code 3 where Vivado is missing)")):
        p = sub.add_parser(verb, help=text)
        p.add_argument("--design", default=None, help="design name (a folder in bitstreams/)")
        _add_build_options(p, "hls")
    p = sub.add_parser("finn-deps", help="fetch what FINN's Vivado build needs (finn-hlslib, PYNQ-Z2 board files, "
                       "nlohmann-json) at the commits finn-plus pins, with FINN's own updater (exit code 3 where "
                       "they cannot be fetched)")
    p.add_argument("--all", action="store_true", help="FINN's whole dependency list, as `finn deps update` (other boards too)")
    p.add_argument("--check", action="store_true", help="only say what is missing (no network); exit code 3 if anything is")
    p = sub.add_parser("cost", help="deployed bits (bound) and est. resources of a student architecture, untrained")
    p.add_argument("--env", required=True, help="environment id (sets the input and output sizes)")
    p.add_argument("--hidden", default=None, help="hidden widths, comma-separated (default 32,32; 16 for frames; none: convolutions straight into the output layer)")
    p.add_argument("--conv", default=None, help="convolution channels, comma-separated (frames only; default 8)")
    p.add_argument("--kernel", type=int, default=3, help="convolution kernel size (frames only; default 3)")
    p.add_argument("--stride", type=int, default=1, help="convolution stride (frames only; default 1)")
    p.add_argument("--bits", type=int, default=2, help="weight bits (default 2)")
    p.add_argument("--abits", type=int, default=None, help="activation bits (default: as the weights, at least 2)")
    p.add_argument("--latency-us", type=float, default=None,
                   help=f"latency budget of the folding (default {DEFAULT_LATENCY_US:g} µs; {PIXEL_LATENCY_US:g} µs for frames)")
    p.add_argument("--impl", choices=IMPLS, default="hls", help="hls (default) or rtl, as for estimate")
    p.add_argument("--first-bits", type=int, default=None, help="weight bits of the first layer (default: --bits)")
    p.add_argument("--last-bits", type=int, default=None, help="weight bits of the output layer (default: --bits)")
    p.add_argument("--output-affine", action="store_true",
                   help="continuous actions: a per-action output scale and bias, applied on the host")
    p = sub.add_parser("rtlsim", help="ladder levels 4 and 4b: the design's RTL layers (make codegen IMPL=rtl) simulated "
                       "with Verilator on real states, layer by layer and stitched with FINN's FIFOs and width "
                       "converters, with random back-pressure; a design "
                       "without generated sources gets them first (codegen with the build options below)")
    p.add_argument("--design", default=None, help="design name (a folder in bitstreams/)")
    _add_build_options(p, "rtl")
    p.add_argument("--states", type=int, default=10_000, help="states from real episodes (default 10,000)")
    p.add_argument("--stall", type=int, default=30, help="percent of cycles with a stream stalled (default 30)")
    p = sub.add_parser("synth", help="Yosys synthesis counts (before place and route) of every RTL block of a design "
                       "(layers, weight memories, FIFOs, width converters; the whole dataflow partition where every "
                       "layer is RTL) beside FINN's estimate, in synth.json; a design without generated sources gets "
                       "them first (codegen with the build options below)")
    p.add_argument("--design", default=None, help="design name (a folder in bitstreams/)")
    _add_build_options(p, "hls")
    p = sub.add_parser("verify", help="the verification ladder (Brevitas, QONNX, FINN graphs) on real states")
    p.add_argument("--design", default=None, help="design name (a folder in bitstreams/)")
    p.add_argument("--states", type=int, default=10_000, help="states from real episodes (default 10,000)")
    return parser


def _finn_deps(args: argparse.Namespace) -> int:
    import sys

    from hw_build import finn_deps

    if args.check:
        state = finn_deps.status()
    else:
        state = finn_deps.fetch(every=args.all)
    for name, pin in state.pins.items():
        print(f"  {name:<17} {'missing' if name in state.missing else 'installed':<9} {pin}")
    if state.missing:
        print(f"error: {state.sentence() if args.check else finn_deps.fetch_failure(state)}", file=sys.stderr)
        return finn_deps.EXIT_MISSING
    print(f"FINN's dependencies for the Vivado build are in {state.location} (pins from {state.definitions})")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run one verb; return the process exit code."""
    import sys

    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    warnings.filterwarnings("ignore", message="fast_hadamard_transform")  # brevitas: irrelevant on CPU
    if args.verb == "bitstream":
        from hw_build.finn_env import missing_tools, restart_with_xsi_path

        if not missing_tools():  # as FINN's command line: the loader reads LD_LIBRARY_PATH at start only
            restart_with_xsi_path(["hw_build", *argv])
    return run_command(lambda: _run(args))


def _run(args: argparse.Namespace) -> int | None:
    if getattr(args, "states", 1) <= 0:
        raise FlowError(f"--states must be positive, got {args.states}")
    if args.verb == "export":
        from hw_build.api import export

        export(args.run, args.design, force=args.force, states=args.states)
    elif args.verb in ("estimate", "codegen", "bitstream"):
        from hw_build.api import estimate
        from hw_build.compile import bitstream_design

        if args.verb == "bitstream":
            return bitstream_design(_design_name(args), choice=_build_choice(args), progress=True)
        estimate(_design_name(args), input=args.input, objective=args.objective, latency_us=args.latency_us,
                 target_fps=args.target_fps, clock_ns=args.clock_ns, impl=args.impl, kind=args.verb,
                 weights=args.weights)
    elif args.verb == "finn-deps":
        return _finn_deps(args)
    elif args.verb == "cost":
        from hw_build.arch_cost import architecture_cost
        from training.students.student import student_act_bits

        from training.qpd.config import default_architecture

        conv, hidden = default_architecture(args.env)
        try:
            if args.hidden == "none":  # a convolutional student whose output layer reads the feature map
                hidden = []
            elif args.hidden:
                hidden = [int(h) for h in args.hidden.split(",")]
            conv = [int(c) for c in args.conv.split(",")] if args.conv else conv
        except ValueError:
            raise FlowError(f"--hidden and --conv take comma-separated widths, got {args.hidden!r}, {args.conv!r}") from None
        architecture_cost(args.env, hidden, args.bits, student_act_bits(args.bits, args.abits),
                          latency_us=args.latency_us, impl=args.impl, quiet=False, conv=conv,
                          first_bits=args.first_bits, last_bits=args.last_bits, output_affine=args.output_affine,
                          kernel=args.kernel, stride=args.stride)
    elif args.verb == "rtlsim":
        from hw_build.rtlsim import rtlsim_design

        if not 0 <= args.stall < 100:
            raise FlowError(f"--stall is a percentage below 100, got {args.stall}")
        if not _has_sources(_design_name(args)):
            from hw_build.api import estimate

            print(f"design {args.design} has no generated sources: running codegen (IMPL={args.impl}) first")
            estimate(args.design, input=args.input, objective=args.objective, latency_us=args.latency_us,
                     target_fps=args.target_fps, clock_ns=args.clock_ns, impl=args.impl, kind="codegen")
        rtlsim_design(_design_name(args), n_states=args.states, stall_percent=args.stall)
    elif args.verb == "synth":
        from hw_build.synth import synth_design

        if not _has_sources(_design_name(args)):
            from hw_build.api import estimate

            print(f"design {args.design} has no generated sources: running codegen (IMPL={args.impl}) first")
            estimate(args.design, input=args.input, objective=args.objective, latency_us=args.latency_us,
                     target_fps=args.target_fps, clock_ns=args.clock_ns, impl=args.impl, kind="codegen")
        synth_design(_design_name(args))
    elif args.verb == "verify":
        from hw_build.api import verify

        verify(_design_name(args), states=args.states)
    return None


def _build_choice(args: argparse.Namespace):
    """The :class:`~hw_build.compile.BuildChoice` of a build verb's options."""
    from hw_build.compile import BuildChoice

    return BuildChoice(input_mode=args.input, objective=args.objective, latency_us=args.latency_us,
                       target_fps=args.target_fps, clock_ns=args.clock_ns, impl=args.impl,
                       weights=getattr(args, "weights", "fixed"))


def _has_sources(design: str) -> bool:
    """Whether ``make codegen`` has run on the design (what rtlsim reads); a missing design is
    left to rtlsim, which refuses it in one sentence."""
    from hw_build.compile import HW_SOURCES
    from hw_build.design import design_dir

    out = design_dir(design)
    return not out.is_dir() or ((out / "intermediate_models" / "step_hw_codegen.onnx").exists()
                                and (out / HW_SOURCES).is_dir())
