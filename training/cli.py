"""The command line: ``python -m training <verb>``. The Makefile's targets call these verbs.

Every verb prints a short summary at the end. A :class:`~training.errors.FlowError` becomes
one sentence on stderr and exit code 2; Ctrl-C exits with 130 after saying what was kept.
"""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path
from typing import Sequence

from host.errors import run_command
from training.errors import FlowError
from training.evaluation import EVAL_SEED_START


def _cmd_teacher(args: argparse.Namespace) -> None:
    from training.config import parse_net_arch
    from training.train_teacher import install_sigterm_as_interrupt, train_teacher

    install_sigterm_as_interrupt()
    train_teacher(
        args.env, args.seed, run_dir=args.run_dir, steps=args.steps,
        net_arch=parse_net_arch(args.net_arch) if args.net_arch else None,
        hyperparams_path=args.hyperparams, eval_episodes=args.episodes, force=args.force,
    )


def _cmd_eval(args: argparse.Namespace) -> None:
    from training.atomic import write_json
    from training.evaluation import eval_seeds, evaluate
    from training.policies import load_policy
    from training.runs import RESULTS_FILE

    policy, config = load_policy(args.run, args.env)
    seeds = eval_seeds(args.episodes, args.seed_start)
    result = evaluate(policy, config["env_id"], seeds, progress=True, desc=f"evaluating {config['kind']}")
    print(result.summary())
    stored_path = Path(args.run) / RESULTS_FILE
    if args.out:
        write_json(args.out, {"policy": config["kind"], **result.to_dict()})
        print(f"written to {args.out}")
    if stored_path.exists():
        stored = json.loads(stored_path.read_text())
        if stored.get("seeds") == result.seeds:
            same = stored.get("returns") == result.returns
            print(f"reproduces {stored_path}: {'yes, every episode' if same else 'NO - returns differ'}")
            if not same:
                raise FlowError(f"evaluation of {args.run} does not reproduce its {RESULTS_FILE}")
        else:
            print(f"({stored_path} holds other seeds: {stored['n_episodes']} episodes from {stored['seeds'][0]}; "
                  f"seeds here start at {seeds[0]})")


def _ensure_teacher(env_id: str, teacher: str | None) -> Path:
    """The teacher run folder to distil from; trains the default teacher first if it is missing."""
    from training.runs import RESULTS_FILE, teacher_run_dir
    from training.train_teacher import train_teacher

    if teacher is not None:
        return Path(teacher)
    path = teacher_run_dir(env_id, 0)
    if not (path / RESULTS_FILE).exists():
        print(f"no teacher in {path}: training one first")
        train_teacher(env_id, 0, run_dir=path)
    return path


def _cmd_distill(args: argparse.Namespace) -> None:
    from training.distill import distill
    from training.qpd_config import load_qpd_config

    hidden = [args.width] * args.depth if args.width is not None else None
    cfg = load_qpd_config(args.config, env_id=args.env, seed=args.seed, method=args.method, weight_bits=args.bits,
                          act_bits=args.abits, input_bits=args.input_bits, hidden=hidden, updates=args.updates,
                          schedule=_parse_schedule(args.schedule) if args.schedule else None,
                          eval_episodes=args.episodes)
    distill(cfg, _ensure_teacher(cfg.env_id, args.teacher), args.run_dir, force=args.force)


def _parse_schedule(text: str) -> list:
    try:
        return [item if item == "float" else int(item) for item in text.split(",")]
    except ValueError:
        raise FlowError(f"--schedule must be comma-separated bit widths (optionally starting with float), got '{text}'") from None


