"""Ladder level 4b's parts that need no FINN build: the generated top level, the FIFO edit, the
partition split and the fault injection (the stitched simulation itself: tests/test_hw_build.py)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from hw_build.rtlsim import rtllib
from hw_build.stitch import FIFO_STRUCT, Instance, fault_copy, patch_fifo, split_partition, top_level
from training.errors import FlowError


@pytest.fixture
def designs(tmp_path, monkeypatch):
    """A bitstreams/ folder of the test's own."""
    monkeypatch.setenv("QPD_BITSTREAMS", str(tmp_path / "bitstreams"))
    return tmp_path / "bitstreams"


def _chain():
    return [Instance("StreamingFIFO_rtl_0", "StreamingFIFO_rtl", "StreamingFIFO_rtl_0", 8, 8),
            Instance("MVAU_rtl_0", "MVAU_rtl", "MVAU_rtl_0_sim_top", 8, 16),
            Instance("StreamingDataWidthConverter_rtl_0", "StreamingDataWidthConverter_rtl",
                     "StreamingDataWidthConverter_rtl_0", 16, 32),
            Instance("Thresholding_rtl_0", "Thresholding_rtl", "Thresholding_rtl_0", 32, 8,
                     ' #(.THRESHOLDS_PATH("/x/Thresholding_rtl_0_"))')]


def test_top_level_wires_every_node_stream_to_stream_in_graph_order():
    sv = top_level(_chain())
    assert "input [8-1:0] in0_V_TDATA" in sv and "output [8-1:0] out0_V_TDATA" in sv
    # one wire bundle between each pair, sized by the producer's padded width
    assert "wire [8-1:0] s1_TDATA" in sv and "wire [16-1:0] s2_TDATA" in sv and "wire [32-1:0] s3_TDATA" in sv
    lines = [line for line in sv.splitlines() if ".ap_clk(ap_clk)" in line]
    assert [line.split()[0] for line in lines] == ["StreamingFIFO_rtl_0", "MVAU_rtl_0_sim_top",
                                                   "StreamingDataWidthConverter_rtl_0", "Thresholding_rtl_0"]
    assert ".in0_V_TDATA(in0_V_TDATA)" in lines[0] and ".out0_V_TDATA(s1_TDATA)" in lines[0]
    assert ".in0_V_TREADY(s3_TREADY)" in lines[3] and ".out0_V_TVALID(out0_V_TVALID)" in lines[3]
    assert ".count(), .maxcount()" in lines[0]  # a FIFO's fill-level ports are left open
    assert ".s_axilite_AWVALID(1'b0)" in lines[3] and "THRESHOLDS_PATH" in lines[3]  # thresholds: AXI-lite tied off
    assert sv.count("module ") == 1 and sv.rstrip().endswith("endmodule")


def test_top_level_refuses_neighbours_whose_widths_differ_and_an_empty_partition():
    chain = _chain()
    del chain[2]  # no converter between a 16-bit producer and a 32-bit consumer
    with pytest.raises(FlowError, match="MVAU_rtl_0 gives 16-bit words and Thresholding_rtl_0 takes 32-bit words"):
        top_level(chain)
    with pytest.raises(FlowError, match="nothing to stitch"):
        top_level([])


def test_fifo_patch_packs_finns_struct_and_changes_nothing_else():
    original = (rtllib() / "fifo" / "hdl" / "fifo.sv").read_text()  # fails the day FINN's file changes
    patched = patch_fifo(original)
    changed = [(a, b) for a, b in zip(original.splitlines(), patched.splitlines()) if a != b]
    assert len(changed) == 1 and "typedef struct {" in changed[0][0] and "typedef struct packed {" in changed[0][1]
    assert FIFO_STRUCT not in patched
    with pytest.raises(FlowError, match="is not the file hw_build.stitch.patch_fifo knows"):
        patch_fifo("module fifo; endmodule\n")


def _node(name, op_type):
    return SimpleNamespace(name=name, op_type=op_type)


