"""The remote mode's round trip on loopback: 1 and 8 clients against one policy server.

``python -m host serve`` (emulated backend) runs in its own process on 127.0.0.1; each client is
its own process too, sending one observation per call (the control loop's size) through
:class:`host.backends.remote.RemotePolicy`. Per call: the whole call the client's loop sees; the
server's own work on the request (``handled``: parsing, checks, the driver's call, the reply;
the emulated fabric included); the network, the request's round trip less that work (ZeroMQ's
hand-offs through its I/O threads and the kernel's loopback, both ways, and the JSON header's
encoding and decoding on the client); and the client's own checks around it (the rest). p50 and
p99 over every call of every client.
Measured on this machine's CPU, not the board's.

Usage: ``.venv/bin/python bench/bench_remote.py [DESIGN_FOLDER] [--calls 2000] [--clients 1,8]
[--out bench/results/remote_loopback.json]``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import platform
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DESIGN = REPO / "tests" / "host" / "data" / "discrete"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _client(address: str, design: str, calls: int, warmup: int) -> dict[str, list[float]]:
    """One client process: ``calls`` timed requests of one observation each (after ``warmup``)."""
    from host.backends.remote import RemotePolicy
    from host.design.spec import load_spec

    spec = load_spec(design)
    states = (np.load(Path(design) / "states.npy", allow_pickle=False) if (Path(design) / "states.npy").exists()
              else np.zeros((64, *spec.obs_shape), np.float32)).astype(np.float32)
    client = RemotePolicy(spec, address, timeout_s=30)
    out: dict[str, list[float]] = {"call": [], "server": [], "driver": [], "network": [], "client": []}
    for i in range(warmup + calls):
        obs = states[i % len(states)][None]
        t0 = time.perf_counter()
        client(obs)
        call = time.perf_counter() - t0
        if i >= warmup:
            t = client.last_times
            server = client.last_server_s or 0.0
            out["call"].append(call)
            out["server"].append(server)
            out["driver"].append(t.check + t.pack + t.accel + t.unpack)
            out["network"].append(t.network)
            out["client"].append(max(0.0, call - t.network - server))
    client.close()
    return out


ECHO = """
import sys, zmq
s = zmq.Context.instance().socket(zmq.ROUTER)
s.bind("tcp://127.0.0.1:" + sys.argv[1])
print("ready", flush=True)
while True:
    s.send_multipart(s.recv_multipart())
"""


def zmq_floor(calls: int, warmup: int = 100) -> dict[str, float]:
    """The bare ZeroMQ REQ/ROUTER echo round trip on loopback (two processes, the same body size, no JSON,
    no checks): the floor under the remote mode's network time on this machine."""
    import zmq

    port = _free_port()
    echo = subprocess.Popen([sys.executable, "-c", ECHO, str(port)], stdout=subprocess.PIPE, text=True)
    try:
        echo.stdout.readline()
        req = zmq.Context.instance().socket(zmq.REQ)
        req.setsockopt(zmq.LINGER, 0)
        req.connect(f"tcp://127.0.0.1:{port}")
        frames, times = [b'{"kind": "act", "n": 1, "dtype": "float32"}', b"\0" * 16], []
        for i in range(warmup + calls):
            t0 = time.perf_counter()
            req.send_multipart(frames)
            req.recv_multipart()
            if i >= warmup:
                times.append(time.perf_counter() - t0)
        req.close(0)
    finally:
        echo.kill()
        echo.wait(timeout=10)
    return _stats(times)


def _stats(values: list[float]) -> dict[str, float]:
    us = np.asarray(values) * 1e6
    return {"p50_us": round(float(np.percentile(us, 50)), 1), "p99_us": round(float(np.percentile(us, 99)), 1),
            "calls": len(us)}


def run_bench(design: Path = DEFAULT_DESIGN, calls: int = 2000, clients: tuple[int, ...] = (1, 8),
              warmup: int = 100) -> dict:
    """Start a server, run each client count in turn; the p50/p99 of round trip, server work and network."""
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "host", "serve", "--design", str(design), "--backend", "emulated",
                               "--host", "127.0.0.1", "--port", str(port), "--idle-exit", "60"], cwd=REPO,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = server.stdout.readline()
        if "serving" not in line:
            raise RuntimeError(f"the server did not start: {line}{server.stderr.read()[-2000:]}")
        address = f"tcp://127.0.0.1:{port}"
        results = {}
        ctx = multiprocessing.get_context("fork")
        for k in clients:
            t0 = time.perf_counter()
            with ctx.Pool(k) as pool:
                runs = pool.starmap(_client, [(address, str(design), calls, warmup)] * k)
            wall = time.perf_counter() - t0
            merged = {key: [v for run in runs for v in run[key]] for key in runs[0]}
            results[f"{k}_clients"] = {
                "call": _stats(merged["call"]), "server_work": _stats(merged["server"]),
                "driver_call": _stats(merged["driver"]), "network": _stats(merged["network"]),
                "client_checks": _stats(merged["client"]), "calls_per_s": round(k * (calls + warmup) / wall, 1)}
    finally:
        server.terminate()
        server.wait(timeout=10)
    results["zmq_echo_floor"] = zmq_floor(calls)
    return {"design": Path(design).name, "backend": "emulated (the fabric emulated in numpy: server work is "
            "measured on this CPU, not the board's)", "transport": "ZeroMQ REQ/ROUTER over TCP loopback, batch 1",
            "python": platform.python_version(), "machine": platform.machine(), "processor": platform.processor(),
            "results": results}


def main() -> None:
    """Run the benchmark and write its JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("design", nargs="?", default=str(DEFAULT_DESIGN))
    parser.add_argument("--calls", type=int, default=2000, help="timed calls per client (default 2000)")
    parser.add_argument("--clients", default="1,8", help="client counts (default 1,8)")
    parser.add_argument("--out", default="bench/results/remote_loopback.json")
    args = parser.parse_args()
    record = run_bench(Path(args.design), args.calls, tuple(int(k) for k in args.clients.split(",")))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"remote mode on loopback, {record['design']}, batch 1 (µs):")
    print(f"  {'clients':>7} | {'whole call p50/p99':>20} | {'server work p50/p99':>20} | {'network p50/p99':>17} | "
          "client p50 | calls/s")
    for key, r in record["results"].items():
        if key == "zmq_echo_floor":
            print(f"  bare ZeroMQ echo round trip (the floor under 'network'): p50 {r['p50_us']:.1f}, p99 {r['p99_us']:.1f}")
            continue
        print(f"  {key.split('_')[0]:>7} | {r['call']['p50_us']:>9.1f} / {r['call']['p99_us']:<8.1f} | "
              f"{r['server_work']['p50_us']:>9.1f} / {r['server_work']['p99_us']:<8.1f} | "
              f"{r['network']['p50_us']:>7.1f} / {r['network']['p99_us']:<7.1f} | {r['client_checks']['p50_us']:>10.1f} | "
              f"{r['calls_per_s']:.0f}")
    print(f"written: {out}")


if __name__ == "__main__":
    main()
