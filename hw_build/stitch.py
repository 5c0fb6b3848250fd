"""Ladder level 4b: the whole dataflow partition, stitched as FINN would, in one Verilator model.

FINN stitches its layers only in Vivado's IP integrator. Here the same graph FINN would stitch
(``step_hw_codegen``'s layers after FINN's own ``InsertDWC`` and ``InsertFIFO``, as
``step_set_fifo_depths`` inserts them, specialised to RTL) becomes a generated SystemVerilog
top level (:func:`top_level`): every layer, FIFO and data-width converter from FINN's generated
sources and finn-rtllib, wired stream to stream in graph order. The harness of
:mod:`hw_build.rtlsim` drives it on real states with random stalls on the input and output
streams. The output must equal FINN's Python execution of the same layers and the host's
emulator. A stall-free run gives the cycles per frame back to back, and a single frame gives
its latency.

The FIFOs have the depth ``InsertFIFO`` gives them (2). FINN sizes them later in Vivado's
simulator, which is not here. Deeper FIFOs change the timing, not the values.

The simulation uses copies of FINN's sources, edited in the build folder (never in
site-packages). Each edit says why (:data:`STITCH_PATCHES`, and
:data:`hw_build.rtlsim.FINN_SOURCE_PATCHES`).

A design whose partition is not all RTL, e.g. one ending in ``LabelSelect_hls`` (an HLS layer),
is simulated up to that layer: its RTL prefix. The record says so (``whole_partition: false``,
with the layers not simulated and why), and the emulator's actions are compared with the
host's argmax of the prefix's outputs. The ties go to the lowest index, as in FINN's LabelSelect.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from training.errors import FlowError

#: The node types the generated top level instantiates.
LAYER_OPS = ("MVAU_rtl", "Thresholding_rtl", "ConvolutionInputGenerator_rtl")
GLUE_OPS = ("StreamingFIFO_rtl", "StreamingDataWidthConverter_rtl")
STITCHABLE = LAYER_OPS + GLUE_OPS

#: finn-rtllib's fifo.sv builds a struct with an assignment pattern inside a constant function.
#: Verilator 5.48 cannot evaluate it ("can't determine constant for FUNCREF 'INIT_ABITS'"). A
#: packed struct of the same two fields can be evaluated. The struct only sizes the memory
#: during elaboration, so the hardware is the same.
FIFO_STRUCT = "\ttypedef struct {\n\t\tint unsigned  lo;"
FIFO_STRUCT_PACKED = "\ttypedef struct packed {  // packed by qpd (hw_build/stitch.py): Verilator's constant functions\n\t\tint unsigned  lo;"

STITCH_PATCHES = {
    "finn-rtllib/fifo/hdl/fifo.sv": "Verilator 5.48 cannot evaluate the constant function INIT_ABITS on an unpacked "
                                    "struct; the struct is packed, the same elaboration-time values",
    "StreamingFIFO_rtl wrappers": "built without FINN_SIMULATION, so each FIFO is fifo.sv at its depth, not FINN's "
                                  "unbounded fifo_gauge (FINN's FIFO-sizing model)",
}
#: What the record says of the simulated figures (the standards' label).
BASIS = "simulated (Verilator)"


def patch_fifo(text: str) -> str:
    """finn-rtllib's ``fifo.sv`` with its geometry struct packed (:data:`FIFO_STRUCT`); refuses a
    file that no longer has it (FINN changed it: check whether Verilator still needs the edit)."""
    if text.count(FIFO_STRUCT) != 1:
        raise FlowError("finn-rtllib's fifo/hdl/fifo.sv is not the file hw_build.stitch.patch_fifo knows: check whether "
                        "Verilator still needs the edit, and update it")
    return text.replace(FIFO_STRUCT, FIFO_STRUCT_PACKED)


@dataclass
class Instance:
    """One node of the stitched partition as the top level instantiates it."""

    name: str
    op_type: str
    module: str  # the module instantiated: FINN's wrapper, or rtlsim's MVU glue around it and its weights
    in_width: int  # padded stream widths (bits)
    out_width: int
    params: str = ""  # a parameter override, e.g. a Thresholding_rtl's THRESHOLDS_PATH


#: Ports a Thresholding_rtl wrapper has beyond its streams (runtime-writable thresholds), tied off.
THRESHOLD_TIES = (".s_axilite_AWVALID(1'b0), .s_axilite_AWADDR('0), .s_axilite_WVALID(1'b0), .s_axilite_WDATA(32'b0), "
                  ".s_axilite_WSTRB(4'b0), .s_axilite_BREADY(1'b0), .s_axilite_ARVALID(1'b0), .s_axilite_ARADDR('0), "
                  ".s_axilite_RREADY(1'b0), .in1_V_TVALID(1'b0), .in1_V_TDATA('0), ")
#: A StreamingFIFO_rtl's fill-level ports (FINN's FIFO sizing reads them), left open.
FIFO_TIES = ".count(), .maxcount(), "


def top_level(instances: list[Instance], module: str = "stitched_top") -> str:
    """The SystemVerilog top level connecting ``instances`` stream to stream, in order: ``in0_V``
    of the first is the top's input, ``out0_V`` of the last its output. Refuses two neighbours whose
    stream widths differ: FINN would have put a data-width converter between them."""
    if not instances:
        raise FlowError("nothing to stitch: the partition has no layer")
    for a, b in zip(instances, instances[1:]):
        if a.out_width != b.in_width:
            raise FlowError(f"{a.name} gives {a.out_width}-bit words and {b.name} takes {b.in_width}-bit words: FINN "
                            "would insert a data-width converter between them (InsertDWC did not run on this graph)")
    wires, lines = [], []
    for i, inst in enumerate(instances):
        src = "in0_V" if i == 0 else f"s{i}"
        dst = "out0_V" if i == len(instances) - 1 else f"s{i + 1}"
        if i < len(instances) - 1:
            wires.append(f"  wire [{inst.out_width}-1:0] s{i + 1}_TDATA; wire s{i + 1}_TVALID, s{i + 1}_TREADY;")
        ties = THRESHOLD_TIES if inst.op_type == "Thresholding_rtl" else FIFO_TIES if inst.op_type == "StreamingFIFO_rtl" else ""
        lines.append(f"  {inst.module}{inst.params} n{i}_{inst.name} (.ap_clk(ap_clk), .ap_rst_n(ap_rst_n), {ties}"
                     f".in0_V_TDATA({src}_TDATA), .in0_V_TVALID({src}_TVALID), .in0_V_TREADY({src}_TREADY), "
                     f".out0_V_TDATA({dst}_TDATA), .out0_V_TVALID({dst}_TVALID), .out0_V_TREADY({dst}_TREADY));")
    return (f"// Generated by hw_build/stitch.py from FINN's graph after InsertDWC/InsertFIFO: "
            f"{' -> '.join(i.name for i in instances)}\n"
            f"module {module} (\n    input ap_clk, input ap_rst_n,\n"
            f"    input [{instances[0].in_width}-1:0] in0_V_TDATA, input in0_V_TVALID, output in0_V_TREADY,\n"
            f"    output [{instances[-1].out_width}-1:0] out0_V_TDATA, output out0_V_TVALID, input out0_V_TREADY);\n"
            + "\n".join(wires) + "\n" + "\n".join(lines) + "\nendmodule\n")


def stitched_graph(codegen_graph: Path, part: str):
    """``codegen_graph``'s layers with FINN's FIFOs and data-width converters inserted and
    specialised, as ``step_set_fifo_depths`` inserts them before sizing (a ModelWrapper)."""
    from finn.transformation.fpgadataflow.insert_dwc import InsertDWC
    from finn.transformation.fpgadataflow.insert_fifo import InsertFIFO
    from finn.transformation.fpgadataflow.specialize_layers import SpecializeLayers
    from qonnx.core.modelwrapper import ModelWrapper

    from hw_build.vivado_build import _tidy

    model = ModelWrapper(str(codegen_graph))
    for transform in (InsertDWC(), InsertFIFO(create_shallow_fifos=True), SpecializeLayers(part)):
        model = _tidy(model, transform)
    return model


def node_rtl_files(node, op, code_dir: Path, work: Path) -> list[Path]:
    """The HDL files of one generated RTL node, FINN's wrapper(s) and the finn-rtllib modules they
    use, as Verilator builds them. Where Verilator needs an edit, the edited copy is written to
    ``work``. A layer's ``code_dir`` is its folder of the design's ``hw_sources/``, a FIFO's or
    converter's the folder its HDL was generated into."""
    from hw_build.rtlsim import layer_sources

    if node.op_type in LAYER_OPS:
        return layer_sources(node.op_type, code_dir, work)
    if node.op_type not in GLUE_OPS:
        raise FlowError(f"{node.name} ({node.op_type}) has no RTL this simulation stitches")
    files = []
    for f in op.get_rtl_file_list(abspath=True):  # FINN's own list for the node
        f = Path(f)
        if f.name == "fifo_gauge.sv":
            continue  # only under FINN_SIMULATION (see STITCH_PATCHES)
        if f.name == "fifo.sv":
            patched = work / "fifo.sv"
            patched.write_text(patch_fifo(f.read_text()))
            f = patched
        elif f.parent.resolve() == Path(op.get_nodeattr("code_gen_dir_ipgen")).resolve():
            f = code_dir / f.name
        files.append(f)
    return files


