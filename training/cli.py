"""The training stage's command line: ``python -m training teacher|eval|distill|envs``.

The Makefile's ``teacher``, ``eval`` and ``distill`` targets call these verbs; the demo and the
experiment grids, which drive several stages, are ``python -m flow`` (see :mod:`flow.cli`).

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
from training.teacher.config import ALGOS


def _cmd_teacher(args: argparse.Namespace) -> None:
    from training.teacher.config import parse_net_arch
    from training.teacher.train import install_sigterm_as_interrupt, train_teacher

    install_sigterm_as_interrupt()
    train_teacher(
        args.env, args.seed, run_dir=args.run_dir, steps=args.steps,
        net_arch=parse_net_arch(args.net_arch) if args.net_arch else None,
        hyperparams_path=args.hyperparams, eval_episodes=args.episodes, force=args.force, algo=args.algo,
    )


def _stored_results(path: Path) -> dict:
    """A run's ``results.json``, checked (pydantic) for what ``eval`` compares: one sentence if it is damaged."""
    from pydantic import BaseModel, ConfigDict, Field, ValidationError

    class StoredResults(BaseModel):
        model_config = ConfigDict(extra="allow", strict=True)
        seeds: list[int] = Field(min_length=1)
        returns: list[float] = Field(min_length=1)
        n_episodes: int

    try:
        data = json.loads(path.read_text())
        StoredResults.model_validate(data)
    except (OSError, UnicodeDecodeError, ValueError) as exc:  # ValidationError is a ValueError
        if isinstance(exc, ValidationError):
            first = exc.errors(include_url=False)[0]
            where = ".".join(str(p) for p in first["loc"]) or "the file"
            why = f"'{where}': {first['msg'].lower()}"
        else:
            why = f"not valid JSON ({type(exc).__name__})"
        raise FlowError(f"{path} is corrupt ({why}): restore it, or remove it to evaluate without the "
                        "reproduction check") from None
    return data


def _cmd_eval(args: argparse.Namespace) -> None:
    from training.atomic import write_json
    from training.evaluation import eval_seeds, evaluate
    from training.policies import load_policy
    from training.runs import RESULTS_FILE

    stored_path = Path(args.run) / RESULTS_FILE
    stored = _stored_results(stored_path) if stored_path.exists() else None  # checked before the evaluation runs
    policy, config = load_policy(args.run, args.env)
    seeds = eval_seeds(args.episodes, args.seed_start)
    result = evaluate(policy, config["env_id"], seeds, progress=True, desc=f"evaluating {config['kind']}")
    print(result.summary())
    if args.out:
        write_json(args.out, {"policy": config["kind"], **result.to_dict()})
        print(f"written to {args.out}")
    if stored is not None:
        if stored.get("seeds") == result.seeds:
            same = stored.get("returns") == result.returns
            print(f"reproduces {stored_path}: {'yes, every episode' if same else 'NO - returns differ'}")
            if not same:
                raise FlowError(f"evaluation of {args.run} does not reproduce its {RESULTS_FILE}")
        else:
            print(f"({stored_path} holds other seeds: {stored['n_episodes']} episodes from {stored['seeds'][0]}; "
                  f"seeds here start at {seeds[0]})")


def _cmd_distill(args: argparse.Namespace) -> None:
    from training.api import distill
    from training.qpd.config import dense_layers, load_qpd_config

    if args.env is None and args.teacher is not None:  # the teacher says its environment
        from training.teacher.policy import teacher_env_id

        args.env = teacher_env_id(args.teacher)
        if args.env is None:
            raise FlowError(f"the environment of teacher {args.teacher} is not in its name: give it with ENV=<id>")
    hidden = None
    if args.width is not None or args.depth is not None:  # either alone: the other from the environment's default
        hidden = dense_layers(args.env or load_qpd_config(args.config).env_id, args.width, args.depth)
    distill(args.env, args.teacher, config=args.config, run_dir=args.run_dir, force=args.force, seed=args.seed,
            method=args.method, weight_bits=args.bits, act_bits=args.abits, input_bits=args.input_bits,
            narrow_weights=args.narrow, hidden=hidden, conv=_parse_conv(args.conv), kernel=args.kernel,
            stride=args.stride, updates=args.updates,
            schedule=_parse_schedule(args.schedule) if args.schedule else None, eval_episodes=args.episodes,
            first_bits=args.first_bits, last_bits=args.last_bits, output_affine=True if args.output_affine else None)


def _parse_conv(text: str | None) -> list[int] | None:
    if text is None:
        return None
    if text.strip().lower() in ("", "none", "0"):
        return []
    try:
        return [int(c) for c in text.split(",")]
    except ValueError:
        raise FlowError(f"--conv must be comma-separated channel counts (or none), got '{text}'") from None


def _parse_schedule(text: str) -> list:
    try:
        return [item if item == "float" else int(item) for item in text.split(",")]
    except ValueError:
        raise FlowError(f"--schedule must be comma-separated bit widths (optionally starting with float), got '{text}'") from None


