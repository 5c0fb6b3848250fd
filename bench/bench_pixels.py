"""Pixel designs on the host: packing a binary frame, against FINN's packing, in the same run.

1. One MinAtar frame (10×10×4 booleans) into the input DMA buffer: the driver's binary-frame
   fast path (:class:`host.datapath.fast_path.BinaryFramePlan`: one gather, one ``np.packbits``), the
   general ``host.datapath.packing.pack``, and FINN's ``finnpy_to_packed_bytearray`` (what FINN's own
   driver does); all three give the same bytes (checked here first).
2. One whole accelerator call on the emulated board (frame check, pack, DMA protocol, the
   emulated sliding window and MVAUs, unpack), and one MinAtar environment step, which is what
   the fabric's latency budget for frames (10 µs) is measured against.

    python bench/bench_pixels.py [tests/host/data/pixels] [--out bench/results/pixels.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench_codesign import per_call_us  # noqa: E402  (this folder is on the path when run as a script)
from host.datapath import packing  # noqa: E402
from host.backends.driver import FinnZynqDriver  # noqa: E402
from host.backends.emulated_board import EmulatedBackend  # noqa: E402
from host.design.spec import load_spec  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("design", nargs="?", default=str(REPO / "tests" / "host" / "data" / "pixels"))
    parser.add_argument("--out", default=str(REPO / "bench" / "results" / "pixels.json"))
    args = parser.parse_args()
    from finn.util.data_packing import finnpy_to_packed_bytearray
    from qonnx.core.datatype import DataType

    from host.loop.envs import make_env

    spec = load_spec(args.design)
    frames = np.load(Path(args.design) / "states.npy")
    frame = frames[0]
    io = spec.data["input"]
    folded = tuple(io["folded_shape"])
    fast = FinnZynqDriver(spec, EmulatedBackend(spec), max_batch=8)
    general = FinnZynqDriver(spec, EmulatedBackend(spec), max_batch=8, fast=False)
    plan = fast.input_plan
    ours = packing.pack(spec.preprocess(frame[None]).reshape(folded), io["finn_datatype"])
    theirs = finnpy_to_packed_bytearray(spec.preprocess(frame[None]).reshape(folded), DataType[io["finn_datatype"]],
                                        reverse_inner=True, reverse_endian=True)
    plan.write(frame, fast.ibuf)
    assert np.array_equal(ours, theirs) and np.array_equal(fast.ibuf[:1], ours), "the three packings differ"

    times = {
        "frame_pack_fast_path_us": per_call_us(lambda: plan.write(frame, fast.ibuf)),
        "frame_pack_general_us": per_call_us(lambda: packing.pack(spec.preprocess(frame[None]).reshape(folded),
                                                                 io["finn_datatype"], out=general.ibuf[:1])),
        "frame_pack_finn_us": per_call_us(lambda: finnpy_to_packed_bytearray(
            spec.preprocess(frame[None]).reshape(folded), DataType[io["finn_datatype"]], reverse_inner=True,
            reverse_endian=True), number=200),
        "batch8_pack_fast_path_us": per_call_us(lambda: plan.write(frames[:8], fast.ibuf)),
        "emulated_call_us": per_call_us(lambda: fast(frame), number=500),
    }
    env = make_env(spec.env_id)
    env.reset(seed=0)
    space = env.action_space
    space.seed(0)
    actions = [space.sample() for _ in range(4000)]

    def step_all() -> None:
        for action in actions:
            _, _, terminated, truncated, _ = env.step(action)
            if terminated or truncated:
                env.reset()

    t0 = time.perf_counter()
    step_all()
    times["minatar_env_step_us"] = (time.perf_counter() - t0) / len(actions) * 1e6
    record = {
        "design": spec.data["design"], "env_id": spec.env_id, "input_datatype": io["finn_datatype"],
        "frame_shape": list(spec.obs_shape), "packed_bytes_per_frame": int(ours.size),
        "float32_bytes_per_frame": 4 * spec.obs_dim, **{k: round(v, 3) for k, v in times.items()},
        "finn_over_fast_path": round(times["frame_pack_finn_us"] / times["frame_pack_fast_path_us"], 1),
        "general_over_fast_path": round(times["frame_pack_general_us"] / times["frame_pack_fast_path_us"], 1),
        "machine": f"{platform.machine()}, Python {platform.python_version()}, numpy {np.__version__}",
        "what": "best of 5 mean times; the emulated call runs the fabric in numpy, so it is not the board's latency",
        "command": "make bench (python bench/bench_pixels.py)",
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"binary frame {record['frame_shape']} -> {record['packed_bytes_per_frame']} bytes (float32: "
          f"{record['float32_bytes_per_frame']}): fast path {times['frame_pack_fast_path_us']:.2f} µs, general "
          f"{times['frame_pack_general_us']:.2f} µs, FINN's packing {times['frame_pack_finn_us']:.2f} µs "
          f"({record['finn_over_fast_path']}× the fast path); emulated call {times['emulated_call_us']:.1f} µs; "
          f"MinAtar step {times['minatar_env_step_us']:.1f} µs\n  written: {out}")


if __name__ == "__main__":
    main()
