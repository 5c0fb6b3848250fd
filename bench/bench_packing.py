"""Time host.datapath.packing against FINN's packing for the transfers of a control loop.

Each step of a policy's control loop packs one observation, e.g. (1, 4) values, and unpacks
one action, e.g. (1, 1). This times both packers on those shapes, in the same run, after
checking that they produce the same bytes and values, and prints a markdown table and writes
JSON (``--out``). Without finn installed (on the board) only the host column is measured.

    python bench/bench_packing.py [--out bench/results/packing.json]
"""

from __future__ import annotations

import argparse
import datetime
import inspect
import json
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from host.datapath.packing import pack, packed_shape, parse_datatype, unpack  # noqa: E402

FORMAT_VERSION = 1


@dataclass(frozen=True)
class Case:
    """One timed call: pack ``shape`` values held in ``container``, or unpack a ``shape`` output."""

    operation: str  # "pack" or "unpack"
    datatype: str
    shape: tuple[int, ...]
    container: str  # numpy dtype of the values handed to pack ("uint8" bytes for unpack)
    note: str


CASES = [
    Case("pack", "INT8", (1, 4), "float32", "observation, quantized to INT8 in a float array"),
    Case("pack", "INT8", (1, 4), "int8", "observation, quantized to INT8 in an int8 array"),
    Case("pack", "FLOAT32", (1, 4), "float32", "float observation (float input layer)"),
    Case("pack", "FIXED<16,8>", (1, 4), "float32", "observation in fixed point"),
    Case("pack", "UINT8", (1, 8), "float32", "8-wide observation, UINT8"),
    Case("pack", "INT4", (1, 4), "float32", "observation at 4 bits"),
    Case("pack", "INT8", (16, 4), "float32", "batch of 16 observations"),
    Case("unpack", "UINT2", (1, 1), "uint8", "action index (LabelSelect output)"),
    Case("unpack", "INT32", (1, 1), "uint8", "one accumulator (logit or continuous action)"),
    Case("unpack", "INT32", (1, 2), "uint8", "two accumulators"),
    Case("unpack", "UINT2", (16, 1), "uint8", "batch of 16 action indices"),
]


def sample_values(case: Case, rng: np.random.Generator) -> np.ndarray:
    """Representable values of the case's datatype, in the case's container."""
    dt = parse_datatype(case.datatype)
    if dt.kind == "float":
        return rng.normal(size=case.shape).astype(case.container)
    codes = rng.integers(dt.min_code, dt.max_code + 1, size=case.shape)
    return (codes * dt.scale).astype(case.container)


def seconds_per_call(call: Callable[[], object], repeats: int, min_repeat_s: float) -> float:
    """Best of ``repeats`` timings (time.perf_counter), each over enough calls to last ``min_repeat_s``."""
    calls = 1
    while True:  # calibrate
        start = time.perf_counter()
        for _ in range(calls):
            call()
        if time.perf_counter() - start >= min_repeat_s:
            break
        calls *= 2
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            call()
        best = min(best, time.perf_counter() - start)
    return best / calls


def finn_calls(case: Case, values: np.ndarray, packed: np.ndarray) -> dict[str, Callable[[], object]]:
    """FINN's driver calls for the case, one per fast_mode where FINN still has that flag."""
    try:
        from finn.util.data_packing import finnpy_to_packed_bytearray, packed_bytearray_to_finnpy
        from qonnx.core.datatype import DataType
    except ImportError:
        return {}
    finn_dt = DataType[case.datatype]
    function = finnpy_to_packed_bytearray if case.operation == "pack" else packed_bytearray_to_finnpy
    modes = [{}]
    if "fast_mode" in inspect.signature(function).parameters:
        modes = [{"fast_mode": True}, {"fast_mode": False}]
    calls = {}
    for mode in modes:
        label = ", ".join(f"{k}={v}" for k, v in mode.items()) or "finn"
        if case.operation == "pack":
            calls[label] = lambda mode=mode: finnpy_to_packed_bytearray(
                values, finn_dt, reverse_inner=True, reverse_endian=True, **mode)
        else:
            calls[label] = lambda mode=mode: packed_bytearray_to_finnpy(
                packed, finn_dt, case.shape, reverse_inner=True, reverse_endian=True, **mode)
    return calls