def _cmd_envs(args: argparse.Namespace) -> None:  # noqa: ARG001
    from training.teacher.config import supported_envs

    print("\n".join(supported_envs()))


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m training``."""
    parser = argparse.ArgumentParser(prog="python -m training", description="Training stage of the QPD flow: PPO teachers, QPD students, evaluation. The demo and the experiment grids: python -m flow.")
    sub = parser.add_subparsers(dest="verb", required=True, metavar="VERB")

    p = sub.add_parser("teacher", help="train a PPO (or SAC) teacher (resumes an interrupted run)")
    p.add_argument("--env", required=True, help="gymnasium id, e.g. CartPole-v1 (see `envs`)")
    p.add_argument("--algo", choices=ALGOS, default="ppo",
                   help="ppo (default) or sac (continuous actions; entries in training/teacher/hyperparams/sac.yml)")
    p.add_argument("--seed", type=int, default=0, help="training seed (default 0)")
    p.add_argument("--steps", type=int, default=None, help="override the environment's n_timesteps")
    p.add_argument("--net-arch", default=None, help="actor and critic hidden widths, e.g. 256,256 (default from YAML)")
    p.add_argument("--hyperparams", default=None, help="hyperparameter YAML (default training/teacher/hyperparams/<algo>.yml)")
    p.add_argument("--episodes", type=int, default=100, help="evaluation episodes (default 100)")
    p.add_argument("--run-dir", default=None, help="run folder (default runs/<env>/<algo>-teacher-s<seed>)")
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
    p.add_argument("--env", default=None, help="gymnasium id (default from --config, else the teacher's, else CartPole-v1)")
    p.add_argument("--bits", type=int, default=None, help="target weight bits, 1..8 (default 2; 1 = bipolar)")
    p.add_argument("--abits", type=int, default=None, help="target activation bits, 2..8 (default: max(--bits, 2))")
    p.add_argument("--input-bits", type=int, default=None, help="input quantizer bits (default 8)")
    p.add_argument("--narrow", action="store_true", default=None,
                   help="narrow-range weights (2 bits: -1, 0, 1), for FINN's RTL MVU (make codegen IMPL=rtl)")
    p.add_argument("--width", type=int, default=None, help="hidden width (default 32; 16 for frames)")
    p.add_argument("--depth", type=int, default=None, help="hidden layers (default 2; 1 for frames; 0 for frames: the output layer reads the convolutions)")
    p.add_argument("--conv", default=None, help="output channels of each convolution, e.g. 8 or 8,8 (pixel students; "
                                                "default 8 for frames, none for flat observations)")
    p.add_argument("--kernel", type=int, default=None, help="convolution kernel size (default 3)")
    p.add_argument("--stride", type=int, default=None, help="convolution stride (default 1)")
    p.add_argument("--method", default=None, choices=["qpd", "direct", "float"],
                   help="qpd: precision schedule (default); direct: the target bits from the start; float: float student")
    p.add_argument("--schedule", default=None, help="weight bits per stage, e.g. 8,4,3,2 or float,8,4,2")
    p.add_argument("--first-bits", type=int, default=None, help="weight bits of the first layer (default: --bits)")
    p.add_argument("--last-bits", type=int, default=None, help="weight bits of the output layer (default: --bits)")
    p.add_argument("--output-affine", action="store_true", default=None,
                   help="continuous actions: a per-action output scale and bias, applied on the host")
    p.add_argument("--updates", type=int, default=None, help="Adam updates over all stages (default 8000)")
    p.add_argument("--seed", type=int, default=None, help="student seed (default 0)")
    p.add_argument("--teacher", default=None,
                   help="teacher: a run folder (default runs/<env>/ppo-teacher-s0, trained if missing), a "
                        "stable-baselines3 PPO/SAC .zip (VecNormalize's vecnormalize.pkl beside it is used) or an "
                        "rl-baselines3-zoo log folder <algo>/<env>_<n>; --env defaults to the teacher's. Zips and "
                        ".pkl files are pickles: use trusted teachers only")
    p.add_argument("--config", default=None, help="YAML file with any distillation settings (see training/qpd/config.py)")
    p.add_argument("--episodes", type=int, default=None, help="evaluation episodes (default 100)")
    p.add_argument("--run-dir", default=None, help="run folder (default runs/<env>/<method>-<arch>-w<b>a<b>-s<seed>)")
    p.add_argument("--force", action="store_true", help="delete an existing run folder and distil again")
    p.set_defaults(func=_cmd_distill)

    p = sub.add_parser("envs", help="list the supported environments")
    p.set_defaults(func=_cmd_envs)

    return parser


def run_verb(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> int:
    """Parse ``argv`` with ``parser`` and run the chosen verb; return the process exit code.

    Shared by ``python -m training`` and ``python -m flow``: a FlowError is one sentence and
    exit code 2, Ctrl-C exits with 130.
    """
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", message="fast_hadamard_transform")  # brevitas: irrelevant on CPU

    def body() -> int | None:
        if getattr(args, "episodes", None) is not None and args.episodes <= 0:
            raise FlowError(f"--episodes must be positive, got {args.episodes}")
        code = args.func(args)
        return code if isinstance(code, int) else None  # a verb may return its exit code (designs: 3)

    return run_command(body)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one verb; return the process exit code."""
    return run_verb(build_parser(), argv)
