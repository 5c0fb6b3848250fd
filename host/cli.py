"""The host command line: ``python -m host <verb>`` (the Makefile's board-eval).

``compare`` runs the environment loop against the accelerator (``--backend pynq`` on a board,
``emulated`` anywhere), plays the software policies on the same seeds, and writes the report.
On a workstation, ``make compare`` runs it through ``python -m flow compare``, which adds the
references the board cannot run. Bad input is one sentence and exit code 2; a comparison whose
verdict fails (see :func:`host.loop.report.verdict`) exits 1 after its report is written.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from host.errors import EXIT_CHECK_FAILED, HostError, run_command


def resolve_design(name: str) -> Path:
    """A design folder from a name (``bitstreams/<name>``, or ``$QPD_BITSTREAMS/<name>``) or a path."""
    path = Path(name)
    if path.is_dir():
        return path
    candidate = Path(os.environ.get("QPD_BITSTREAMS", "bitstreams")) / name
    if candidate.is_dir():
        return candidate
    raise HostError(f"design '{name}' not found (looked for {path} and {candidate})")


FINN_GRAPH = "intermediate_models/step_convert_to_hw.onnx"


@dataclass
class SoftwareReferences:
    """Software policies to compare the accelerator with, beyond those the board itself has.

    The board has the numpy integer reference and the float teacher. A workstation adds, from
    ``python -m flow compare`` (host/ imports nothing of ours): ``independent``, a ``(name,
    policy)`` that shares no code with the emulated fabric and replaces the integer reference
    (FINN's Python execution of the hardware-layer graph), and ``extra`` policies listed after
    the teacher (the Brevitas student). ``independent_missing`` says why there is no independent
    reference; ``notes`` what else was skipped. ``verdict_reference`` names the policy the verdict
    is taken against (the Brevitas student, fed float observations); without it, the independent
    reference.
    """

    independent: tuple[str, Callable] | None = None
    independent_missing: str = ("finn is not installed here (as on the board); on a workstation, "
                                "make compare (python -m flow compare) adds FINN's execution")
    extra: dict[str, Callable] = field(default_factory=dict)
    notes: list[str] = field(default_factory=lambda: [
        "Brevitas student skipped: python -m host runs without torch (as on the board); on a workstation, "
        "make compare (python -m flow compare) adds it"])
    verdict_reference: str | None = None
    #: Where the design's files differ from its FINN graph (a workstation's cross-check): verdict causes.
    problems: list[str] = field(default_factory=list)


ReferenceProvider = Callable[[Path, Any], SoftwareReferences]


def load_design(name: str, backend: str):
    """The design's spec for ``backend``: with ``pynq``, its bitstream required and the board's
    pre-flight checks passed (:func:`host.board.preflight`)."""
    from host.board import preflight
    from host.design.spec import load_spec

    spec = load_spec(resolve_design(name), require_bitstream=backend == "pynq")
    if backend == "pynq":
        preflight(spec)
    return spec


def local_accelerator(spec, backend: str, max_batch: int, timeout_s: float, package=None):
    """``(backend, driver)`` for the fabric on this machine: the board's (``pynq``) or the emulated one.

    ``package``: a policy for a writable design (:mod:`host.design.policy_package`), written into the
    accelerator before anything runs (and again after a recovery reprograms it); the driver then
    quantizes observations with that student's input quantizer."""
    from host.backends.driver import FinnZynqDriver, PynqBackend
    from host.backends.emulated_board import EmulatedBackend

    board = PynqBackend(str(spec.bitfile)) if backend == "pynq" else EmulatedBackend(spec)
    driver = FinnZynqDriver(spec, board, max_batch=max_batch, timeout_s=timeout_s)
    if package is not None:
        from host.design.policy_package import switch_policy

        switch_policy(board, driver, package)
    return board, driver


def load_policy_package(spec, policy: str | None):
    """The policy package ``policy`` names for a writable design (None without one)."""
    if not policy:
        return None
    from host.design.policy_package import load_package, resolve_policy

    return load_package(resolve_policy(spec.folder, policy), spec)


def independent_reference(spec, refs: SoftwareReferences) -> tuple[str, Callable, str | None]:
    """A software reference of the accelerator that does not share the emulator's code.

    The one in ``refs`` where a workstation gave one; otherwise (on the board) the numpy integer
    reference, which is independent of the fabric it is compared with there. Returns ``(name,
    policy, note or None)``.
    """
    from host.backends.emulator import EmulatedAccelerator

    if refs.independent is not None:
        return (*refs.independent, None)
    emulator = EmulatedAccelerator(spec)
    return ("integer reference (numpy)", lambda obs: spec.action_from_output(emulator(spec.preprocess(obs))),
            f"FINN's Python execution skipped ({refs.independent_missing}): the numpy integer reference stands in, "
            "which off a board shares its code with the emulated fabric")


def compare(args: argparse.Namespace, references: ReferenceProvider | None = None,
            prog: str = "python -m host") -> dict:
    """``make board-eval`` (and, with the workstation's ``references``, ``make compare``).

    ``references(design, spec)``: software policies the board cannot run (see
    :class:`SoftwareReferences`); ``prog``: the command line that called this, for the report.
    """
    import numpy as np

    from host.loop.envs import make_env
    from host.loop.episodes import run_episodes
    from host.loop.progress import episode_progress
    from host.loop.report import build_report, headline, verdict, write_report
    from host.design.spec import TEACHER_FILE, check_env_fits
    from host.loop.teacher_numpy import NumpyTeacher

    spec = load_design(args.design, args.backend)
    design = spec.folder
    package = load_policy_package(spec, getattr(args, "policy", None))
    design_spec, spec = spec, (package.spec if package is not None else spec)
    env_id = args.env or spec.env_id
    probe = make_env(env_id)
    check_env_fits(spec, probe.observation_space, probe.action_space)
    probe.close()
    if args.episodes <= 0 or args.num_envs <= 0:
        raise HostError("--episodes and --num-envs must be positive")
    if args.backend == "remote":
        from host.backends.remote import RemotePolicy

        from host.backends.remote import board_address

        if not args.board:
            raise HostError("--backend remote needs --board <host>:<port> (the machine running make serve)")
        backend, driver = None, RemotePolicy(spec, board_address(args.board), timeout_s=args.timeout,
                                             keys=getattr(args, "keys", None), package=package)
    else:
        backend, driver = local_accelerator(design_spec, args.backend, args.num_envs, args.timeout,
                                            **({"package": package} if package is not None else {}))
    seeds = list(range(args.seed_start, args.seed_start + args.episodes))

    refs = references(design, spec) if references is not None else SoftwareReferences()
    ref_name, reference, note = independent_reference(spec, refs)
    software = {ref_name: reference}
    notes = [note] if note else []
    teacher = package.folder / TEACHER_FILE if package is not None and (package.folder / TEACHER_FILE).exists() \
        else design / TEACHER_FILE
    if teacher.exists():
        software["float teacher (numpy)"] = NumpyTeacher(teacher)
    else:
        notes.append(f"float teacher skipped: no {TEACHER_FILE} in the design")
    software.update(refs.extra)
    notes += refs.notes
    # One output step (per action where the design scales each action on its own).
    tolerance = np.asarray(spec.data["action"].get("output_scale", 0.0), dtype=np.float64) * 1.001
    judge = refs.verdict_reference if refs.verdict_reference in software else ref_name

    def new_env():
        return make_env(env_id)

    loaded = getattr(driver, "loaded_policy", None)
    if loaded is not None:
        print(f"policy {loaded['name']} written into {design.name} over AXI-lite: {loaded['words']:,} words in "
              f"{loaded['memories']} memories, read back equal, flushed; policy sha256 {loaded['policy_sha256'][:16]}…")
    print(f"comparing {design.name} ({args.backend} backend) with {', '.join(software)} on {len(seeds)} episodes "
          f"of {env_id}, {args.num_envs} environment(s) per call")
    with episode_progress(len(seeds), f"{args.backend} hardware") as advance:
        hw = run_episodes(driver, new_env, seeds, num_envs=args.num_envs, shadows=software, tolerance=tolerance,
                          call_times=lambda: driver.last_times, progress=advance)
    # Episodes are independent, so the software policies play all seeds side by side (batched calls);
    # their latency is measured at batch 1 in the shadow calls above, the size a control loop sends.
    results = {name: run_episodes(policy, new_env, seeds, num_envs=len(seeds)) for name, policy in software.items()}
    meta = {"format_version": 1, "design": design.name, "env_id": env_id, "backend": args.backend,
            "num_envs": args.num_envs, "notes": notes, "deployed": spec.data.get("deployed"),
            "accelerator_resets": getattr(driver, "resets", None),
            "board": args.board if args.backend == "remote" else None,
            "fabric": getattr(driver, "fabric", None) if args.backend == "remote" else args.backend,
            "command": f"{prog} " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:2] == ["compare"]
            else f"make compare DESIGN={design.name} BACKEND={args.backend}",
            "frames_through_emulated_fabric": getattr(backend, "frames_run", None),
            "register_accesses_per_call": _accesses_per_call(backend, driver), "policy": loaded}
    rep = build_report(meta, hw, results)
    rep["verdict"] = verdict(rep, judge, allow_disagreement=getattr(args, "allow_disagreement", False),
                             problems=refs.problems)
    out = Path(args.out) if args.out else design / (f"compare-{args.backend}" + (f"-{package.name}" if package else ""))
    written = write_report(rep, hw.times, out)
    print(headline(rep))
    for note in notes:
        print(f"  note: {note}")
    print(f"  report: {', '.join(str(p) for p in written)}")
    print(rep["verdict"]["line"], flush=True)
    return rep


