"""Writable designs (``WEIGHTS=runtime``): one bitstream whose weights and thresholds are written at run time.

FINN (finn-plus 1.6.1) can give every weight and threshold memory an AXI-lite port:

- an MVAU with ``mem_mode=internal_decoupled`` and ``runtime_writeable_weights=1`` streams its
  weights from a memory (FINN's ``memstream``) the host writes over AXI-lite;
- thresholds fused inside an HLS MVAU are compile-time constants (``thresh.h``), so a writable
  design has them as separate Thresholding layers (``standalone_thresholds``), implemented as
  ``Thresholding_rtl`` with ``USE_AXILITE`` (``runtime_writeable_weights=1``).

FINN's floorplan puts every layer with an AXI-lite port in a dataflow partition of its own, and
its driver step (``MakePYNQDriver``) writes one file a writable layer,
``runtime_weights/<partition>_<i>_<layer>.dat``, which finn-plus-driver writes at offset 0 of
that partition's AXI-lite region.

Widths are the architecture's, never one student's: with ``runtime_writeable_weights`` set
before FINN's first bit-width minimisation, FINN keeps the weight datatype the quantizer declares
and sizes accumulators for the worst case its datatypes allow; :func:`step_qpd_runtime_widths`
gives the thresholds the width that holds any threshold a student of the architecture can have.
What a student must share with the design to be loaded into it is the design's *architecture
signature* (:func:`architecture_signature`), recorded in ``accel.json``.
"""

from __future__ import annotations

from typing import Any

from training.errors import FlowError

#: ``WEIGHTS=``: fixed (weights and thresholds in the bitstream) or runtime (written over AXI-lite).
WEIGHTS_MODES = ("fixed", "runtime")


def step_qpd_runtime_weights(model, cfg):
    """FINN build step, right after the conversion to hardware layers (before any bit-width
    minimisation): every MVAU's weights and every Thresholding layer's thresholds writable at run time."""
    from qonnx.custom_op.registry import getCustomOp

    for node in model.graph.node:
        kind = node.op_type.split("_")[0]
        if kind == "MVAU":
            op = getCustomOp(node)
            if not op.get_nodeattr("noActivation"):
                raise FlowError(f"layer {node.name} has its thresholds inside the MVAU, which FINN fixes at compile "
                                "time: a writable design needs them as Thresholding layers (standalone thresholds)")
            op.set_nodeattr("mem_mode", "internal_decoupled")
            op.set_nodeattr("runtime_writeable_weights", 1)
        elif kind == "Thresholding":
            getCustomOp(node).set_nodeattr("runtime_writeable_weights", 1)
    return model


def threshold_datatype(input_dtype) -> Any:
    """The threshold datatype of a writable Thresholding layer on inputs of ``input_dtype``.

    FINN clips a layer's thresholds into ``[min, max + 1]`` of its input datatype
    (``RoundAndClipThresholds``), and Thresholding_rtl needs ``min - 1`` too where its thresholds
    are narrower than its input: one signed bit more than the input holds both, for every student.
    """
    from qonnx.core.datatype import DataType

    if not input_dtype.is_integer():
        raise FlowError(f"a writable Thresholding layer needs integer inputs, not {input_dtype.name} "
                        "(build a writable design with INPUT=integer)")
    lo, hi = int(input_dtype.min()) - 1, int(input_dtype.max()) + 1
    bits = 2
    while -(1 << (bits - 1)) > lo or (1 << (bits - 1)) - 1 < hi:
        bits += 1
    return DataType[f"INT{bits}"]


def step_qpd_runtime_widths(model, cfg):
    """FINN build step, after ``step_minimize_bit_width``: each writable Thresholding layer's
    thresholds at :func:`threshold_datatype` of its (worst-case) input."""
    from qonnx.core.datatype import DataType
    from qonnx.custom_op.registry import getCustomOp
    from qonnx.transformation.infer_datatypes import InferDataTypes

    for node in model.graph.node:
        if node.op_type.split("_")[0] != "Thresholding":
            continue
        op = getCustomOp(node)
        idt = DataType[op.get_nodeattr("inputDataType")]
        tdt = threshold_datatype(idt)
        op.set_nodeattr("weightDataType", tdt.name)
        model.set_tensor_datatype(node.input[1], tdt)
    return model.transform(InferDataTypes())


