"""A smoke test of make bench's loopback benchmark of the remote mode (bench/bench_remote.py), tiny counts."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

pytest.importorskip("zmq")

BENCH = Path(__file__).resolve().parents[2] / "bench" / "bench_remote.py"


def test_the_remote_benchmark_splits_server_work_from_the_network():
    spec = importlib.util.spec_from_file_location("bench_remote", BENCH)
    bench = importlib.util.module_from_spec(spec)
    sys.modules["bench_remote"] = bench  # its client processes find their function by the module's name
    spec.loader.exec_module(bench)
    record = bench.run_bench(calls=30, clients=(1, 2), warmup=5)
    for key, calls in (("1_clients", 30), ("2_clients", 60)):
        r = record["results"][key]
        assert r["call"]["calls"] == calls and r["network"]["calls"] == calls
        assert 0 < r["server_work"]["p50_us"] < r["call"]["p50_us"] and r["network"]["p50_us"] > 0
        assert r["driver_call"]["p50_us"] <= r["server_work"]["p50_us"]
    assert record["results"]["zmq_echo_floor"]["calls"] == 30
