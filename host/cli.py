"""The host command line: ``python -m host <verb>`` (the Makefile's compare and board-eval).

``compare`` runs the environment loop against the accelerator (``--backend pynq`` on a board,
``emulated`` anywhere), plays the software policies on the same seeds, and writes the report.
Bad input is one sentence and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from pathlib import Path
from typing import Sequence

import numpy as np

from host.errors import HostError, run_command


def resolve_design(name: str) -> Path:
    """A design folder from a name (``bitstreams/<name>``, or ``$QPD_BITSTREAMS/<name>``) or a path."""
    path = Path(name)
    if path.is_dir():
        return path
    candidate = Path(os.environ.get("QPD_BITSTREAMS", "bitstreams")) / name
    if candidate.is_dir():
        return candidate
    raise HostError(f"design '{name}' not found (looked for {path} and {candidate})")


def _brevitas_policy(design: Path, spec):
    """The Brevitas student of the design's run, where torch and the training code are installed."""
    export = design / "export.json"
    if not export.exists():
        return None, "no export.json beside the design"
    try:
        from training.qpd.distill import STUDENT_FILE, StudentPolicy, load_student  # workstation only
    except ImportError:
        return None, "torch/brevitas are not installed here (as on the board)"
    run = Path(json.loads(export.read_text())["run"])
    if not (run / STUDENT_FILE).exists():
        return None, f"the student checkpoint {run / STUDENT_FILE} is not here"
    student, _ = load_student(run / STUDENT_FILE)
    action = spec.data["action"]
    if spec.discrete:
        return StudentPolicy(student), None
    return StudentPolicy(student, np.asarray(action["low"]), np.asarray(action["high"])), None


FINN_GRAPH = "intermediate_models/step_convert_to_hw.onnx"


def independent_reference(design: Path, spec):
    """A software reference of the accelerator that does not share the emulator's code.

    On a workstation (finn installed, the design's FINN graphs present): FINN's own Python
    execution of the hardware-layer graph, fed by the host's input transform. On the board,
    where finn cannot be installed: the numpy integer reference, which is independent of the
    fabric it is compared with there. Returns ``(name, policy, note or None)``.
    """
    from host.emulator import EmulatedAccelerator

    graph = design / FINN_GRAPH
    try:
        from hw_build.execution import execute_batch  # workstation only
    except ImportError:
        why = "finn is not installed here (as on the board)"
    else:
        if graph.exists():
            return ("FINN hardware-layer graph", lambda obs: spec.action_from_output(execute_batch(graph, spec.preprocess(obs))),
                    None)
        why = f"{graph} is not here"
    emulator = EmulatedAccelerator(spec)
    return ("integer reference (numpy)", lambda obs: spec.action_from_output(emulator(spec.preprocess(obs))),
            f"FINN's Python execution skipped ({why}): the numpy integer reference stands in, which off a board "
            "shares its code with the emulated fabric")


def compare(args: argparse.Namespace) -> dict:
    """``make compare`` / ``make board-eval``."""
    import gymnasium as gym

    from host.driver import FinnZynqDriver, PynqBackend
    from host.emulated_board import EmulatedBackend
    from host.episodes import run_episodes
    from host.report import build_report, headline, write_report
    from host.spec import TEACHER_FILE, check_env_fits, load_spec
    from host.teacher_numpy import NumpyTeacher

    design = resolve_design(args.design)
    spec = load_spec(design, require_bitstream=args.backend == "pynq")
    env_id = args.env or spec.env_id
    try:
        probe = gym.make(env_id)
    except gym.error.Error as exc:
        raise HostError(f"cannot make environment {env_id}: {exc}") from None
    check_env_fits(spec, probe.observation_space, probe.action_space)
    probe.close()
    if args.episodes <= 0 or args.num_envs <= 0:
        raise HostError("--episodes and --num-envs must be positive")
    backend = PynqBackend(str(spec.bitfile)) if args.backend == "pynq" else EmulatedBackend(spec)
    driver = FinnZynqDriver(spec, backend, max_batch=args.num_envs, timeout_s=args.timeout)
    seeds = list(range(args.seed_start, args.seed_start + args.episodes))

    ref_name, reference, note = independent_reference(design, spec)
    software = {ref_name: reference}
    notes = [note] if note else []
    if (design / TEACHER_FILE).exists():
        software["float teacher (numpy)"] = NumpyTeacher(design / TEACHER_FILE)
    else:
        notes.append(f"float teacher skipped: no {TEACHER_FILE} in the design")
    brevitas, why = _brevitas_policy(design, spec)
    if brevitas is not None:
        software["Brevitas student"] = brevitas
    else:
        notes.append(f"Brevitas student skipped: {why}")
    tolerance = float(spec.data["action"].get("output_scale", 0.0)) * 1.001

    def make_env():
        return gym.make(env_id)

    print(f"comparing {design.name} ({args.backend} backend) with {', '.join(software)} on {len(seeds)} episodes "
          f"of {env_id}, {args.num_envs} environment(s) per call")
    hw = run_episodes(driver, make_env, seeds, num_envs=args.num_envs, shadows=software, tolerance=tolerance,
                      call_times=lambda: driver.last_times)
    # Episodes are independent, so the software policies play all seeds side by side (batched calls);
    # their latency is measured at batch 1 in the shadow calls above, the size a control loop sends.
    results = {name: run_episodes(policy, make_env, seeds, num_envs=len(seeds)) for name, policy in software.items()}
    meta = {"format_version": 1, "design": design.name, "env_id": env_id, "backend": args.backend,
            "num_envs": args.num_envs, "notes": notes, "deployed": spec.data.get("deployed"),
            "accelerator_resets": driver.resets,
            "command": "python -m host " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:2] == ["compare"]
            else f"make compare DESIGN={design.name} BACKEND={args.backend}",
            "frames_through_emulated_fabric": getattr(backend, "frames_run", None)}
    rep = build_report(meta, hw, results)
    out = Path(args.out) if args.out else design / f"compare-{args.backend}"
    written = write_report(rep, hw.times, out)
    print(headline(rep))
    for note in notes:
        print(f"  note: {note}")
    print(f"  report: {', '.join(str(p) for p in written)}")
    return rep


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m host``."""
    parser = argparse.ArgumentParser(prog="python -m host", description="Board-side program: the environment loop "
                                     "against the accelerator and the hardware/software comparison.")
    sub = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    p = sub.add_parser("compare", help="hardware (board or emulated) vs software policies on the same seeds")
    p.add_argument("--design", required=True, help="design name in bitstreams/ or a design folder")
    p.add_argument("--backend", choices=["emulated", "pynq"], default="emulated")
    p.add_argument("--episodes", type=int, default=100)
    p.add_argument("--seed-start", type=int, default=1000, help="first episode seed (default 1000, as every evaluation)")
    p.add_argument("--env", default=None, help="environment id (default: the design's own)")
    p.add_argument("--num-envs", type=int, default=1, help="environments stepped side by side, one accelerator call per step")
    p.add_argument("--timeout", type=float, default=1.0, help="seconds to wait for the accelerator (default 1)")
    p.add_argument("--out", default=None, help="report folder (default <design>/compare-<backend>)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one verb; return the exit code."""
    args = build_parser().parse_args(argv)
    return run_command(lambda: compare(args) and None)