def insert_runtime_steps(steps: list) -> list:
    """FINN's step list with the two writable-design steps in their places."""
    steps = list(steps)
    names = [s if isinstance(s, str) else s.__name__ for s in steps]
    steps.insert(names.index("step_minimize_bit_width") + 1, step_qpd_runtime_widths)
    steps.insert(names.index("step_convert_to_hw") + 1, step_qpd_runtime_weights)
    return steps


#: The keys of a layer (accel.json's ``layers``) that a loaded student must share with the design.
SIGNATURE_KEYS = {
    "MVAU": ("op", "mw", "mh", "simd", "pe", "input_dtype", "weight_dtype", "acc_dtype", "output_dtype",
             "binary_xnor", "no_activation"),
    "Thresholding": ("op", "channels", "pe", "input_dtype", "output_dtype", "threshold_dtype", "steps", "act_val"),
    "LabelSelect": ("op", "labels", "k", "pe", "input_dtype", "output_dtype"),
    "ConvolutionInputGenerator": ("op", "channels", "simd", "ifm_dim", "ofm_dim", "kernel", "stride", "dilation",
                                  "input_dtype", "output_dtype"),
}
#: The input quantizer's format (not its values, which travel with each student).
INPUT_FORMAT_KEYS = ("kind", "min_int", "max_int")


def architecture_signature(spec: dict[str, Any]) -> dict[str, Any]:
    """What a student must share with a writable design (from an ``accel.json``): every layer's
    shapes, datatypes, accumulator and threshold widths and folding, the input and output streams,
    and the input quantizer's format. Plain JSON data, compared key by key by :func:`first_mismatch`."""
    layers = []
    for layer in spec["layers"]:
        keys = SIGNATURE_KEYS.get(layer["op"])
        if keys is None:
            raise FlowError(f"layer {layer['name']} ({layer['op']}) has no architecture signature")
        entry = {key: layer.get(key) for key in keys}
        if layer["op"] == "Thresholding" and entry["steps"] is None:
            entry["steps"] = None
        layers.append(entry)
    transform = spec["input"]["transform"]
    return {"env_id": spec["env_id"], "action": spec["action"]["kind"], "n_actions": spec["action"]["n"],
            "input": {key: spec["input"][key] for key in ("finn_datatype", "normal_shape", "folded_shape")},
            "output": {key: spec["output"][key] for key in ("finn_datatype", "normal_shape", "folded_shape")},
            "input_quantizer": {key: transform.get(key) for key in INPUT_FORMAT_KEYS},
            "layers": layers}


def first_mismatch(design: dict[str, Any], student: dict[str, Any]) -> str | None:
    """The first place two architecture signatures differ, in words (None when they match)."""
    def walk(a: Any, b: Any, where: str) -> str | None:
        if isinstance(a, dict) and isinstance(b, dict):
            for key in list(a) + [k for k in b if k not in a]:
                found = walk(a.get(key), b.get(key), f"{where}.{key}" if where else key)
                if found:
                    return found
            return None
        if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
            for i, (x, y) in enumerate(zip(a, b)):
                found = walk(x, y, f"{where}[{i}]")
                if found:
                    return found
            return None
        if isinstance(a, list) and isinstance(b, list):
            return f"{where} has {len(b)} entries, the design's {len(a)}"
        return None if a == b else f"{where} is {b!r}, the design's is {a!r}"

    if len(design["layers"]) != len(student["layers"]):
        return (f"the student compiles to {len(student['layers'])} layers "
                f"({', '.join(layer['op'] for layer in student['layers'])}), the design has {len(design['layers'])}")
    found = walk(design, student, "")
    if found is None:
        return None
    if found.startswith("layers["):
        index = int(found[len("layers["):found.index("]")])
        return f"layer {index} ({design['layers'][index]['op']}): {found[found.index(']') + 2:]}"
    return found