@dataclass
class Partition:
    """What of a design's partition the stitched simulation covers."""

    nodes: list  # the graph nodes simulated, in stream order
    rest: list  # the nodes after the first one without RTL (empty: the whole partition)
    model: Any  # the stitched graph (ModelWrapper)

    @property
    def whole(self) -> bool:
        return not self.rest

    def layers(self) -> list:
        return [n for n in self.nodes if n.op_type in LAYER_OPS]


def split_partition(model) -> Partition:
    """The RTL nodes of the stitched graph up to the first node without RTL; refuses a graph
    whose first layer has none, in one sentence naming it."""
    nodes = list(model.graph.node)
    cut = next((i for i, n in enumerate(nodes) if n.op_type not in STITCHABLE), len(nodes))
    prefix = nodes[:cut]
    if not any(n.op_type in LAYER_OPS for n in prefix):
        first = nodes[cut]
        raise FlowError(f"the stitched simulation needs RTL layers, and {first.name} ({first.op_type}) comes first "
                        f"without RTL: rebuild the design with make codegen IMPL=rtl")
    return Partition(prefix, nodes[cut:], model)


def build_stitched(part: Partition, sources: Path, work: Path, clock_ns: float, fpga_part: str):
    """Generate the FIFOs' and converters' HDL, the top level and the MVU glue into ``work``, and
    verilate them with every layer's sources from ``sources`` (a design's ``hw_sources/``)."""
    from qonnx.custom_op.registry import getCustomOp

    from hw_build.rtlsim import BuiltLayer, _mvu_glue, _verilate

    work.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []
    instances = []
    for node in part.nodes:
        op = getCustomOp(node)
        if node.op_type in GLUE_OPS:
            code_dir = work / "glue" / node.name
            code_dir.mkdir(parents=True, exist_ok=True)
            op.set_nodeattr("code_gen_dir_ipgen", str(code_dir.resolve()))
            op.generate_hdl(part.model, fpga_part, clock_ns)  # FINN's own generator for the inserted node
        else:
            code_dir = sources / node.name
            if not code_dir.is_dir():
                raise FlowError(f"{node.name}'s generated sources ({code_dir}) are not here: run make codegen")
        files += node_rtl_files(node, op, code_dir, work)
        module, params = node.name, ""
        if node.op_type == "MVAU_rtl":
            files.append(_mvu_glue(node.name, op, work))
            module = f"{node.name}_sim_top"
        elif node.op_type == "Thresholding_rtl":
            params = f' #(.THRESHOLDS_PATH("{code_dir.resolve()}/{node.name}_"))'
        instances.append(Instance(node.name, node.op_type, module, op.get_instream_width_padded(0),
                                  op.get_outstream_width_padded(), params))
    top = work / "stitched_top.sv"
    top.write_text(top_level(instances))
    label = f"the stitched partition {part.nodes[0].name} … {part.nodes[-1].name}"
    # No FINN_SIMULATION: FINN's FIFO wrappers would become its unbounded sizing gauge.
    # (mvu.sv picks its behavioural datapath under Verilator by itself.)
    binary = _verilate(label, "stitched_top", [*files, top], [], "", work)
    return BuiltLayer(label, "stitched", binary)


