"""The co-design defaults against the former ones, measured in the same run.

1. One observation into the input buffer on the integer-input path: the host's input
   quantizer (``host.datapath.quantizer``) and ``host.datapath.packing.pack``, against the same quantizer
   with FINN's ``finnpy_to_packed_bytearray`` (the packing FINN's own driver uses), and the
   former float path (float32 observation packed as FLOAT32, 4× the bytes).
2. The demo design as built now (integer input, smallest folding within 2 µs) against the
   former default (float input, the fastest folding that fits comfortably): deployed bits and
   FINN's estimates (est.), the latter rebuilt here from the same QONNX in a copy folder.

    python bench/bench_codesign.py bitstreams/demo-CartPole-v1 [--out bench/results/codesign.json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from host.datapath import packing  # noqa: E402
from host.design.spec import load_spec  # noqa: E402


def per_call_us(call, repeats: int = 5, number: int = 2000) -> float:
    """Best of ``repeats`` mean times of ``number`` calls, in µs."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(number):
            call()
        best = min(best, (time.perf_counter() - t0) / number)
    return best * 1e6


def packing_times(spec, states: np.ndarray) -> dict:
    """Quantize+pack of one observation: host packing vs FINN's, and the former float path."""
    from finn.util.data_packing import finnpy_to_packed_bytearray
    from qonnx.core.datatype import DataType

    io = spec.data["input"]
    dtype, folded = io["finn_datatype"], tuple(io["folded_shape"])
    obs = states[:1]
    ours = packing.pack(spec.preprocess(obs).reshape(folded), dtype)
    theirs = finnpy_to_packed_bytearray(spec.preprocess(obs).reshape(folded), DataType[dtype], reverse_inner=True,
                                        reverse_endian=True)
    assert np.array_equal(ours, theirs), "host packing and FINN's differ"
    host = per_call_us(lambda: packing.pack(spec.preprocess(obs).reshape(folded), dtype))
    finn = per_call_us(lambda: finnpy_to_packed_bytearray(spec.preprocess(obs).reshape(folded), DataType[dtype],
                                                          reverse_inner=True, reverse_endian=True), number=200)
    as_float = per_call_us(lambda: packing.pack(obs.astype(np.float32), "FLOAT32"))
    return {"input_datatype": dtype, "bytes_per_frame": int(ours.size), "float_bytes_per_frame": 4 * spec.obs_dim,
            "quantize_pack_host_us": host, "quantize_pack_finn_us": finn, "finn_over_host": finn / host,
            "float_pack_host_us": as_float}


def former_default(design: Path) -> dict:
    """The demo design rebuilt with the former defaults (float input, fastest folding) in a copy folder."""
    from hw_build.compile import BuildChoice, estimate_design
    from hw_build.design import designs_root

    name = f"{design.name}-former-default"
    copy = designs_root() / name
    shutil.rmtree(copy, ignore_errors=True)
    copy.mkdir(parents=True)
    for file in ("policy.qonnx.onnx", "export.json"):
        shutil.copy(design / file, copy / file)
    est = estimate_design(name, choice=BuildChoice(input_mode="float", objective="fastest"), quiet=True)
    deployed = json.loads((copy / "accel.json").read_text())["deployed"]["total_bits"]
    shutil.rmtree(copy, ignore_errors=True)
    return {"deployed_bits": deployed, "est_resources": est.resources, "est_latency_us": est.latency_ns / 1000}


def main(argv: list[str] | None = None) -> int:
    """Measure and print both comparisons; write JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("design", type=Path)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "codesign.json")
    args = parser.parse_args(argv)
    spec = load_spec(args.design)
    states = np.load(REPO / "tests" / "host" / "data" / "discrete" / "states.npy") if spec.obs_dim == 4 else \
        np.zeros((1, spec.obs_dim), dtype=np.float32)
    pack = packing_times(spec, states)
    estimate = json.loads((args.design / "estimate.json").read_text())
    now = {"deployed_bits": spec.data["deployed"]["total_bits"], "est_resources": estimate["resources"],
           "est_latency_us": estimate["estimated_latency_ns"] / 1000}
    former = former_default(args.design)
    report = {"design": args.design.name, "packing": pack, "design_now": now, "design_former_default": former}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"quantize+pack one observation ({pack['input_datatype']}, {pack['bytes_per_frame']} bytes; float input was "
          f"{pack['float_bytes_per_frame']}): host {pack['quantize_pack_host_us']:.1f} µs, FINN's packing "
          f"{pack['quantize_pack_finn_us']:.1f} µs ({pack['finn_over_host']:.0f}x); float32 pack alone "
          f"{pack['float_pack_host_us']:.1f} µs")
    for label, d in (("now (integer input, smallest within 2 µs)", now),
                     ("former default (float input, fastest that fits)", former)):
        r = d["est_resources"]
        print(f"{args.design.name} {label}: {d['deployed_bits']:,} deployed bits; est. {r['LUT']:,.0f} LUT, "
              f"{r['BRAM_18K']:,.0f} BRAM_18K, {r['DSP']:,.0f} DSP, {d['est_latency_us']:.2f} µs")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
