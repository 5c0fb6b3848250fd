"""The Verilator harness's own parts: the one change FINN's RTL needs, and a missing simulator."""

from __future__ import annotations

import pytest

from hw_build.rtlsim import ADD_MULTI_BLOCK, patch_add_multi, rtllib
from training.errors import FlowError


def test_add_multi_patch_applies_to_finns_file_and_moves_the_function_to_module_level():
    original = (rtllib() / "mvu" / "add_multi.sv").read_text()  # fails the day FINN's file changes
    patched = patch_add_multi(original)
    assert ADD_MULTI_BLOCK not in patched
    function_at = patched.index("function leaf_load_t init_leaf_loads();")
    assert function_at < patched.index("begin : genTree") < patched.index("localparam leaf_load_t   LEAF_LOAD")
    # Nothing else changes: the same lines, one block moved.
    assert sorted(line.strip() for line in patched.splitlines()) == sorted(line.strip() for line in original.splitlines())


def test_a_changed_add_multi_is_refused_in_one_sentence():
    with pytest.raises(FlowError, match="is not the file hw_build.rtlsim.patch_add_multi knows"):
        patch_add_multi("module add_multi; endmodule\n")


def test_missing_verilator_is_one_sentence(monkeypatch):
    import builtins

    from hw_build import rtlsim

    real_import = builtins.__import__

    def no_verilator(name, *args, **kwargs):
        if name == "verilator":
            raise ImportError("no verilator")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_verilator)
    with pytest.raises(FlowError, match="Verilator is not installed: run make install"):
        rtlsim.verilator()


def test_mvu_output_queue_patch_sizes_the_queue_for_the_cores_real_depth_in_finns_file():
    from hw_build.rtlsim import MVU_DEPTH_LINE, MVU_QUEUE_LINE, patch_mvu_output_queue

    original = (rtllib() / "mvu" / "mvu_vvu_axi.sv").read_text()  # fails the day FINN's file changes
    patched = patch_mvu_output_queue(original)
    changed = [(a, b) for a, b in zip(original.splitlines(), patched.splitlines()) if a != b]
    assert len(original.splitlines()) == len(patched.splitlines()) and len(changed) == 2
    assert MVU_DEPTH_LINE in changed[0][0] and "3 + $clog2(SIMD) + (SIMD == 1) + 1;" in changed[0][1]
    assert MVU_QUEUE_LINE in changed[1][0] and "MAX_IN_FLIGHT = CORE_PIPELINE_DEPTH + 1;" in changed[1][1]
    # the depth taken is mvu.sv's own
    assert "PIPELINE_DEPTH = 3 + $clog2(SIMD) + (SIMD == 1) + 1;" in (rtllib() / "mvu" / "mvu.sv").read_text()
    with pytest.raises(FlowError, match="check whether its output queue still overflows"):
        patch_mvu_output_queue("module mvu_vvu_axi; endmodule\n")


def test_a_failed_simulation_carries_the_simulators_own_words_from_stdout_and_stderr():
    import subprocess

    from hw_build.rtlsim import simulator_message

    proc = subprocess.CompletedProcess([], -6, stdout="[0] %Error: mvu_vvu_axi.sv:376: Assertion failed in TOP.x: "
                                       "Overflowing output queue.\n%Error: mvu_vvu_axi.sv:376: Verilog $stop\n",
                                       stderr="Aborting...\n")
    said = simulator_message(proc)
    assert "Overflowing output queue" in said and "$stop" in said and said.endswith("(signal 6)")
    assert "\n" not in said
    quiet = simulator_message(subprocess.CompletedProcess([], 1, stdout="", stderr="only 3 of 9 outputs after 99 cycles\n"))
    assert quiet == "only 3 of 9 outputs after 99 cycles (exit status 1)"


