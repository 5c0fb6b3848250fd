"""Host speed: the emulator against FINN's Python execution, and environment steps per second against NUM_ENVS.

- emulator vs FINN: the same design's hardware-layer graph, per call at batch 1 (a control
  loop's call) and for one batch of 1000 states, ratio FINN / emulator;
- steps per second of the whole loop (policy call + env.step) for k = 1, 4, 16, 64
  environments side by side, for the emulated accelerator through the driver and for the
  numpy teacher on the same CPU.

Both run on the accelerator's input: the float states go through the design's input transform
first (``spec.preprocess``: an integer-input design's graph takes the input quantizer's codes).

Usage: ``.venv/bin/python bench/bench_host.py DESIGN_FOLDER [--out bench/results/host.json]``
(the design needs ``intermediate_models/``, so one built here, e.g. ``bitstreams/demo-CartPole-v1``).
``--states``, ``--repeat`` and ``--ks`` shrink it to a smoke test (tests/test_bench.py).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import gymnasium as gym
import numpy as np


def _best(fn, repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("design")
    parser.add_argument("--out", default="bench/results/host.json")
    parser.add_argument("--states", type=int, default=1000, help="states of the batched call (default 1000)")
    parser.add_argument("--repeat", type=int, default=5, help="timings of each measure; the best is kept (default 5)")
    parser.add_argument("--ks", default="1,4,16,64", help="environments side by side (default 1,4,16,64)")
    args = parser.parse_args()
    from host.backends.driver import FinnZynqDriver
    from host.backends.emulated_board import EmulatedBackend
    from host.backends.emulator import EmulatedAccelerator
    from host.loop.episodes import run_episodes
    from host.design.spec import load_spec
    from host.loop.teacher_numpy import NumpyTeacher
    from hw_build.execution import execute_batch, with_batch
    from hw_build.finn_env import prepare_finn

    prepare_finn()
    folder = Path(args.design)
    spec = load_spec(folder)
    emulator = EmulatedAccelerator(spec)
    graph = folder / "intermediate_models" / "step_convert_to_hw.onnx"
    n, repeat = args.states, args.repeat
    floats = np.random.default_rng(0).normal(scale=0.5, size=(n, spec.obs_dim)).astype(np.float32)
    # what the fabric takes (an integer design's graph refuses floats), as the float32 tensors ONNX wants
    states = np.asarray(spec.preprocess(floats), dtype=np.float32)
    from finn.core.onnx_exec import execute_onnx

    one = with_batch(graph, 1)
    name = one.graph.input[0].name
    n_finn = min(50, n)
    finn_1 = _best(lambda: [execute_onnx(one, {name: states[i:i + 1]}) for i in range(n_finn)], repeat) / n_finn
    emu_1 = _best(lambda: [emulator(states[i:i + 1]) for i in range(n)], repeat) / n
    finn_b = _best(lambda: execute_batch(graph, states), min(3, repeat))
    emu_b = _best(lambda: emulator(states), repeat)
    if not np.array_equal(np.asarray(execute_batch(graph, states)).reshape(n, -1), emulator(states).reshape(n, -1)):
        raise SystemExit(f"bench_host: the emulator and FINN's execution disagree on {folder}'s states")
    rows = [("emulator vs FINN Python execution, batch 1 (per call)", finn_1, emu_1),
            (f"emulator vs FINN Python execution, {n} states in one call", finn_b, emu_b)]
    print("| measure | FINN (µs) | emulator (µs) | FINN / emulator |\n| --- | ---: | ---: | ---: |")
    for label, f, e in rows:
        print(f"| {label} | {f * 1e6:.1f} | {e * 1e6:.1f} | {f / e:.0f}x |")
    result = {"design": folder.name, "finn_batch1_us": finn_1 * 1e6, "emulator_batch1_us": emu_1 * 1e6,
              "ratio_batch1": finn_1 / emu_1, "batch_states": n, "finn_batch1000_us": finn_b * 1e6, "emulator_batch1000_us": emu_b * 1e6,
              "ratio_batch1000": finn_b / emu_b, "steps_per_second": []}
    teacher = NumpyTeacher(folder / "teacher.npz") if (folder / "teacher.npz").exists() else None
    print("\n| environments side by side (k) | emulated accelerator, steps/s | numpy teacher on the CPU, steps/s |\n"
          "| ---: | ---: | ---: |")
    for k in (int(k) for k in args.ks.split(",")):
        seeds = list(range(1000, 1000 + max(k, 8)))
        driver = FinnZynqDriver(spec, EmulatedBackend(spec), max_batch=k)

        def make_env():
            return gym.make(spec.env_id)

        t0 = time.perf_counter()
        hw = run_episodes(driver, make_env, seeds, num_envs=k)
        hw_rate = sum(e.length for e in hw.episodes) / (time.perf_counter() - t0)
        sw_rate = None
        if teacher is not None:
            t0 = time.perf_counter()
            sw = run_episodes(teacher, make_env, seeds, num_envs=k)
            sw_rate = sum(e.length for e in sw.episodes) / (time.perf_counter() - t0)
        result["steps_per_second"].append({"k": k, "emulated_accelerator": hw_rate, "numpy_teacher": sw_rate})
        print(f"| {k} | {hw_rate:,.0f} | {sw_rate:,.0f} |" if sw_rate else f"| {k} | {hw_rate:,.0f} | – |")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    tmp.replace(out)


if __name__ == "__main__":
    main()