def compare_exit_code(rep: dict) -> int:
    """The exit code of a comparison: 0 when its verdict passed (or its failure was allowed), else 1."""
    return 0 if rep["verdict"]["passed"] else EXIT_CHECK_FAILED


def add_design_argument(p: argparse.ArgumentParser) -> None:
    """``--design``, as every verb that reads a design folder takes it."""
    p.add_argument("--design", required=True, help="design name in bitstreams/ or a design folder")


def add_compare_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``compare``, shared with the workstation's ``python -m flow compare``."""
    add_design_argument(p)
    p.add_argument("--backend", choices=["emulated", "pynq", "remote"], default="emulated",
                   help="emulated (default), pynq (on the board), or remote: a policy server (make serve) at --board")
    p.add_argument("--board", default=None, help="with --backend remote: <host>:<port> of the policy server")
    p.add_argument("--keys", default=None, help="with --backend remote: a folder holding client.key_secret and the "
                   "server's server.key (make serve-keys): the connection is authenticated and encrypted (CurveZMQ)")
    p.add_argument("--episodes", type=int, default=100)
    p.add_argument("--seed-start", type=int, default=1000, help="first episode seed (default 1000, as every evaluation)")
    p.add_argument("--env", default=None, help="environment id (default: the design's own)")
    p.add_argument("--num-envs", type=int, default=1, help="environments stepped side by side, one accelerator call per step")
    p.add_argument("--timeout", type=float, default=1.0, help="seconds to wait for the accelerator (default 1)")
    p.add_argument("--out", default=None, help="report folder (default <design>/compare-<backend>)")
    p.add_argument("--policy", default=None,
                   help="a writable design (WEIGHTS=runtime): the student to write into it first, a policy package "
                        "from make load-policy (its name in <design>/policies/, or its folder)")
    p.add_argument("--allow-disagreement", action="store_true",
                   help="a failing verdict (disagreement, timeouts, no step) is a warning and exits 0, for studies of "
                        "faulty hardware (make: ALLOW_DISAGREEMENT=1)")


