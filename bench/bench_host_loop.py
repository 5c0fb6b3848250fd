"""The control loop's host overhead and register traffic: the fast path against the former path.

Per call at batch 1 on the emulated board, the fabric's emulation excluded (the parts the
driver times itself: check, quantize + pack, unpack), p50 and p99 over real-looking states;
the same inside the environment loop (``env.step`` between calls, as ``compare.json``
records it); register accesses per call counted on the emulated board, for our driver and for FINN's own
(finn-plus-driver, through host.backends.emulated_pynq) where it is installed; and the steps per second
of the whole loop (policy call + env.step) for the emulated accelerator through the driver,
the numpy integer reference and the numpy float teacher, on the same CPU.

Usage: ``.venv/bin/python bench/bench_host_loop.py DESIGN_FOLDER [--out bench/results/host_loop.json]``
(``make bench`` runs it in the workstation's Python and in ``.venv-host``'s, the board's 3.10).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import gymnasium as gym
import numpy as np

from host.backends.driver import FinnZynqDriver
from host.backends.emulated_board import EmulatedBackend, register_accesses
from host.backends.emulator import EmulatedAccelerator
from host.loop.episodes import run_episodes
from host.design.spec import TEACHER_FILE, load_spec
from host.loop.teacher_numpy import NumpyTeacher


def overhead_us(driver: FinnZynqDriver, states: np.ndarray, rounds: int = 3) -> dict[str, float]:
    """p50/p99 of check + quantize/pack + unpack per call, the best of ``rounds`` passes."""
    best = None
    for _ in range(rounds):
        times = []
        for s in states:
            driver.execute(s[None])
            t = driver.last_times
            times.append((t.check + t.pack + t.unpack) * 1e6)
        p50 = float(np.percentile(times, 50))
        if best is None or p50 < best["p50"]:
            best = {"p50": p50, "p99": float(np.percentile(times, 99))}
    return best


def accesses_per_call(spec, fast: bool, states: np.ndarray) -> float:
    """Register accesses per call in the steady state (after the first call)."""
    board = EmulatedBackend(spec)
    driver = FinnZynqDriver(spec, board, max_batch=1, fast=fast)
    driver.execute(states[:1])
    before = register_accesses(board)
    for s in states[1:]:
        driver.execute(s[None])
    return (register_accesses(board) - before) / (len(states) - 1)


def finn_driver_accesses(spec, states: np.ndarray) -> float | None:
    """The same count for FINN's own driver, where finn-plus-driver is installed."""
    try:
        import finn_plus_driver  # noqa: F401
    except ImportError:
        return None
    from host.backends.emulated_pynq import emulated_pynq
    from host.design.finn_settings import finn_driver_settings

    info = finn_driver_settings(spec)["driver_information"]
    board = EmulatedBackend(spec)
    with emulated_pynq(board):
        from finn_plus_driver.overlays.dma import FINNDMAOverlay

        overlay = FINNDMAOverlay("design.bit", platform=info["platform"], io_shape_dict=info["io_shape_dict"],
                                 batch_size=1, runtime_weight_dir="/nonexistent")
        codes = spec.preprocess(states)
        overlay.execute(codes[:1].reshape(overlay.ishape_normal()))
        before = register_accesses(board)
        for c in codes[1:]:
            overlay.execute(c.reshape(overlay.ishape_normal()))
    return (register_accesses(board) - before) / (len(states) - 1)


def steps_per_s(policy, env_id: str, episodes: int = 5) -> float:
    """Environment steps per second of the whole loop with ``policy`` deciding every step."""
    start = time.perf_counter()
    result = run_episodes(policy, lambda: gym.make(env_id), list(range(1000, 1000 + episodes)), num_envs=1)
    steps = sum(e.length for e in result.episodes)
    return steps / (time.perf_counter() - start)


def loop_overhead_us(driver: FinnZynqDriver, env_id: str, episodes: int = 10) -> float:
    """p50 of check + quantize/pack + unpack per call inside the environment loop (``env.step``
    between calls, as ``compare.json`` records it)."""
    result = run_episodes(driver, lambda: gym.make(env_id), list(range(1000, 1000 + episodes)),
                          call_times=lambda: driver.last_times)
    t = result.times
    return float(np.percentile((np.array(t["check"]) + np.array(t["pack"]) + np.array(t["unpack"])) * 1e6, 50))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("design")
    parser.add_argument("--out", default="bench/results/host_loop.json")
    args = parser.parse_args()
    folder = Path(args.design)
    spec = load_spec(folder)
    states = (np.load(folder / "states.npy", allow_pickle=False) if (folder / "states.npy").exists()
              else np.random.default_rng(0).normal(scale=0.5, size=(2000, spec.obs_dim))).astype(np.float32)
    states = np.resize(states, (2000, spec.obs_dim))
    fast = FinnZynqDriver(spec, EmulatedBackend(spec), max_batch=1)
    former = FinnZynqDriver(spec, EmulatedBackend(spec), max_batch=1, fast=False)
    fast_us, former_us = overhead_us(fast, states), overhead_us(former, states)
    loop = {"emulated accelerator (fast path)": steps_per_s(fast, spec.env_id),
            "emulated accelerator (former path)": steps_per_s(former, spec.env_id)}
    emulator = EmulatedAccelerator(spec)
    loop["integer reference (numpy)"] = steps_per_s(lambda obs: spec.action_from_output(emulator(spec.preprocess(obs))),
                                                    spec.env_id)
    if (folder / TEACHER_FILE).exists():
        loop["float teacher (numpy)"] = steps_per_s(NumpyTeacher(folder / TEACHER_FILE), spec.env_id)
    record = {
        "design": spec.data.get("design"), "fast_path": {"input": fast.input_plan is not None,
                                                        "output": fast.output_plan is not None},
        "host_overhead_p50_us": round(fast_us["p50"], 2), "host_overhead_p99_us": round(fast_us["p99"], 2),
        "former_host_overhead_p50_us": round(former_us["p50"], 2), "former_host_overhead_p99_us": round(former_us["p99"], 2),
        "overhead_ratio_former_over_fast": round(former_us["p50"] / fast_us["p50"], 2),
        "loop_host_overhead_p50_us": round(loop_overhead_us(fast, spec.env_id), 2),
        "former_loop_host_overhead_p50_us": round(loop_overhead_us(former, spec.env_id), 2),
        "register_accesses_per_call": accesses_per_call(spec, True, states[:200]),
        "finn_driver_register_accesses_per_call": finn_driver_accesses(spec, states[:200]),
        "loop_steps_per_s": {k: round(v) for k, v in loop.items()},
        "python": platform.python_version(),
        "measured_on": "this workstation, emulated board (the fabric's emulation excluded from the overhead)",
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(record, indent=2) + "\n")
    print(f"host overhead per call (check + quantize + pack + unpack), p50: fast path {fast_us['p50']:.2f} µs, "
          f"former path {former_us['p50']:.2f} µs ({record['overhead_ratio_former_over_fast']}x)")
    print(f"  the same inside the environment loop (env.step between calls): fast path "
          f"{record['loop_host_overhead_p50_us']:.2f} µs, former path {record['former_loop_host_overhead_p50_us']:.2f} µs")
    print(f"register accesses per call: {record['register_accesses_per_call']:g} (FINN's driver: "
          f"{record['finn_driver_register_accesses_per_call']})")
    for name, v in record["loop_steps_per_s"].items():
        print(f"  loop steps/s, {name}: {v:,}")
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()