def _int_list(text: str, name: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        values = []
    if not values:
        raise FlowError(f"--{name} must be comma-separated integers, got '{text}'")
    return values


def _cmd_table(args: argparse.Namespace) -> None:
    from training.table import grid_settings, qpd_table

    settings = grid_settings(args.config)
    teacher = _ensure_teacher(args.env, args.teacher)
    out = _grid_out(args, "qpd-table")
    data = qpd_table(args.env, teacher, bits=_int_list(args.bits, "bits"), seeds=_int_list(args.seeds, "seeds"),
                     methods=[m for m in args.methods.split(",") if m], hidden=[args.width] * args.depth,
                     updates=args.updates, episodes=args.episodes, jobs=args.jobs, out_dir=out, runs_dir=out / "runs",
                     settings=settings)
    print((out / "qpd_table.md").read_text())
    print(f"written: {out}/qpd_table.md, qpd_table.json, qpd_table.png ({len(data['trials'])} trials)")


def _cmd_frontier(args: argparse.Namespace) -> None:
    from training.frontier import frontier
    from training.table import grid_settings

    settings = grid_settings(args.config)
    teacher = _ensure_teacher(args.env, args.teacher)
    out = _grid_out(args, "frontier")
    frontier(args.env, teacher, widths=_int_list(args.widths, "widths"), bits=_int_list(args.bits, "bits"),
             seeds=_int_list(args.seeds, "seeds"), methods=[m for m in args.methods.split(",") if m], depth=args.depth,
             updates=args.updates, episodes=args.episodes, jobs=args.jobs, out_dir=out, runs_dir=out / "runs",
             settings=settings)
    print(f"written: {out}/frontier.md, frontier.json, frontier.png")


def _cmd_ablation(args: argparse.Namespace) -> None:
    from training.ablation import ablation, check_variants

    variants = check_variants([v for v in args.variants.split(",") if v])
    teacher = _ensure_teacher(args.env, args.teacher)
    out = _grid_out(args, "ablation")
    data = ablation(args.env, teacher, bits=_int_list(args.bits, "bits"), seeds=_int_list(args.seeds, "seeds"),
                    variants=variants, hidden=[args.width] * args.depth,
                    updates=args.updates, episodes=args.episodes, jobs=args.jobs, out_dir=out, runs_dir=out / "runs")
    print((out / "ablation.md").read_text())
    print(f"written: {out}/ablation.md, ablation.json, ablation.png ({len(data['trials'])} trials)")


def _cmd_envs(args: argparse.Namespace) -> None:  # noqa: ARG001
    from training.config import supported_envs

    print("\n".join(supported_envs()))


def _cmd_demo(args: argparse.Namespace) -> None:
    import time

    from hw_build.compile import estimate_design
    from hw_build.export import export_design
    from hw_build.verify import verify_design
    from training.distill import distill
    from training.qpd_config import load_qpd_config
    from training.train_teacher import train_teacher

    t0 = time.perf_counter()
    env = args.env

    def stage(text: str) -> None:
        print(f"\n== [{time.perf_counter() - t0:5.0f} s] {text} ==")

    stage(f"1/6 PPO teacher on {env}")
    teacher = train_teacher(env, 0)
    stage("2/6 QPD: 2x32 student, 8 -> 6 -> 4 -> 3 -> 2 bits")
    cfg = load_qpd_config(env_id=env, seed=args.seed)
    from training.distill import holds_other_run, student_run_dir
    from training.runs import teacher_run_dir

    run_dir = student_run_dir(cfg)
    stale = holds_other_run(run_dir, cfg)
    if stale:
        print(f"{run_dir} holds a student distilled with other settings (an older default?): distilling it again")
    student = distill(cfg, teacher_run_dir(env, 0), force=stale)
    design = f"demo-{env}"
    stage(f"3/6 export to QONNX (design {design})")
    export_design(student_run_dir(cfg), design, force=True)
    stage("4/6 FINN estimate for the PYNQ-Z2: the smallest folding within 2 µs, input quantized on the host")
    est = estimate_design(design)
    stage("5/6 verification ladder (Brevitas, QONNX, FINN graphs)")
    verify_design(design)
    stage("6/6 environment loop against the emulated accelerator vs software, 100 episodes")
    from host.cli import build_parser as host_parser
    from host.cli import compare

    rep = compare(host_parser().parse_args(["compare", "--design", design, "--episodes", "100"]))
    brevitas = rep["software"].get("Brevitas student", {})
    deployed = rep["deployed"]
    teacher_bits = student["size"]["teacher"]["total_bits"]
    print(f"\n== demo done in {time.perf_counter() - t0:.0f} s ==\n"
          f"teacher {teacher['mean_return']:.1f} ± {teacher['std_return']:.1f}; QPD student {student['student']} "
          f"{student['mean_return']:.1f} ± {student['std_return']:.1f}, deployed in {deployed['total_bits']:,} bits "
          f"({100 * deployed['total_bits'] / teacher_bits:.2f} % of the teacher's {teacher_bits:,}; every weight and "
          f"threshold, the host's input quantizer included); est. {est.resources['LUT']:,.0f} LUT, "
          f"{est.resources['BRAM_18K']:,.0f} BRAM_18K, {est.resources['DSP']:,.0f} DSP, {est.latency_ns / 1000:.2f} µs; "
          f"emulated accelerator {rep['hardware']['mean_return']:.1f} ± {rep['hardware']['std_return']:.1f}, agreeing with the "
          f"Brevitas student on {100 * brevitas.get('step_agreement', float('nan')):.2f} % of steps and "
          f"{brevitas.get('identical_returns', 0)}/{rep['episodes']} episode returns")


def _add_grid_options(p: argparse.ArgumentParser, out_name: str) -> None:
    """The options every grid of trials (table, frontier, ablation) takes alike."""
    from training.trials import default_jobs

    p.add_argument("--depth", type=int, default=2, help="student hidden layers (default 2)")
    p.add_argument("--updates", type=int, default=8000, help="distillation updates per trial (default 8000)")
    p.add_argument("--episodes", type=int, default=100, help="evaluation episodes per trial (default 100)")
    p.add_argument("--jobs", type=int, default=default_jobs(), help="trials in parallel (default: one per core)")
    p.add_argument("--teacher", default=None, help="teacher run folder (default runs/<env>/ppo-teacher-s0)")
    p.add_argument("--out", default=None, help=f"output folder (default runs/<env>/{out_name})")


def _grid_out(args: argparse.Namespace, out_name: str) -> Path:
    """A grid verb's output folder: ``--out``, else ``runs/<env>/<out_name>``."""
    from training.runs import runs_root

    return Path(args.out) if args.out else runs_root() / args.env / out_name


GRID_CONFIG_HELP = ("YAML of distillation settings for every distilling trial, to compare a QPD variant "
                    "(e.g. final_stage_share: 0.6); use a separate --out")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m training``."""
    parser = argparse.ArgumentParser(prog="python -m training", description="Training side of the QPD flow: PPO teachers, evaluation (and, as the flow grows, QPD students).")
    sub = parser.add_subparsers(dest="verb", required=True, metavar="VERB")

    p = sub.add_parser("teacher", help="train a PPO teacher (resumes an interrupted run)")
    p.add_argument("--env", required=True, help="gymnasium id, e.g. CartPole-v1 (see `envs`)")
    p.add_argument("--seed", type=int, default=0, help="training seed (default 0)")
    p.add_argument("--steps", type=int, default=None, help="override the environment's n_timesteps")
    p.add_argument("--net-arch", default=None, help="actor and critic hidden widths, e.g. 256,256 (default from YAML)")
    p.add_argument("--hyperparams", default=None, help="hyperparameter YAML (default training/hyperparams/ppo.yml)")
    p.add_argument("--episodes", type=int, default=100, help="evaluation episodes (default 100)")
    p.add_argument("--run-dir", default=None, help="run folder (default runs/<env>/ppo-teacher-s<seed>)")
    p.add_argument("--force", action="store_true", help="delete an existing run folder and retrain")
    p.set_defaults(func=_cmd_teacher)

    p = sub.add_parser("eval", help="re-evaluate a saved policy on seeded deterministic episodes")
    p.add_argument("run", help="run folder, e.g. runs/CartPole-v1/ppo-teacher-s0")
    p.add_argument("--episodes", type=int, default=100, help="number of episodes (default 100)")
    p.add_argument("--seed-start", type=int, default=EVAL_SEED_START, help=f"first evaluation seed (default {EVAL_SEED_START})")
    p.add_argument("--env", default=None, help="refuse unless the run was trained on this environment")
    p.add_argument("--out", default=None, help="also write the results to this JSON file")
    p.set_defaults(func=_cmd_eval)

    p = sub.add_parser("distill", help="distil a teacher into a low-bit Brevitas student (QPD)")
    p.add_argument("--env", default=None, help="gymnasium id (default from --config, else CartPole-v1)")
    p.add_argument("--bits", type=int, default=None, help="target weight bits, 1..8 (default 2; 1 = bipolar)")
    p.add_argument("--abits", type=int, default=None, help="target activation bits, 2..8 (default: max(--bits, 2))")
    p.add_argument("--input-bits", type=int, default=None, help="input quantizer bits (default 8)")
    p.add_argument("--width", type=int, default=None, help="hidden width (default 32)")
    p.add_argument("--depth", type=int, default=2, help="hidden layers when --width is given (default 2)")
    p.add_argument("--method", default=None, choices=["qpd", "direct", "float"],
                   help="qpd: precision schedule (default); direct: the target bits from the start; float: float student")
    p.add_argument("--schedule", default=None, help="weight bits per stage, e.g. 8,4,3,2 or float,8,4,2")
    p.add_argument("--updates", type=int, default=None, help="Adam updates over all stages (default 8000)")
    p.add_argument("--seed", type=int, default=None, help="student seed (default 0)")
    p.add_argument("--teacher", default=None, help="teacher run folder (default runs/<env>/ppo-teacher-s0, trained if missing)")
    p.add_argument("--config", default=None, help="YAML file with any distillation settings (see training/qpd_config.py)")
    p.add_argument("--episodes", type=int, default=None, help="evaluation episodes (default 100)")
    p.add_argument("--run-dir", default=None, help="run folder (default runs/<env>/<method>-<arch>-w<b>a<b>-s<seed>)")
    p.add_argument("--force", action="store_true", help="delete an existing run folder and distil again")
    p.set_defaults(func=_cmd_distill)

    from training.trials import TABLE_METHODS

    p = sub.add_parser("table", help="QPD against every baseline across bit widths and seeds (qpd_table.md/json/png)")
    p.add_argument("--env", default="CartPole-v1")
    p.add_argument("--bits", default="8,4,3,2,1", help="weight bit widths (default 8,4,3,2,1; activations max(bits, 2))")
    p.add_argument("--seeds", default="0,1,2", help="student seeds (default 0,1,2)")
    p.add_argument("--methods", default=",".join(TABLE_METHODS), help=f"default {','.join(TABLE_METHODS)}")
    p.add_argument("--width", type=int, default=32, help="student hidden width (default 32)")
    _add_grid_options(p, "qpd-table")
    p.add_argument("--config", default=None, help=GRID_CONFIG_HELP)
    p.set_defaults(func=_cmd_table)

    p = sub.add_parser("frontier", help="size/return frontier of QPD and direct distillation over widths x bits")
    p.add_argument("--env", default="CartPole-v1")
    p.add_argument("--widths", default="8,16,32,64", help="student hidden widths (default 8,16,32,64)")
    p.add_argument("--bits", default="1,2,3,4,5,6,7,8", help="weight bit widths (default 1..8; activations max(bits, 2))")
    p.add_argument("--seeds", default="0", help="student seeds (default 0)")
    p.add_argument("--methods", default="qpd,direct")
    _add_grid_options(p, "frontier")
    p.add_argument("--config", default=None, help=GRID_CONFIG_HELP)
    p.set_defaults(func=_cmd_frontier)

    from training.ablation import VARIANTS

    p = sub.add_parser("ablation", help="what each idea of QPD buys: QPD with one idea off at a time (ablation.md/json/png)")
    p.add_argument("--env", default="CartPole-v1")
    p.add_argument("--bits", default="3,2", help="weight bit widths (default 3,2; activations max(bits, 2))")
    p.add_argument("--seeds", default="0,1,2", help="student seeds (default 0,1,2)")
    p.add_argument("--variants", default=",".join(VARIANTS), help=f"default {','.join(VARIANTS)}")
    p.add_argument("--width", type=int, default=32, help="student hidden width (default 32)")
    _add_grid_options(p, "ablation")
    p.set_defaults(func=_cmd_ablation)

    p = sub.add_parser("envs", help="list the supported environments")
    p.set_defaults(func=_cmd_envs)

    p = sub.add_parser("demo", help="the whole flow on one environment (default CartPole-v1)")
    p.add_argument("--env", default="CartPole-v1")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one verb; return the process exit code."""
    args = build_parser().parse_args(argv)
    warnings.filterwarnings("ignore", message="fast_hadamard_transform")  # brevitas: irrelevant on CPU

    def body() -> None:
        if (getattr(args, "episodes", 1) or 1) <= 0:
            raise FlowError(f"--episodes must be positive, got {args.episodes}")
        args.func(args)

    return run_command(body)