def finn_settings(args: argparse.Namespace) -> Path:
    """``python -m host finn-settings``: FINN's driver settings for a design, from its accel.json."""
    from host.design.finn_settings import write_finn_settings
    from host.design.spec import load_spec

    path = write_finn_settings(load_spec(resolve_design(args.design)), Path(args.out) if args.out else None)
    print(f"written: {path} (for finn-plus-driver: finn-plus-driver -b <design>/<bitfile> -s {path} -f <function>; its input is "
          "accel.json's input datatype, for integer-input designs the host quantizer's codes)")
    return path


def serve(args: argparse.Namespace) -> None:
    """``make serve``: answer observation → action for a design over the network (see :mod:`host.backends.remote`)."""
    import zmq

    from host.backends.remote import MAX_BATCH, PolicyServer, check_port, zmq_sentence

    port = check_port(args.port)
    if not 0 < args.max_batch <= MAX_BATCH:
        raise HostError(f"--max-batch must be from 1 to {MAX_BATCH}, got {args.max_batch}")
    _raise_descriptor_limit()
    spec = load_design(args.design, args.backend)
    if args.allow_load:
        if spec.data.get("runtime_weights") is None:
            raise HostError(f"--allow-load needs a writable design (make estimate WEIGHTS=runtime); {spec.folder.name}'s "
                            "weights are fixed in the fabric")
        if not args.keys and not _loopback(args.host):
            raise HostError(f"--allow-load on {args.host} without --keys would let anyone who reaches the port write "
                            "a policy into the fabric: give --keys (make serve-keys) or serve on 127.0.0.1")
    package = load_policy_package(spec, getattr(args, "policy", None))
    board, driver = local_accelerator(spec, args.backend, args.max_batch, args.timeout, package)
    host = f"[{args.host}]" if ":" in args.host else args.host
    if args.peer_idle <= 0:
        raise HostError(f"--peer-idle must be positive, got {args.peer_idle:g}")
    from host.design.policy_package import switch_policy

    server = PolicyServer(package.spec if package is not None else spec, driver, f"tcp://{host}:{port}",
                          keys=Path(args.keys) if args.keys else None, max_batch=args.max_batch,
                          idle_peer_s=args.peer_idle, loaded=getattr(driver, "loaded_policy", None),
                          loader=(lambda pkg: switch_policy(board, driver, pkg)) if args.allow_load else None,
                          fabric=args.backend)
    print(f"serving {spec.folder.name} ({args.backend} backend) at {server.address}"
          f"{' with CurveZMQ keys from ' + args.keys if args.keys else ', without authentication'}"
          f"{'; clients may load their policies' if args.allow_load else ''}; Ctrl-C stops", flush=True)
    def terminated(*_: object) -> None:
        raise KeyboardInterrupt("terminated")

    import signal

    signal.signal(signal.SIGTERM, terminated)  # kill <pid> stops it as Ctrl-C does, with its summary
    try:
        server.serve(idle_s=args.idle_exit)
    except zmq.ZMQError as exc:
        raise HostError(zmq_sentence(exc, f"serving at {server.address}")) from None
    finally:
        server.close()
        print(f"served {server.served} calls, loaded {server.loads} policies, refused {server.refused} requests, "
              f"disconnected {server.dropped_idle} idle connections")