@pytest.mark.slow
def test_finns_mvu_output_queue_overflow_reproduces_and_the_patch_fixes_it(tmp_path):
    """hw_build/upstream's reproduction (about 2 min: five Verilator builds): FINN's mvu_vvu_axi as
    shipped stops on its assertion after a 7-cycle TREADY stall, gives wrong words without the
    assertion, and passes with the one-entry patch the simulations use."""
    from hw_build import mvu_queue_repro as repro

    results = {}
    for variant in repro.VARIANTS:
        binary = repro.build(variant, tmp_path / variant)
        results[variant] = [repro.run(binary, 20, stall) for stall in (6, 7)]
    assert results["finn"][0][0] and not results["finn"][1][0] and "Overflowing output queue" in results["finn"][1][1]
    assert not results["finn-no-assert"][1][0] and " wrong" in results["finn-no-assert"][1][1]
    assert all(ok for ok, _ in results["patched"]) and ", 0 wrong" in results["patched"][1][1]
    # A SIMD that is not a power of two: FINN's CORE_PIPELINE_DEPTH is one short of mvu.sv's own
    # depth too; one extra entry alone would not do, the patch covers it.
    finn3, patched3 = (repro.build(v, tmp_path / f"{v}-3", simd=3) for v in ("finn", "patched"))
    assert not all(repro.run(finn3, 20, stall, simd=3)[0] for stall in range(1, 13))
    assert all(repro.run(patched3, ready, stall, simd=3)[0] for ready in (1, 2, 20) for stall in range(1, 13))


#: A one-word AXI-stream buffer whose TREADY also drops on an LFSR, and which checks the rule on
#: its input: a word offered and not taken must stay offered, unchanged, until it is taken.
AXIS_RULE_CHECK = """
module axis_rule_check (input ap_clk, input ap_rst_n,
  input [31:0] in0_V_TDATA, input in0_V_TVALID, output in0_V_TREADY,
  output [31:0] out0_V_TDATA, output out0_V_TVALID, input out0_V_TREADY);
  logic [15:0] lfsr = 16'hACE1;
  logic full = 0, was_waiting = 0;
  logic [31:0] word = 0, waited = 0;
  assign in0_V_TREADY = !full && lfsr[0];
  assign out0_V_TVALID = full;
  assign out0_V_TDATA = word;
  always_ff @(posedge ap_clk) begin
    if (!ap_rst_n) begin full <= 0; was_waiting <= 0; end
    else begin
      lfsr <= {lfsr[14:0], lfsr[15] ^ lfsr[13] ^ lfsr[12] ^ lfsr[10]};
      if (was_waiting && !(in0_V_TVALID && in0_V_TDATA == waited)) begin
        $error("AXI-stream rule broken: an offered word was withdrawn or changed before its handshake");
        $stop;
      end
      was_waiting <= in0_V_TVALID && !in0_V_TREADY;
      waited <= in0_V_TDATA;
      if (out0_V_TVALID && out0_V_TREADY) full <= 0;
      if (in0_V_TVALID && in0_V_TREADY) begin full <= 1; word <= in0_V_TDATA; end
    end
  end
endmodule
"""


@pytest.mark.slow
def test_stall_harness_keeps_the_axi_stream_rules_and_a_broken_harness_is_caught(tmp_path, monkeypatch):
    """(Two Verilator builds: 1-2 min on a busy 2-core machine.) The stall harness offers words after random gaps and holds each until it is taken (checked
    by a Verilog monitor under 40 % stalls, every word through in order); the harness as it was
    (TVALID redrawn every cycle) breaks the rule, and the failure carries the simulator's words."""
    from hw_build import rtlsim

    monkeypatch.setattr(rtlsim, "BUILD_CACHE", tmp_path / "cache")
    src = tmp_path / "axis_rule_check.sv"
    src.write_text(AXIS_RULE_CHECK)
    layer = rtlsim.BuiltLayer("check", "check", rtlsim._verilate("check", "axis_rule_check", [src], [], "", tmp_path / "ok"))
    words = [(i * 2654435761) & 0xFFFFFFFF for i in range(500)]
    out, cycles = rtlsim.run_layer(layer, words, len(words), seed=3, stall_percent=40, work=tmp_path)
    assert out == words and cycles > len(words)

    old = rtlsim.HARNESS_CPP.replace("if (!offered) offered = next < in.size() && pct(rng) >= stall;",
                                     "offered = next < in.size() && pct(rng) >= stall;")
    assert old != rtlsim.HARNESS_CPP
    monkeypatch.setattr(rtlsim, "HARNESS_CPP", old)
    broken = rtlsim.BuiltLayer("check", "check", rtlsim._verilate("check", "axis_rule_check", [src], [], "",
                                                                  tmp_path / "broken"))
    with pytest.raises(FlowError, match="simulation of check failed: .*AXI-stream rule broken"):
        rtlsim.run_layer(broken, words, len(words), seed=3, stall_percent=40, work=tmp_path)