def test_partition_is_cut_at_the_first_layer_without_rtl_and_a_design_without_rtl_is_refused():
    nodes = [_node("StreamingFIFO_rtl_0", "StreamingFIFO_rtl"), _node("MVAU_rtl_0", "MVAU_rtl"),
             _node("StreamingFIFO_rtl_1", "StreamingFIFO_rtl"), _node("LabelSelect_hls_0", "LabelSelect_hls"),
             _node("StreamingFIFO_rtl_2", "StreamingFIFO_rtl")]
    part = split_partition(SimpleNamespace(graph=SimpleNamespace(node=nodes)))
    assert [n.name for n in part.nodes] == ["StreamingFIFO_rtl_0", "MVAU_rtl_0", "StreamingFIFO_rtl_1"]
    assert [n.name for n in part.rest] == ["LabelSelect_hls_0", "StreamingFIFO_rtl_2"] and not part.whole
    assert [n.name for n in part.layers()] == ["MVAU_rtl_0"]
    whole = split_partition(SimpleNamespace(graph=SimpleNamespace(node=nodes[:3])))
    assert whole.whole
    hls = [_node("StreamingFIFO_rtl_0", "StreamingFIFO_rtl"), _node("MVAU_hls_0", "MVAU_hls")]
    with pytest.raises(FlowError, match=r"MVAU_hls_0 \(MVAU_hls\) comes first without RTL"):
        split_partition(SimpleNamespace(graph=SimpleNamespace(node=hls)))


def test_fault_copy_flips_one_bit_of_one_word_in_a_copy(tmp_path):
    src = tmp_path / "hw_sources"
    (src / "MVAU_rtl_0").mkdir(parents=True)
    (src / "Thresholding_rtl_0").mkdir()
    (src / "MVAU_rtl_0" / "memblock.dat").write_text("0a3\n0ff\n")
    (src / "Thresholding_rtl_0" / "Thresholding_rtl_0_threshs_0_0.dat").write_text("10\n20\n")
    said = fault_copy(src, "MVAU_rtl_0", tmp_path / "faulty")
    assert (tmp_path / "faulty" / "MVAU_rtl_0" / "memblock.dat").read_text() == "023\n0ff\n"
    assert (src / "MVAU_rtl_0" / "memblock.dat").read_text() == "0a3\n0ff\n"  # the design is untouched
    assert "0xa3 -> 0x23" in said
    fault_copy(src, "Thresholding_rtl_0", tmp_path / "faulty")
    assert (tmp_path / "faulty" / "Thresholding_rtl_0" / "Thresholding_rtl_0_threshs_0_0.dat").read_text() == "00\n20\n"
    with pytest.raises(FlowError, match="has no weight or threshold memory file"):
        fault_copy(src, "Nothing_0", tmp_path / "faulty")


@pytest.mark.slow
def test_stitched_partition_agrees_under_stalls_and_one_flipped_word_is_caught(designs, narrow_qpd_student, tmp_path):
    """Level 4b end to end (a few minutes: Verilator builds): a NARROW=1 student built IMPL=rtl,
    stitched with FINN's FIFOs and converters, agrees with FINN's Python execution and the emulator
    on 1,000 real states under 30 % stalls, with cycles beside FINN's estimate; one flipped weight
    word, or one flipped threshold word, is caught."""
    import json

    from host.design.spec import load_spec
    from hw_build.compile import BuildChoice, estimate_design
    from hw_build.export import episode_states, export_design
    from hw_build.stitch import stitched_rtlsim
    from training.qpd.distill import STUDENT_FILE, StudentPolicy, load_student

    export_design(narrow_qpd_student[0], "tiny-stitch", n_states=200)
    estimate_design("tiny-stitch", choice=BuildChoice(impl="rtl", target_fps=1_000_000), kind="codegen", quiet=True)
    folder = designs / "tiny-stitch"
    student, _ = load_student(narrow_qpd_student[0] / STUDENT_FILE)
    fed = load_spec(folder).preprocess(episode_states("CartPole-v1", StudentPolicy(student), 1000))
    record = stitched_rtlsim(folder, fed, tmp_path / "ok", stall_percent=30)
    assert record["passed"] and record["agreement_python"] == 1.0 and record["agreement_emulator"] == 1.0
    assert record["states"] == 1000 and record["basis"] == "simulated (Verilator)"
    assert not record["whole_partition"] and record["not_simulated"][0]["op"] == "LabelSelect_hls"
    assert record["fifos"] and any(name.startswith("StreamingDataWidthConverter") for name in record["simulated"])
    assert record["sim_latency_cycles"] > record["sim_cycles_per_frame"] >= record["finn_estimated_cycles_per_frame"]
    estimate = json.loads((folder / "estimate.json").read_text())
    assert record["finn_estimated_latency_us"] == round(estimate["estimated_latency_ns"] / 1000, 4)
    layers = [name for name in record["simulated"] if not name.startswith("Stream")]
    for layer in (layers[0], next(name for name in layers if name.startswith("Thresholding"))):
        fault_copy(folder / "hw_sources", layer, tmp_path / "faulty")
        bad = stitched_rtlsim(folder, fed, tmp_path / "bad", stall_percent=30, sources=tmp_path / "faulty")
        assert not bad["passed"] and bad["agreement_python"] < 1.0, layer