def _loopback(host: str) -> bool:
    """Whether ``host`` (an interface to listen on) is this machine only."""
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _raise_descriptor_limit() -> None:
    """Let the server use every file descriptor its hard limit allows (each connection holds one)."""
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft < hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ImportError, ValueError, OSError):
        pass


def serve_keys(args: argparse.Namespace) -> None:
    """``make serve-keys``: a CurveZMQ key pair for the policy server and one for a client."""
    from host.backends.remote import make_keys

    make_keys(Path(args.keys))
    print(f"written to {args.keys}: server.key (public), server.key_secret, client.key (public), client.key_secret, "
          f"authorized_clients/client.key. Board: make serve KEYS=<folder with server.key_secret and "
          f"authorized_clients/>; workstation: make compare BACKEND=remote BOARD=<board>:<port> KEYS=<folder with "
          f"client.key_secret and server.key>. Keep the .key_secret files private.")


def board_setup(args: argparse.Namespace) -> None:
    """``make board-setup`` on the board: install make deploy's wheels offline and check the image."""
    from host.board import board_setup as install

    installed = install(Path(args.wheels))
    print(f"installed from {args.wheels} without network: {', '.join(installed)}")
    print("the board is ready: make board-eval DESIGN=<design> (as root: sudo -i first)")