def _python_outputs(hw_graph: Path, fed: np.ndarray, n_layers: int) -> np.ndarray:
    """FINN's Python execution of the hardware-layer graph on ``fed``: the output of its
    ``n_layers``-th layer (the end of the simulated prefix), one row per state."""
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx

    generic = ModelWrapper(str(hw_graph))
    tensor = generic.graph.node[n_layers - 1].output[0]
    name_in = generic.graph.input[0].name
    shape = generic.get_tensor_shape(name_in)
    return np.stack([np.asarray(execute_onnx(generic, {name_in: s.reshape(shape).astype(np.float32)},
                                             return_full_exec_context=True)[tensor]).reshape(-1) for s in fed])


def fault_copy(sources: Path, layer: str, target: Path) -> str:
    """A copy of a design's ``hw_sources/`` in ``target`` with one bit of one memory word flipped
    in ``layer``: the first weight word of an MVAU_rtl (``memblock.dat``) or the first threshold
    of a Thresholding_rtl. The bit is the word's highest set bit (a sign or a large magnitude; bit
    0 of a zero word), so the fault is one the states can show. Returns what was flipped."""
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(sources, target)
    folder = target / layer
    dats = [folder / "memblock.dat"] if (folder / "memblock.dat").exists() else sorted(folder.glob("*_threshs_0_0.dat"))
    if not dats:
        raise FlowError(f"{layer} has no weight or threshold memory file to flip a bit in")
    lines = dats[0].read_text().splitlines()
    word = int(lines[0], 16)
    flipped = word ^ (1 << max(word.bit_length() - 1, 0))
    lines[0] = format(flipped, f"0{len(lines[0].strip())}x")
    dats[0].write_text("\n".join(lines) + "\n")
    return f"{dats[0].name} word 0 of {layer}: {word:#x} -> {flipped:#x}"


