"""The command line of what drives several stages: ``python -m flow <verb>``.

``demo`` (the whole flow on one environment), ``compare`` (the host's comparison with the
workstation's references added) and the experiment grids (``table``, ``frontier``,
``ablation``). The Makefile's ``demo``, ``compare``, ``qpd-table``, ``frontier`` and ``ablation``
targets call these verbs. As in the stage command lines, a :class:`~training.errors.FlowError` becomes one
sentence on stderr and exit code 2; Ctrl-C exits with 130 after saying what was kept.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

from training.cli import run_verb
from training.errors import FlowError
from training.runs import teacher_run_dir
from training.teacher.train import ensure_teacher


def _int_list(text: str, name: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        values = []
    if not values:
        raise FlowError(f"--{name} must be comma-separated integers, got '{text}'")
    return values


def _grid_hidden(args: argparse.Namespace) -> list[int]:
    """The grid's dense layers: ``--width`` × ``--depth``, each defaulting to the environment's
    default student (2 × 32; 1 × 16 for frames)."""
    from training.qpd.config import dense_layers

    return dense_layers(args.env, getattr(args, "width", None), args.depth)


def _cmd_table(args: argparse.Namespace) -> None:
    from flow.experiments.table import grid_settings, qpd_table

    settings = grid_settings(args.config)
    # Not ensure_teacher: a committed table can gain its QAT PPO rows without its teacher's run folder.
    from training.teacher.committed import restore_committed_teacher

    teacher = Path(args.teacher) if args.teacher else teacher_run_dir(args.env, 0)
    restore_committed_teacher(args.env, teacher)
    out = _grid_out(args, "qpd-table")
    data = qpd_table(args.env, teacher, train_missing_teacher=args.teacher is None,
                     bits=_int_list(args.bits, "bits"), seeds=_int_list(args.seeds, "seeds"),
                     methods=[m for m in args.methods.split(",") if m], hidden=_grid_hidden(args),
                     updates=args.updates, episodes=args.episodes, jobs=args.jobs, out_dir=out, runs_dir=out / "runs",
                     settings=settings, hardware=not args.no_hardware, executor=args.executor,
                     qat_ppo_bits=_int_list(args.qat_ppo_bits, "QAT PPO bits") if args.qat_ppo_bits else None)
    print((out / "qpd_table.md").read_text())
    print(f"written: {out}/qpd_table.md, qpd_table.json, qpd_table.png ({len(data['trials'])} trials)")


def _cmd_input_precision(args: argparse.Namespace) -> None:
    from flow.experiments.input_precision import input_precision
    from flow.experiments.table import grid_settings

    settings = grid_settings(args.config)
    teacher = ensure_teacher(args.env, args.teacher)
    out = _grid_out(args, "input-precision")
    bits = _int_list(args.bits, "bits")
    if len(bits) != 1:
        raise FlowError(f"--bits takes one weight width for the whole study, got {args.bits}")
    data = input_precision(args.env, teacher, input_bits=_int_list(args.input_bits, "input bits"), bits=bits[0],
                           seeds=_int_list(args.seeds, "seeds"), hidden=_grid_hidden(args), updates=args.updates,
                           episodes=args.episodes, jobs=args.jobs, out_dir=out, runs_dir=out / "runs",
                           settings=settings, hardware=not args.no_hardware, executor=args.executor)
    print((out / "input_precision.md").read_text())
    print(f"written: {out}/input_precision.md, input_precision.json, input_precision.png ({len(data['trials'])} trials)")


def _cmd_frontier(args: argparse.Namespace) -> None:
    from flow.experiments.frontier import frontier
    from flow.experiments.table import grid_settings

    settings = grid_settings(args.config)
    if args.abits is not None:
        settings["act_bits"] = args.abits
    depth = len(_grid_hidden(args))
    if depth == 0 and args.widths:
        raise FlowError("--widths has no meaning with --depth 0: the output layer reads the convolutions")
    widths = [0] if depth == 0 else _int_list(args.widths or "8,16,32,64", "widths")
    teacher = ensure_teacher(args.env, args.teacher)
    out = _grid_out(args, "frontier")
    frontier(args.env, teacher, widths=widths, bits=_int_list(args.bits, "bits"),
             seeds=_int_list(args.seeds, "seeds"), methods=[m for m in args.methods.split(",") if m], depth=depth,
             updates=args.updates, episodes=args.episodes, jobs=args.jobs, out_dir=out, runs_dir=out / "runs",
             settings=settings, hardware=not args.no_hardware, executor=args.executor,
             channels=_int_list(args.channels, "channels") if args.channels else None)
    print(f"written: {out}/frontier.md, frontier.json, frontier.png")


def _cmd_ablation(args: argparse.Namespace) -> None:
    from flow.experiments.ablation import ablation, check_variants
    from flow.experiments.table import grid_settings

    variants = check_variants([v for v in args.variants.split(",") if v])
    settings = grid_settings(args.config)
    teacher = ensure_teacher(args.env, args.teacher)
    out = _grid_out(args, "ablation")
    data = ablation(args.env, teacher, bits=_int_list(args.bits, "bits"), seeds=_int_list(args.seeds, "seeds"),
                    variants=variants, hidden=_grid_hidden(args),
                    updates=args.updates, episodes=args.episodes, jobs=args.jobs, out_dir=out, runs_dir=out / "runs",
                    executor=args.executor, settings=settings)
    print((out / "ablation.md").read_text())
    print(f"written: {out}/ablation.md, ablation.json, ablation.png ({len(data['trials'])} trials)")


def _cmd_render(args: argparse.Namespace) -> None:
    from flow.experiments.render import rerender_folder

    for path in rerender_folder(Path(args.folder), hardware=not args.no_hardware):
        print(f"re-rendered {path}")


def _cmd_summary(args: argparse.Namespace) -> None:
    from flow.experiments.summary import SUMMARY_JSON, SUMMARY_MD, write_summary

    folder = Path(args.folder)
    if not folder.is_dir():
        raise FlowError(f"{folder} is not a folder of results tables")
    summary = write_summary(folder)
    print((folder / SUMMARY_MD).read_text())
    print(f"written: {folder / SUMMARY_MD}, {folder / SUMMARY_JSON} ({len(summary)} environments)")


def _cmd_summary_fresh(args: argparse.Namespace) -> None:
    from flow.experiments.summary import SUMMARY_MD, write_summary
    from flow.experiments.summary_fresh import CHOICES, FRESH_FILE, reevaluate_summary

    folder = Path(args.folder)
    if not folder.is_dir():
        raise FlowError(f"{folder} is not a folder of results tables")
    reevaluate_summary(folder, envs=args.env.split(",") if args.env else None, seed_start=args.seed_start,
                       episodes=args.episodes, recreate=not args.no_recreate)
    summary = write_summary(folder)
    print((folder / SUMMARY_MD).read_text())
    claims = [e[c] for e in summary.values() for c in CHOICES if e[c]]
    fresh = sum(1 for c in claims if c.get("fresh_seeds"))
    print(f"written: {folder / FRESH_FILE}; {fresh} of {len(claims)} chosen students are reported on fresh seeds")


def _cmd_fresh_seeds(args: argparse.Namespace) -> None:
    from flow.experiments.fresh_seeds import reevaluate

    reevaluate(Path(args.folder), seed_start=args.seed_start, episodes=args.episodes)
    print((Path(args.folder) / "fresh_seeds.md").read_text())


def _cmd_compare(args: argparse.Namespace) -> int:
    from flow.api import compare_args
    from host.cli import compare_exit_code

    return compare_exit_code(compare_args(args).report)


def _cmd_load_policy(args: argparse.Namespace) -> None:
    from hw_build.load_policy import prepare_policy

    prepare_policy(args.design, run=args.run, policy=args.policy, name=args.name, force=args.force)


def _cmd_board_table(args: argparse.Namespace) -> int:
    from flow.board_table import board_table

    return board_table(args.design, Path(args.dir), backend=args.backend, episodes=args.episodes,
                       runs=Path(args.runs) if args.runs else None, out=args.out, board=args.board, keys=args.keys)


def _cmd_demo(args: argparse.Namespace) -> None:
    from flow.demo import run_demo

    run_demo(args.env, args.seed, weights=args.weights, impl=args.impl)


def _add_grid_options(p: argparse.ArgumentParser, out_name: str) -> None:
    """The options every grid of trials (table, frontier, ablation) takes alike."""
    from flow.executors import EXECUTORS
    from flow.experiments.trials import default_jobs

    p.add_argument("--depth", type=int, default=None, help="student hidden layers (default 2; 1 for frames; 0 for frames: the output layer reads the convolutions)")
    p.add_argument("--updates", type=int, default=8000, help="distillation updates per trial (default 8000)")
    p.add_argument("--episodes", type=int, default=100, help="evaluation episodes per trial (default 100)")
    p.add_argument("--jobs", type=int, default=default_jobs(), help="trials in parallel (default: one per core)")
    p.add_argument("--executor", choices=EXECUTORS, default="process",
                   help="where trials run: local processes (--jobs of them, default) or Ray tasks (RAY_ADDRESS's cluster, "
                        "or a local Ray with this machine's cores)")
    p.add_argument("--teacher", default=None, help="teacher run folder (default runs/<env>/ppo-teacher-s0)")
    p.add_argument("--out", default=None, help=f"output folder (default runs/<env>/{out_name})")


def _cmd_designs(args: argparse.Namespace) -> int:
    from flow.designs import build_designs

    return build_designs([r for r in args.runs.split(",") if r], bitstream=args.bitstream, force=args.force,
                         executor=args.executor, jobs=args.jobs, out=Path(args.out) if args.out else None)


def _cmd_deploy_folder(args: argparse.Namespace) -> None:
    from flow.deploy import build_deploy_folder
    from host.cli import resolve_design

    design = resolve_design(args.design)
    out = build_deploy_folder(design, Path(args.out) if args.out else Path("build") / "deploy" / design.name)
    wheels = sorted(p.name for p in (out / "wheels").glob("*.whl"))
    print(f"written: {out} (host/, Makefile, requirements/host.lock, bitstreams/{design.name}, "
          f"wheels/: {', '.join(wheels)})")


def _grid_out(args: argparse.Namespace, out_name: str) -> Path:
    """A grid verb's output folder: ``--out``, else ``runs/<env>/<out_name>``."""
    from training.runs import runs_root

    return Path(args.out) if args.out else runs_root() / args.env / out_name