def _accesses_per_call(backend, driver) -> float | None:
    """Register reads and writes per accelerator call, counted on the emulated board (set-up included)."""
    from host.backends.emulated_board import EmulatedBackend, register_accesses

    if not isinstance(backend, EmulatedBackend) or not driver.calls:
        return None
    return round(register_accesses(backend) / driver.calls, 3)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m host``."""
    parser = argparse.ArgumentParser(prog="python -m host", description="Board-side program: the environment loop "
                                     "against the accelerator and the hardware/software comparison.")
    sub = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    p = sub.add_parser("compare", help="hardware (board or emulated) vs software policies on the same seeds")
    add_compare_arguments(p)
    p.set_defaults(func=lambda args: compare_exit_code(compare(args)))
    p = sub.add_parser("finn-settings", help="write the settings.json FINN's own PYNQ driver (finn-plus-driver) needs, "
                       "from the design's accel.json")
    add_design_argument(p)
    p.add_argument("--out", default=None, help="output file (default <design>/finn_settings.json)")
    p.set_defaults(func=finn_settings)
    p = sub.add_parser("serve", help="serve the design's policy over the network (ZeroMQ) for compare --backend remote")
    add_design_argument(p)
    p.add_argument("--backend", choices=["pynq", "emulated"], default="pynq", help="pynq (on the board, default) or emulated")
    p.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1, this machine "
                   "only; 0.0.0.0 opens it to the network: use --keys then)")
    p.add_argument("--port", default="5555", help="TCP port, 1 to 65535 (default 5555)")
    p.add_argument("--policy", default=None, help="a writable design: the policy package (make load-policy) to write "
                   "into it before serving")
    p.add_argument("--allow-load", action="store_true", help="a writable design: let clients send the policy package "
                   "they compare (compare --policy, board-table --backend remote) and write it in; on a non-loopback "
                   "--host only with --keys")
    p.add_argument("--keys", default=None, help="a folder from make serve-keys holding server.key_secret and "
                   "authorized_clients/: only those clients connect, encrypted (CurveZMQ)")
    p.add_argument("--max-batch", type=int, default=64, help="most observations in one request (default 64)")
    p.add_argument("--timeout", type=float, default=1.0, help="seconds to wait for the accelerator (default 1)")
    p.add_argument("--idle-exit", type=float, default=None, help="stop after this many seconds without a request")
    p.add_argument("--peer-idle", type=float, default=60.0, help="disconnect a connection that sends nothing for "
                   "this many seconds (default 60)")
    p.set_defaults(func=serve)
    p = sub.add_parser("serve-keys", help="make a CurveZMQ key pair for the policy server and one for a client")
    p.add_argument("--keys", "--out", dest="keys", default="keys", help="folder for the keys (default keys)")
    p.set_defaults(func=serve_keys)
    p = sub.add_parser("board-setup", help="on the board: install the wheels make deploy brought (gymnasium and its "
                       "pure-Python dependencies) with pip --no-index, after checking numpy < 2 and pynq 3.x")
    p.add_argument("--wheels", default="wheels", help="the wheels folder make deploy copied (default wheels)")
    p.set_defaults(func=board_setup)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one verb; return the exit code."""
    args = build_parser().parse_args(argv)
    return run_command(lambda: (lambda code: code if isinstance(code, int) else None)(args.func(args)))