def _tidy(model, transform):
    from qonnx.transformation.general import GiveReadableTensorNames, GiveUniqueNodeNames

    return model.transform(transform).transform(GiveUniqueNodeNames()).transform(GiveReadableTensorNames())


def zynq_partitions(model, part: str, board: str, workdir):
    """The design's graph as FINN's Zynq build partitions it (``ZynqBuild``'s preparation, no Vivado):
    FIFOs and width converters, the IODMAs, FINN's floorplan (a partition for every layer with an
    AXI-lite port) and the dataflow partitions, each instance named as the block design names it.
    Returns the parent graph (``StreamingDataflowPartition`` nodes)."""
    from finn.transformation.fpgadataflow.create_dataflow_partition import CreateDataflowPartition
    from finn.transformation.fpgadataflow.floorplan import Floorplan
    from finn.transformation.fpgadataflow.insert_dwc import InsertDWC
    from finn.transformation.fpgadataflow.insert_fifo import InsertFIFO
    from finn.transformation.fpgadataflow.insert_iodma import InsertIODMA
    from finn.transformation.fpgadataflow.specialize_layers import SpecializeLayers
    from finn.util.basic import pynq_native_port_width

    import logging

    from hw_build.vivado_build import name_zynq_instances

    finn_log = logging.getLogger("finn_logger")
    saved = finn_log.disabled
    finn_log.disabled = True  # the floorplan's warning about nodes without an SLR concerns multi-SLR parts only
    try:
        for transform in (InsertDWC(), InsertFIFO(create_shallow_fifos=True), SpecializeLayers(part),
                          InsertIODMA(pynq_native_port_width[board]), InsertDWC(), SpecializeLayers(part), Floorplan(),
                          CreateDataflowPartition(partition_model_dir=str(workdir))):
            model = _tidy(model, transform)
    finally:
        finn_log.disabled = saved
    name_zynq_instances(model)
    return model


def memory_map(parent) -> list[dict[str, Any]]:
    """Where each writable layer's memory is, as FINN's driver step names it: for every dataflow
    partition ``s`` (in graph order) and its ``i``-th writable layer, the file
    ``<s>_<i>_<layer>.dat`` and the partition's block-design instance (``StreamingDataflowPartition_<s>``),
    whose AXI-lite region finn-plus-driver writes from offset 0."""
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.custom_op.registry import getCustomOp

    memories = []
    for sdp_index, sdp in enumerate(parent.graph.node):
        inst = getCustomOp(sdp)
        inner = ModelWrapper(inst.get_nodeattr("model"))
        writable = 0
        for node in inner.graph.node:
            if not node.op_type.startswith(("MVAU", "Thresholding")):
                continue
            if getCustomOp(node).get_nodeattr("runtime_writeable_weights") != 1:
                continue
            memories.append({"layer": node.name, "partition": sdp_index, "index": writable,
                             "ip": inst.get_nodeattr("instance_name"), "offset": 0,
                             "dat_file": f"{sdp_index}_{writable}_{node.name}.dat"})
            writable += 1
    return memories


def writable(model) -> bool:
    """Whether a compiled graph's layers have runtime-writable memories (a ``WEIGHTS=runtime`` build)."""
    from qonnx.custom_op.registry import getCustomOp

    for node in model.graph.node:
        if node.op_type.startswith(("MVAU", "Thresholding")):
            op = getCustomOp(node)
            if "runtime_writeable_weights" in op.get_nodeattr_types() and op.get_nodeattr("runtime_writeable_weights"):
                return True
    return False


