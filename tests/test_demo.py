"""The whole flow as `make demo` runs it (slow: about 4 minutes here; `make test-slow`)."""

from __future__ import annotations

import json

import pytest

from tests.conftest import run_cli


@pytest.mark.slow
def test_demo_runs_end_to_end_and_the_hardware_matches_the_student(tmp_path):
    env = {"QPD_RUNS": str(tmp_path / "runs"), "QPD_BITSTREAMS": str(tmp_path / "bitstreams")}
    proc = run_cli("flow", "demo", env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "== demo done" in proc.stdout
    assert "IMPL=rtl variant of this student (demo-CartPole-v1-same-student-rtl): est." in proc.stdout  # one setting away
    rep = json.loads((tmp_path / "bitstreams" / "demo-CartPole-v1" / "compare-emulated" / "compare.json").read_text())
    brevitas = rep["software"]["Brevitas student"]
    assert rep["episodes"] == 100 and brevitas["step_agreement"] == 1.0 and brevitas["identical_returns"] == 100
    assert rep["hardware"]["mean_return"] >= 475
    verify = json.loads((tmp_path / "bitstreams" / "demo-CartPole-v1" / "verify.json").read_text())
    assert verify["passed"] and verify["n_states"] >= 10_000


@pytest.mark.slow
def test_the_all_rtl_demo_is_simulated_whole_and_counted_by_yosys(tmp_path):
    """make demo IMPL=rtl: a narrow-range student, every layer RTL, ladder level 4b over the whole
    dataflow partition, Yosys's counts, and a last line with the simulated latency (about 5 minutes)."""
    env = {"QPD_RUNS": str(tmp_path / "runs"), "QPD_BITSTREAMS": str(tmp_path / "bitstreams")}
    proc = run_cli("flow", "demo", "--impl", "rtl", env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    last = proc.stdout.strip().splitlines()[-1]
    assert last.startswith("all-RTL design demo-CartPole-v1-rtl: one frame") and "simulated (Verilator), whole dataflow" in last
    assert "(Yosys, before place and route" in last
    design = tmp_path / "bitstreams" / "demo-CartPole-v1-rtl"
    verify = json.loads((design / "verify.json").read_text())
    (stitched,) = [lv for lv in verify["levels"] if lv["level"] == "4b"]
    assert verify["passed"] and verify["n_states"] >= 1000 and stitched["agreement"] == 1.0
    assert stitched["stitched"]["whole_partition"]
    assert json.loads((design / "synth.json").read_text())["best"]["DSP"] > 0