def measure(case: Case, repeats: int, min_repeat_s: float, rng: np.random.Generator) -> dict:
    values = sample_values(case, rng)
    packed = np.ascontiguousarray(pack(values, case.datatype))  # the DMA buffer's bytes
    host_calls = {}
    if case.operation == "pack":
        host_calls["host"] = lambda: pack(values, case.datatype)
        host_calls["host, check=False"] = lambda: pack(values, case.datatype, check=False)
    else:
        host_calls["host"] = lambda: unpack(packed, case.datatype, case.shape)
    finn = finn_calls(case, values, packed)
    for label, call in finn.items():  # time only calls that agree with the host
        expected = pack(values, case.datatype) if case.operation == "pack" else values.astype(np.float32)
        if not np.array_equal(np.asarray(call()), expected):
            raise AssertionError(f"{label} and host.datapath.packing disagree on {case}")
    host_us = {k: 1e6 * seconds_per_call(c, repeats, min_repeat_s) for k, c in host_calls.items()}
    finn_us = {k: 1e6 * seconds_per_call(c, repeats, min_repeat_s) for k, c in finn.items()}
    return {
        "operation": case.operation,
        "datatype": case.datatype,
        "shape": list(case.shape),
        "packed_shape": list(packed_shape(case.shape, case.datatype)),
        "container": case.container,
        "note": case.note,
        "host_us": host_us,
        "finn_us": finn_us,
        "finn_over_host": {k: v / host_us["host"] for k, v in finn_us.items()},
    }


def markdown_table(results: list[dict]) -> str:
    finn_labels = sorted({label for r in results for label in r["finn_us"]})
    header = ["operation", "datatype", "shape", "values", "host µs", "host µs, check=False"]
    header += [f"{label} µs" for label in finn_labels] + [f"{label} / host" for label in finn_labels]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in results:
        unchecked = r["host_us"].get("host, check=False")
        cells = [r["operation"], r["datatype"], "x".join(map(str, r["shape"])), r["container"],
                 f"{r['host_us']['host']:.2f}", "" if unchecked is None else f"{unchecked:.2f}"]
        cells += [f"{r['finn_us'][k]:.2f}" if k in r["finn_us"] else "n/a" for k in finn_labels]
        cells += [f"{r['finn_over_host'][k]:.1f}x" if k in r["finn_us"] else "n/a" for k in finn_labels]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def package_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "packing.json",
                        help="where to write the JSON results (default: bench/results/packing.json)")
    parser.add_argument("--repeats", type=int, default=7, help="timings per call; the minimum is kept")
    parser.add_argument("--min-repeat-s", type=float, default=0.02,
                        help="each timing runs enough calls to last this long (seconds)")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    rng = np.random.default_rng(0)
    results = [measure(case, args.repeats, args.min_repeat_s, rng) for case in CASES]
    report = {
        "format_version": FORMAT_VERSION,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "processor": platform.machine(),
                    "python": platform.python_version()},
        "versions": {"numpy": np.__version__, "finn-plus": package_version("finn-plus"),
                     "qonnx": package_version("qonnx")},
        "method": f"per-call time = min over {args.repeats} timings (time.perf_counter) of a loop "
                  f"lasting >= {args.min_repeat_s} s, divided by its calls",
        "results": results,
        "wall_s": round(time.perf_counter() - started, 1),
    }
    table = markdown_table(results)
    print(table)
    print(f"\n{report['machine']['platform']}, Python {report['machine']['python']}, numpy {np.__version__}, "
          f"finn-plus {report['versions']['finn-plus'] or 'not installed'}; {report['wall_s']} s")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