def runtime_section(model, spec: dict[str, Any], arrays: dict[str, Any]) -> dict[str, Any]:
    """accel.json's ``runtime_weights``: the architecture signature, every writable memory (where
    it is, its ``.dat`` file, its size in words) and the hash of the student the bitstream holds.

    Also adds each Thresholding layer's ``steps`` (thresholds per channel) to ``spec``'s layers:
    part of the signature and of the memory layout."""
    import tempfile

    from host.design.policy_memory import layer_words, memory_words, words_sha256
    from hw_build.compile import BOARD, PART

    for layer in spec["layers"]:
        if layer["op"] == "Thresholding":
            layer["steps"] = int(arrays[layer["thresholds"]].shape[1])
    layers = {layer["name"]: layer for layer in spec["layers"]}
    with tempfile.TemporaryDirectory(prefix="qpd-partitions-") as tmp:
        memories = memory_map(zynq_partitions(model, PART, BOARD, tmp))
    missing = [layer["name"] for layer in spec["layers"] if layer["op"] in ("MVAU", "Thresholding")
               and layer["name"] not in {m["layer"] for m in memories}]
    if missing:
        raise FlowError(f"layers {', '.join(missing)} have no writable memory in the compiled graph")
    for memory in memories:
        memory["words"] = memory_words(layers[memory["layer"]])
    signature = architecture_signature(spec)
    policy = words_sha256([(m["layer"], layer_words(layers[m["layer"]], arrays)) for m in memories])
    return {"what": "every MVAU weight memory (internal_decoupled) and Thresholding_rtl threshold memory is written "
                    "over AXI-lite at run time, FINN's word layout (host.design.policy_memory); a student must match "
                    "the signature to be loaded (make load-policy)",
            "signature": signature, "signature_sha256": signature_sha256(signature), "memories": memories,
            "policy_sha256": policy}