def stitched_rtlsim(design_dir: Path, fed: np.ndarray, work: Path, *, stall_percent: int = 30, seed: int = 0,
                    sources: Path | None = None, clock_ns: float = 10.0) -> dict[str, Any]:
    """Ladder level 4b on ``fed`` (the accelerator's inputs, one row per state): the stitched
    partition (or its RTL prefix) in Verilator under random stalls, against FINN's Python execution
    and the host's emulator, with cycles per frame and the latency of one frame."""
    from qonnx.custom_op.registry import getCustomOp

    from host.backends.emulator import EmulatedAccelerator
    from host.design.spec import load_spec
    from hw_build.compile import HW_SOURCES, PART
    from hw_build.finn_env import prepare_finn
    from hw_build.rtlsim import FINN_SOURCE_PATCHES, simulate_node

    prepare_finn(Path("build") / "finn")
    models = design_dir / "intermediate_models"
    part = split_partition(stitched_graph(models / "step_hw_codegen.onnx", PART))
    built = build_stitched(part, sources or design_dir / HW_SOURCES, work, clock_ns, PART)
    first, last = getCustomOp(part.nodes[0]), getCustomOp(part.nodes[-1])
    n = len(fed)
    expected = _python_outputs(models / "step_convert_to_hw.onnx", fed, len(part.layers()))
    got, cycles = simulate_node(first, built, fed, seed=seed, stall_percent=stall_percent, work=work, out_op=last)
    got = got.reshape(n, -1)
    python_agree = (got == expected.reshape(got.shape)).all(axis=1)
    spec = load_spec(design_dir)
    emulated = EmulatedAccelerator(spec)(fed).reshape(n, -1)
    rest = [n_.op_type for n_ in part.rest if n_.op_type not in GLUE_OPS]
    if part.whole and emulated.shape != got.shape:
        emulator_agree = np.zeros(n, dtype=bool)
        emulator_how = f"the emulator gives {emulated.shape[1]} values a state, the partition {got.shape[1]}"
    elif part.whole:
        emulator_agree, emulator_how = (emulated == got).all(axis=1), "the accelerator's outputs, exactly"
    elif rest == ["LabelSelect_hls"] and emulated.shape[1] == 1:
        emulator_agree = emulated[:, 0] == np.argmax(got, axis=1)  # numpy's argmax: ties to the lowest index
        emulator_how = "its actions against the argmax of the prefix's outputs (ties to the lowest index, as LabelSelect)"
    else:
        emulator_agree, emulator_how = None, f"not compared: the partition continues with {', '.join(rest)}"
    _, one_frame = simulate_node(first, built, fed[:1], seed=seed, stall_percent=0, work=work, out_op=last)
    layer_ops = [getCustomOp(n_) for n_ in part.layers()]
    estimate = _read_estimate(design_dir)
    record: dict[str, Any] = {
        "basis": BASIS, "whole_partition": part.whole,
        "simulated": [n_.name for n_ in part.nodes],
        "not_simulated": [{"layer": n_.name, "op": n_.op_type, "why": _why_not(n_, part.rest[0])} for n_ in part.rest],
        "fifos": {n_.name: int(getCustomOp(n_).get_nodeattr("depth")) for n_ in part.nodes
                  if n_.op_type == "StreamingFIFO_rtl"},
        "fifo_depths": "as FINN's InsertFIFO gives them, before FINN's sizing (which needs Vivado's simulator)",
        "states": n, "stall_percent": stall_percent,
        "agreement_python": float(python_agree.mean()), "mismatching_states_python": int((~python_agree).sum()),
        "agreement_emulator": None if emulator_agree is None else float(emulator_agree.mean()),
        "emulator_comparison": emulator_how,
        "sim_cycles_per_frame": cycles, "sim_latency_cycles": one_frame,
        "sim_latency_us": round(one_frame * clock_ns / 1000, 4), "clock_ns": clock_ns,
        "finn_estimated_cycles_per_frame": max(int(op.get_exp_cycles()) for op in layer_ops),
        "finn_estimated_latency_us": None if estimate.get("estimated_latency_ns") is None
        else round(estimate["estimated_latency_ns"] / 1000, 4),
        "finn_estimate_covers": "every layer of the partition" + ("" if part.whole else
                                                                    ", the layers not simulated included"),
        "latency_budget_us": estimate.get("latency_budget_us"),
        "finn_source_patches": {**FINN_SOURCE_PATCHES, **STITCH_PATCHES},
    }
    record["passed"] = record["agreement_python"] == 1.0 and record["agreement_emulator"] in (None, 1.0)
    return record