def test_simulated_latency_reads_a_passed_stitched_record_only(tmp_path):
    import json

    from hw_build.stitch import simulated_latency

    assert simulated_latency(tmp_path) is None
    record = {"stitched": {"passed": True, "sim_latency_us": 1.47, "sim_cycles_per_frame": 32, "whole_partition": False,
                           "states": 10000, "basis": "simulated (Verilator)", "finn_estimated_latency_us": 1.62,
                           "latency_budget_us": 2.0}}
    (tmp_path / "rtlsim.json").write_text(json.dumps(record))
    got = simulated_latency(tmp_path)
    assert got["latency_us"] == 1.47 and got["finn_estimated_latency_us"] == 1.62 and not got["whole_partition"]
    record["stitched"]["passed"] = False
    (tmp_path / "rtlsim.json").write_text(json.dumps(record))
    assert simulated_latency(tmp_path) is None


@pytest.mark.slow
def test_a_continuous_head_is_stitched_whole_and_agrees_with_the_emulator_exactly(designs, tmp_path):
    """An all-RTL partition (a narrow HalfCheetah student, continuous head: no LabelSelect) is
    stitched whole: its integers equal FINN's Python execution and the emulator's on real states
    under stalls; a flipped weight of the first layer is caught (a few minutes)."""
    from pathlib import Path

    from host.design.spec import load_spec
    from hw_build.compile import BuildChoice, estimate_design
    from hw_build.export import episode_states, export_design
    from hw_build.stitch import stitched_rtlsim
    from tests.conftest import FAST_DISTILL
    from training.qpd.config import load_qpd_config
    from training.qpd.distill import STUDENT_FILE, StudentPolicy, distill, load_student

    teacher = Path(__file__).resolve().parents[1] / "training" / "teachers" / "HalfCheetah-v5" / "ppo-teacher-s0"
    cfg = load_qpd_config(env_id="HalfCheetah-v5", hidden=[16, 16], weight_bits=4, schedule=[4], updates=400,
                          narrow_weights=True, eval_episodes=1, **{**FAST_DISTILL, "stage_eval_episodes": 1})
    run = tmp_path / "runs" / "cheetah"
    distill(cfg, teacher, run, quiet=True)
    export_design(run, "cheetah-rtl", n_states=200)
    estimate_design("cheetah-rtl", choice=BuildChoice(impl="rtl"), kind="codegen", quiet=True)
    folder = designs / "cheetah-rtl"
    student, _ = load_student(run / STUDENT_FILE)
    fed = load_spec(folder).preprocess(episode_states("HalfCheetah-v5", StudentPolicy(student), 500))
    record = stitched_rtlsim(folder, fed, tmp_path / "ok", stall_percent=30)
    assert record["whole_partition"] and not record["not_simulated"]
    assert record["agreement_python"] == 1.0 and record["agreement_emulator"] == 1.0 and record["passed"]
    assert record["emulator_comparison"] == "the accelerator's outputs, exactly"
    first = [name for name in record["simulated"] if name.startswith("MVAU_rtl")][0]  # fed by the observation codes
    fault_copy(folder / "hw_sources", first, tmp_path / "faulty")
    bad = stitched_rtlsim(folder, fed, tmp_path / "bad", stall_percent=30, sources=tmp_path / "faulty")
    assert not bad["passed"] and bad["agreement_python"] < 1.0 and bad["agreement_emulator"] < 1.0