def signature_sha256(signature: dict[str, Any]) -> str:
    """A signature's hash (canonical JSON)."""
    import hashlib
    import json

    return hashlib.sha256(json.dumps(signature, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def writability_cost(qonnx, writable_est, choice, work_dir) -> dict[str, Any]:
    """What writability costs: the same student built fixed (weights and thresholds in the bitstream,
    ``IMPL`` as asked) at the writable design's folding target, against the writable build. FINN
    estimates (est.), dataflow partition only."""
    import shutil
    from pathlib import Path

    from hw_build.compile import build_config, read_estimate, run_build

    work_dir = Path(work_dir)
    if work_dir.exists():
        shutil.rmtree(work_dir)
    run_build(qonnx, build_config(work_dir, "estimate", writable_est.target_fps, choice.clock_ns, save_models=False,
                                  input_mode=choice.input_mode, impl=choice.impl,
                                  mvau_wwidth_max=choice.mvau_wwidth_max, weights="fixed"))
    fixed = read_estimate(work_dir, writable_est.target_fps, choice.clock_ns)
    shutil.rmtree(work_dir, ignore_errors=True)

    def row(est) -> dict[str, float]:
        return {**{k: float(est.resources.get(k, 0)) for k in ("LUT", "BRAM_18K", "DSP")},
                "latency_us": round(est.latency_ns / 1000, 3), "fps": float(est.fps)}

    return {"figures": "FINN estimates (est.) of the dataflow partition at the same folding target; the fixed design "
                       f"keeps IMPL={choice.impl} (thresholds {'in the MVAUs' if choice.impl == 'hls' else 'as layers'})",
            "target_fps": writable_est.target_fps, "writable": row(writable_est), "fixed": row(fixed),
            "extra": {k: round(row(writable_est)[k] - row(fixed)[k], 3) for k in ("LUT", "BRAM_18K", "DSP", "latency_us")}}


def cost_lines(cost: dict[str, Any]) -> list[str]:
    """What ``make estimate WEIGHTS=runtime`` prints about the cost of writability."""
    w, f, x = cost["writable"], cost["fixed"], cost["extra"]
    return [f"  writability (est., target_fps {cost['target_fps']:,}): LUT {w['LUT']:,.0f} against {f['LUT']:,.0f} fixed "
            f"({x['LUT']:+,.0f}), BRAM_18K {w['BRAM_18K']:,.0f} against {f['BRAM_18K']:,.0f}, latency "
            f"{w['latency_us']:.2f} µs against {f['latency_us']:.2f} µs ({x['latency_us']:+.2f} µs)"]


#: Harness code (run before the stream starts, after a reset) that writes the 32-bit words of the file
#: named by ``$QPD_AXI_WRITES`` ("<byte address> <word>" in hex, a line each) over the layer's AXI-lite
#: port, one write transaction a word (address and data offered together, held until accepted, then
#: the write response taken).
AXI_WRITES_CPP = r"""
{ const char* wf = std::getenv("QPD_AXI_WRITES");
  if (wf) {
    top.ap_clk = 0; top.ap_rst_n = 0;
    for (int i = 0; i < 8; ++i) { top.ap_clk ^= 1; top.eval(); }
    top.ap_rst_n = 1;
    std::ifstream wfile(wf);
    unsigned long a, d;
    while (wfile >> std::hex >> a >> d) {
      top.s_axilite_AWADDR = a; top.s_axilite_AWVALID = 1; top.s_axilite_WDATA = d; top.s_axilite_WSTRB = 0xF;
      top.s_axilite_WVALID = 1; top.s_axilite_BREADY = 1;
      bool done = false;
      for (int k = 0; k < 1000 && !done; ++k) {
        top.ap_clk = 0; top.eval();
        const bool aw = top.s_axilite_AWVALID && top.s_axilite_AWREADY;
        const bool w = top.s_axilite_WVALID && top.s_axilite_WREADY;
        const bool b = top.s_axilite_BVALID && top.s_axilite_BREADY;
        top.ap_clk = 1; top.eval();
        if (aw) top.s_axilite_AWVALID = 0;
        if (w) top.s_axilite_WVALID = 0;
        if (b) done = true;
      }
      if (!done) { std::fprintf(stderr, "AXI-lite write at %lx not acknowledged\n", a); return 3; }
      top.s_axilite_BREADY = 0;
    }
  }
}
"""


def simulate_threshold_writes(design_dir, layer_name: str, words, inputs, work) -> Any:
    """A writable design's ``Thresholding_rtl`` layer in Verilator (its RTL from ``make codegen
    WEIGHTS=runtime``, FINN's ``thresholding_axi`` with ``USE_AXILITE``): ``words`` (None: none)
    written over its AXI-lite port at byte addresses ``4 i``, then ``inputs`` streamed through it with
    random back-pressure; returns its outputs (FINN's stream packing in and out, :mod:`hw_build.rtlsim`)."""
    import os
    from pathlib import Path

    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.custom_op.registry import getCustomOp

    from hw_build.compile import HW_SOURCES
    from hw_build.rtlsim import TIE_OFFS, BuiltLayer, _verilate, layer_sources, rtllib, simulate_node

    design_dir, work = Path(design_dir), Path(work)
    model = ModelWrapper(str(design_dir / "intermediate_models" / "step_hw_codegen.onnx"))
    node = model.get_node_from_name(layer_name)
    if node is None or node.op_type != "Thresholding_rtl":
        raise FlowError(f"design {design_dir.name} has no Thresholding_rtl layer {layer_name}")
    op = getCustomOp(node)
    if not op.get_nodeattr("runtime_writeable_weights"):
        raise FlowError(f"layer {layer_name} has no AXI-lite port (build with WEIGHTS=runtime)")
    code_dir = design_dir / HW_SOURCES / layer_name
    params = [f'-GTHRESHOLDS_PATH="{code_dir.resolve()}/{layer_name}_"']
    binary = _verilate(f"{layer_name} (Thresholding_rtl, AXI-lite writes)", layer_name,
                       [rtllib() / "axi" / "hdl" / "axilite.sv", *layer_sources("Thresholding_rtl", code_dir, work)], params,
                       TIE_OFFS["Thresholding_rtl"] + AXI_WRITES_CPP, work)
    saved = os.environ.get("QPD_AXI_WRITES")
    try:
        if words is not None:
            writes = work / "axi_writes.hex"
            writes.write_text("".join(f"{4 * i:x} {int(w):x}\n" for i, w in enumerate(words)))
            os.environ["QPD_AXI_WRITES"] = str(writes)
        else:
            os.environ.pop("QPD_AXI_WRITES", None)
        out, _ = simulate_node(op, BuiltLayer(layer_name, "Thresholding_rtl", binary), inputs, work=work)
    finally:
        if saved is None:
            os.environ.pop("QPD_AXI_WRITES", None)
        else:
            os.environ["QPD_AXI_WRITES"] = saved
    return out