def _why_not(node, cut) -> str:
    """Why a node after the cut is not simulated."""
    if node is cut:
        return ("an HLS layer: its C++ becomes RTL only with Vitis HLS, which is not here" if node.op_type.endswith("_hls")
                else "no RTL this simulation stitches")
    return f"after {cut.name}, which the simulation cannot pass"


def _read_estimate(design_dir: Path) -> dict[str, Any]:
    import json

    path = design_dir / "estimate.json"
    return json.loads(path.read_text()) if path.exists() else {}


def describe(record: dict[str, Any]) -> str:
    """One line for the console: what was stitched, agreement, cycles and latency beside FINN's estimate."""
    what = ("the whole partition" if record["whole_partition"] else
            f"the RTL prefix (not {', '.join(r['layer'] for r in record['not_simulated'] if not r['layer'].startswith('Stream'))})")
    emu = ("" if record["agreement_emulator"] is None else
           f", emulator {100 * record['agreement_emulator']:.3f} %")
    budget = f", budget {record['latency_budget_us']:g} µs" if record.get("latency_budget_us") else ""
    finn_lat = (f"FINN's estimate {record['finn_estimated_latency_us']:.2f} µs"
                if record.get("finn_estimated_latency_us") is not None else "no FINN estimate")
    return (f"level 4b, {what} stitched ({len(record['simulated'])} nodes, {len(record['fifos'])} FIFOs): agreement "
            f"FINN Python {100 * record['agreement_python']:.3f} %{emu} on {record['states']:,} states, "
            f"{record['stall_percent']} % stalls; {record['sim_cycles_per_frame']} cycles/frame back to back "
            f"(FINN estimate {record['finn_estimated_cycles_per_frame']}), one frame alone {record['sim_latency_cycles']} "
            f"cycles = {record['sim_latency_us']:.2f} µs ({finn_lat}{budget}), {record['basis']}")


#: What ``verify.json``'s level 4b keeps of the stitched simulation's record (what :func:`simulated_latency` reads).
STITCHED_SUMMARY_KEYS = ("passed", "sim_latency_us", "sim_cycles_per_frame", "whole_partition", "states", "basis",
                         "finn_estimated_latency_us", "latency_budget_us")


def simulated_latency(design_dir: Path) -> dict[str, Any] | None:
    """The stitched simulation's figures of a design from its ``rtlsim.json`` (``make rtlsim``), else
    from ``verify.json``'s level 4b (``make verify``), for tables and headlines: ``latency_us``,
    ``cycles_per_frame``, ``whole_partition``, ``states``, ``basis``, beside
    ``finn_estimated_latency_us`` and ``latency_budget_us``; ``None`` where level 4b has not run or
    did not pass."""
    import json

    stitched = None
    if (design_dir / "rtlsim.json").exists():
        stitched = json.loads((design_dir / "rtlsim.json").read_text()).get("stitched")
    elif (design_dir / "verify.json").exists():
        level = [lv for lv in json.loads((design_dir / "verify.json").read_text())["levels"] if lv["level"] == "4b"]
        stitched = level[0].get("stitched") if level else None
    if not stitched or not stitched.get("passed"):
        return None
    return {"latency_us": stitched["sim_latency_us"], "cycles_per_frame": stitched["sim_cycles_per_frame"],
            "whole_partition": stitched["whole_partition"], "states": stitched["states"], "basis": stitched["basis"],
            "finn_estimated_latency_us": stitched.get("finn_estimated_latency_us"),
            "latency_budget_us": stitched.get("latency_budget_us")}