HARDWARE_HELP = ("skip the hardware columns (deployed bits and FINN's LUT/BRAM/DSP estimate per student "
                 "architecture, about 10 s each, cached under build/arch-cost)")
GRID_CONFIG_HELP = ("YAML of distillation settings for every distilling trial, to compare a QPD variant "
                    "(e.g. final_stage_share: 0.6); use a separate --out")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m flow``."""
    parser = argparse.ArgumentParser(prog="python -m flow", description="What drives several stages of the QPD flow: the end-to-end demo, the workstation's hw/sw comparison and the experiment grids.")
    sub = parser.add_subparsers(dest="verb", required=True, metavar="VERB")

    from flow.experiments.trials import TABLE_METHODS

    p = sub.add_parser("table", help="QPD against every baseline across bit widths and seeds (qpd_table.md/json/png)")
    p.add_argument("--env", default="CartPole-v1")
    p.add_argument("--bits", default="8,4,3,2,1", help="weight bit widths (default 8,4,3,2,1; activations max(bits, 2))")
    p.add_argument("--seeds", default="0,1,2", help="student seeds (default 0,1,2)")
    p.add_argument("--methods", default=",".join(TABLE_METHODS), help=f"default {','.join(TABLE_METHODS)}")
    p.add_argument("--width", type=int, default=None, help="student hidden width (default 32; 16 for frames)")
    p.add_argument("--qat-ppo-bits", default=None,
                   help="widths QAT PPO from scratch runs at, e.g. 8,2 (default: all of --bits; each of its trials "
                        "costs a teacher's training budget)")
    _add_grid_options(p, "qpd-table")
    p.add_argument("--config", default=None, help=GRID_CONFIG_HELP)
    p.add_argument("--no-hardware", action="store_true", help=HARDWARE_HELP)
    p.set_defaults(func=_cmd_table)

    p = sub.add_parser("frontier", help="size/return frontier of QPD and direct distillation over widths x bits")
    p.add_argument("--env", default="CartPole-v1")
    p.add_argument("--widths", default=None, help="student hidden widths (default 8,16,32,64; none with --depth 0)")
    p.add_argument("--bits", default="1,2,3,4,5,6,7,8", help="weight bit widths (default 1..8; activations max(bits, 2))")
    p.add_argument("--abits", type=int, default=None,
                   help="activation bits of every student instead of max(bits, 2), e.g. 4 with --bits 8 for w8a4 "
                        "(activations cost thresholds: 2^abits - 1 per channel)")
    p.add_argument("--seeds", default="0", help="student seeds (default 0)")
    p.add_argument("--methods", default="qpd,direct")
    p.add_argument("--channels", default=None, help="pixel students: convolution channel counts, e.g. 4,8,16 "
                                                   "(default: the default student's 8)")
    _add_grid_options(p, "frontier")
    p.add_argument("--config", default=None, help=GRID_CONFIG_HELP)
    p.add_argument("--no-hardware", action="store_true", help=HARDWARE_HELP)
    p.set_defaults(func=_cmd_frontier)

    from flow.experiments.ablation import VARIANTS

    p = sub.add_parser("ablation", help="what each idea of QPD buys: QPD with one idea off at a time (ablation.md/json/png)")
    p.add_argument("--env", default="CartPole-v1")
    p.add_argument("--bits", default="3,2", help="weight bit widths (default 3,2; activations max(bits, 2))")
    p.add_argument("--seeds", default="0,1,2", help="student seeds (default 0,1,2)")
    p.add_argument("--variants", default=",".join(VARIANTS), help=f"default {','.join(VARIANTS)}")
    p.add_argument("--width", type=int, default=None, help="student hidden width (default 32; 16 for frames)")
    _add_grid_options(p, "ablation")
    p.add_argument("--config", default=None, help=GRID_CONFIG_HELP + "; each variant's own switch wins")
    p.set_defaults(func=_cmd_ablation)

    p = sub.add_parser("input-precision", help="QPD at one weight width with the input quantizer at several widths "
                       "(input_precision.md/json/png)")
    p.add_argument("--env", default="HalfCheetah-v5")
    p.add_argument("--input-bits", default="8,6,4,3", help="input quantizer widths (default 8,6,4,3)")
    p.add_argument("--bits", default="3", help="weight bits of every student (default 3; activations max(bits, 2))")
    p.add_argument("--seeds", default="0,1,2", help="student seeds (default 0,1,2)")
    p.add_argument("--width", type=int, default=None, help="student hidden width (default 32)")
    _add_grid_options(p, "input-precision")
    p.add_argument("--config", default=None, help=GRID_CONFIG_HELP)
    p.add_argument("--no-hardware", action="store_true", help=HARDWARE_HELP)
    p.set_defaults(func=_cmd_input_precision)

    p = sub.add_parser("render", help="re-render the grids in a folder (qpd_table, frontier, ablation) from their "
                       "json, adding the hardware record where it is missing; nothing is trained")
    p.add_argument("folder", help="a grid's output folder, e.g. docs/results/Acrobot-v1 (its subfolders too)")
    p.add_argument("--no-hardware", action="store_true", help="do not compile missing architectures with FINN")
    p.set_defaults(func=_cmd_render)

    p = sub.add_parser("summary", help="results at a glance: summary.md/json from the committed tables (nothing is run)")
    p.add_argument("folder", nargs="?", default="docs/results", help="the results folder (default docs/results)")
    p.set_defaults(func=_cmd_summary)

    p = sub.add_parser("summary-fresh", help="play the summary's chosen students and their teachers on fresh episode "
                       "seeds (summary_fresh.json), then re-render the summary with those figures")
    p.add_argument("folder", nargs="?", default="docs/results", help="the results folder (default docs/results)")
    p.add_argument("--env", default=None, help="only these environments, comma-separated (default: every table's); "
                   "runs for different environments may share the record at once")
    p.add_argument("--seed-start", type=int, default=2000, help="first fresh seed (default 2000)")
    p.add_argument("--episodes", type=int, default=100, help="fresh episodes (default 100)")
    p.add_argument("--no-recreate", action="store_true", help="skip students whose run folder is gone instead of "
                   "rerunning their trial from its record")
    p.set_defaults(func=_cmd_summary_fresh)

    p = sub.add_parser("fresh-seeds", help="re-evaluate a grid's students and teacher on episode seeds no choice was "
                       "made on (fresh_seeds.md/json beside the grid); nothing is trained")
    p.add_argument("folder", help="a grid's folder whose trial run folders are here, e.g. docs/results/HalfCheetah-v5/ablation")
    p.add_argument("--seed-start", type=int, default=2000, help="first fresh seed (default 2000)")
    p.add_argument("--episodes", type=int, default=100, help="fresh episodes (default 100)")
    p.set_defaults(func=_cmd_fresh_seeds)

    from host.cli import add_compare_arguments, add_design_argument

    p = sub.add_parser("compare", help="hardware (emulated, or the board) vs software on the same seeds, with "
                       "FINN's execution and the Brevitas student as references")
    add_compare_arguments(p)
    p.add_argument("--run", default=None, help="a writable design (WEIGHTS=runtime): the run folder of the student to "
                   "load into it (make load-policy prepares it first)")
    p.set_defaults(func=_cmd_compare)

    p = sub.add_parser("load-policy", help="prepare a student for a writable design (WEIGHTS=runtime): compiled as the "
                       "design was, its signature checked, its weights and thresholds in the design's memory layout "
                       "(FINN's runtime-weights .dat files) under <design>/policies/<name>/")
    add_design_argument(p)
    p.add_argument("--run", default=None, help="the student's run folder")
    p.add_argument("--policy", default=None, help="or the student's exported design folder (make export)")
    p.add_argument("--name", default=None, help="the policy's name (default: the run or design folder's name)")
    p.add_argument("--force", action="store_true", help="prepare it again even where it is prepared already")
    p.set_defaults(func=_cmd_load_policy)

    p = sub.add_parser("board-table", help="every student of a grid folder run on one writable design: the "
                       "comparison episodes of each, hardware return and agreement beside the grid's own columns")
    add_design_argument(p)
    p.add_argument("--dir", required=True, help="the grid folder (with trials/), e.g. docs/results/CartPole-v1")
    p.add_argument("--backend", choices=["emulated", "pynq", "remote"], default="emulated",
                   help="emulated (default), pynq (on the board), or remote: a policy server started with "
                        "make serve ALLOW_LOAD=1 at --board, which each student is sent to")
    p.add_argument("--board", default=None, help="with --backend remote: <host>:<port> of the policy server")
    p.add_argument("--keys", default=None, help="with --backend remote: the CurveZMQ keys folder (make serve-keys)")
    p.add_argument("--episodes", type=int, default=None, help="episodes per student (default: the grid's own)")
    p.add_argument("--runs", default=None, help="where the students' run folders are (default <dir>/runs); missing "
                   "ones are recreated from their trial records")
    p.add_argument("--out", default=None, help="output stem (default <dir>/board_table_<design>)")
    p.set_defaults(func=_cmd_board_table)

    from flow.designs import default_design_jobs
    from flow.executors import EXECUTORS

    p = sub.add_parser("designs", help="export + estimate (+ bitstream with --bitstream, where Vivado is) for many "
                       "runs at once, each as its single-design targets would make it; a summary in build/designs/")
    p.add_argument("--runs", required=True, help="run folders of distilled students, comma-separated")
    p.add_argument("--bitstream", action="store_true", help="also the Vivado build (exit code 3 for a design whose "
                   "worker has no Vivado; the others go on)")
    p.add_argument("--force", action="store_true", help="replace designs that exist already")
    p.add_argument("--jobs", type=int, default=default_design_jobs(), help="designs in parallel with the process "
                   "executor (default: one per two cores)")
    p.add_argument("--executor", choices=EXECUTORS, default="process", help="local processes (default) or Ray tasks")
    p.add_argument("--out", default=None, help="summary folder (default build/designs)")
    p.set_defaults(func=_cmd_designs)

    p = sub.add_parser("deploy-folder", help="make the folder make deploy copies to a board: host/, the Makefile, "
                       "the design and the wheels the board image lacks (downloaded for armv7l, Python 3.10)")
    add_design_argument(p)
    p.add_argument("--out", default=None, help="output folder (default build/deploy/<design>)")
    p.set_defaults(func=_cmd_deploy_folder)

    p = sub.add_parser("demo", help="the whole flow on one environment (default CartPole-v1)")
    p.add_argument("--env", default="CartPole-v1")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--weights", choices=["fixed", "runtime"], default="fixed",
                   help="runtime: a writable design (one bitstream, many students), the student loaded over AXI-lite")
    p.add_argument("--impl", choices=["hls", "rtl"], default="hls",
                   help="rtl: the all-RTL design (narrow-range student, argmax on the host), simulated whole in "
                        "Verilator (ladder level 4b) and counted by Yosys (make synth)")
    p.set_defaults(func=_cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one verb; return the process exit code."""
    return run_verb(build_parser(), argv)
