"""``accel.json`` and ``weights.npz``: everything the host needs to drive and to emulate a design.

Both are taken from the compiled FINN graph (the hardware layers after folding), so the host's
emulator computes exactly what the fabric computes. Format version 2 is documented in the
README ("Accelerator spec"): it adds the input transform the host runs (the student's input
quantizer, for integer-input designs) and the deployed bits; the host refuses any other version.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from host.design.spec import ACCEL_FORMAT_VERSION  # one version, the one the host reads
from training import atomic
from training.errors import FlowError

FINAL_MODEL = "step_generate_estimate_reports.onnx"
HEAD_MODEL = "step_qpd_output_head.onnx"
#: The same step's graph in an ``IMPL=rtl`` build (hw_build.compile.step_qpd_host_argmax_head).
HOST_ARGMAX_HEAD_MODEL = "step_qpd_host_argmax_head.onnx"
#: Instance names FINN's InsertIODMA gives the Zynq shell's input and output DMAs.
IDMA_NAME, ODMA_NAME = "idma0", "odma0"


def _attr(op, name: str, default=None):
    return op.get_nodeattr(name) if name in op.get_nodeattr_types() else default


def _layer(model, node, arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    from qonnx.custom_op.registry import getCustomOp

    op = getCustomOp(node)
    kind = node.op_type.split("_")[0]
    common = {"name": node.name, "op": kind, "pe": int(_attr(op, "PE", 1)),
              "input_shape": list(model.get_tensor_shape(node.input[0])[1:]),
              "output_shape": list(model.get_tensor_shape(node.output[0])[1:]),
              "input_dtype": str(_attr(op, "inputDataType")), "output_dtype": str(_attr(op, "outputDataType"))}
    if kind == "Thresholding":
        arrays[f"{node.name}.thresholds"] = np.asarray(model.get_initializer(node.input[1]))
        return {**common, "channels": int(op.get_nodeattr("NumChannels")), "act_val": int(op.get_nodeattr("ActVal")),
                "threshold_dtype": str(_attr(op, "weightDataType")), "thresholds": f"{node.name}.thresholds"}
    if kind == "MVAU":
        weights = np.asarray(model.get_initializer(node.input[1]))
        arrays[f"{node.name}.weights"] = weights
        layer = {**common, "mw": int(op.get_nodeattr("MW")), "mh": int(op.get_nodeattr("MH")),
                 "simd": int(op.get_nodeattr("SIMD")), "weight_dtype": str(op.get_nodeattr("weightDataType")),
                 "acc_dtype": str(op.get_nodeattr("accDataType")), "binary_xnor": bool(op.get_nodeattr("binaryXnorMode")),
                 "no_activation": bool(op.get_nodeattr("noActivation")), "act_val": int(op.get_nodeattr("ActVal")),
                 "weights": f"{node.name}.weights", "thresholds": None}
        if not layer["no_activation"]:
            arrays[f"{node.name}.thresholds"] = np.asarray(model.get_initializer(node.input[2]))
            layer["thresholds"] = f"{node.name}.thresholds"
        return layer
    if kind == "ConvolutionInputGenerator":
        return {**common, "channels": int(op.get_nodeattr("IFMChannels")), "simd": int(op.get_nodeattr("SIMD")),
                "ifm_dim": [int(d) for d in op.get_nodeattr("IFMDim")], "ofm_dim": [int(d) for d in op.get_nodeattr("OFMDim")],
                "kernel": [int(d) for d in op.get_nodeattr("ConvKernelDim")],
                "stride": [int(d) for d in op.get_nodeattr("Stride")], "dilation": [int(d) for d in op.get_nodeattr("Dilation")],
                "depthwise": bool(op.get_nodeattr("depthwise")),
                "order": "windows row by row; in each window (kernel row, kernel column, channel), channel fastest"}
    if kind == "LabelSelect":
        return {**common, "labels": int(op.get_nodeattr("Labels")), "k": int(op.get_nodeattr("K")),
                "tie_rule": "lowest index"}
    raise FlowError(f"the compiled graph has a {node.op_type} layer ({node.name}), which the host's emulator "
                    "does not implement; only ConvolutionInputGenerator, Thresholding, MVAU and LabelSelect students are supported")


def _io(model, tensor: str, node, first: bool) -> dict[str, Any]:
    from finn.util.data_packing import finnpy_to_packed_bytearray
    from qonnx.custom_op.registry import getCustomOp
    from qonnx.util.basic import gen_finn_dt_tensor

    op = getCustomOp(node)
    dtype = model.get_tensor_datatype(tensor)
    folded = tuple(op.get_folded_input_shape() if first else op.get_folded_output_shape())
    packed = finnpy_to_packed_bytearray(gen_finn_dt_tensor(dtype, folded), dtype).shape
    return {"finn_datatype": dtype.name, "normal_shape": list(model.get_tensor_shape(tensor)),
            "folded_shape": list(folded), "packed_shape": list(packed)}


def input_transform(export: dict[str, Any], input_mode: str) -> dict[str, Any]:
    """accel.json's ``input.transform``: the host's input quantizer, or none for a float-input design."""
    if input_mode == "float":
        return {"kind": "none", "what": "float32 observations go to the accelerator, whose first Thresholding "
                                        "layer quantizes them (the student's input affine and quantizer, folded)"}
    quant = export.get("input_quantizer")
    if quant is None:
        raise FlowError(f"design {export['design']}: export.json has no input quantizer; re-export it with make export")
    from host.datapath.quantizer import ROUNDING

    if quant.get("binary"):
        from hw_build.export import BINARY_FRAME_DATATYPE

        return {"kind": "binary", "what": "binary frames (0/1 per cell and channel, the environment's channels-last "
                                          f"layout) go to the accelerator as they are, each value a {BINARY_FRAME_DATATYPE} "
                                          "of the stream (FINN's HLS MVAU takes no true-binary input)"}
    return {"kind": "quantize", **quant, "rounding": ROUNDING,
            "formula": "q = clip(round(((obs - shift) * scale) / quant_scale + zero_point), min_int, max_int), "
                       "float32 arithmetic"}


def host_output_constants(action: dict[str, Any]) -> int:
    """How many float constants the host applies to a continuous design's output (scales and biases)."""
    scale = action["output_scale"]
    return (len(scale) if isinstance(scale, list) else 1) + len(action.get("output_bias") or [])


def build_accel_spec(design_dir: Path, clock_ns: float, input_mode: str = "integer") -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The accel spec and weight arrays of a compiled design folder."""
    from hw_build.deployed import deployed_bits

    from hw_build.design import BITFILE, EXPORT_FILE, QONNX_FILE, sha256_file
    from hw_build.transforms import output_affine
    from training.envs import env_info

    from hw_build.execution import read_graph

    models = design_dir / "intermediate_models"
    model = read_graph(models / FINAL_MODEL)
    export = json.loads((design_dir / EXPORT_FILE).read_text())
    arrays: dict[str, np.ndarray] = {}
    layers = [_layer(model, node, arrays) for node in model.graph.node]
    info = env_info(export["env_id"])
    discrete = export["action"] == "discrete"
    host_argmax = discrete and layers[-1]["op"] == "MVAU" and layers[-1]["no_activation"]
    if discrete and layers[-1]["op"] != "LabelSelect" and not host_argmax:
        raise FlowError(f"design {design_dir.name}: the compiled graph ends neither in LabelSelect nor in the "
                        "logits of an MVAU without activation")
    action: dict[str, Any] = {"kind": export["action"], "n": info.n_actions}
    if host_argmax:
        action.update(argmax_in_hardware=False, tie_rule="lowest index",
                      output="the integer logits (the last MVAU's accumulators); the host takes their argmax")
    elif discrete:
        action.update(argmax_in_hardware=True, tie_rule="lowest index",
                      output="the action index, computed by the LabelSelect layer")
    else:
        head = models / HEAD_MODEL if (models / HEAD_MODEL).exists() else models / HOST_ARGMAX_HEAD_MODEL
        scale, bias = output_affine(read_graph(head))
        action.update(argmax_in_hardware=False, output_scale=scale, low=info.action_low.tolist(),
                      high=info.action_high.tolist(),
                      output="action = clip(output_scale × output, low, high)" if bias is None else
                             "action = clip(output_scale × output + output_bias, low, high), per action")
        if bias is not None:
            action["output_bias"] = bias
    bit = design_dir / BITFILE
    spec = {
        "format_version": ACCEL_FORMAT_VERSION,
        "design": design_dir.name,
        "env_id": export["env_id"],
        "board": "Pynq-Z2",
        "clock_ns": float(clock_ns),
        "input": {**_io(model, model.graph.input[0].name, model.graph.node[0], True),
                  "transform": input_transform(export, input_mode)},
        "output": _io(model, model.graph.output[0].name, model.graph.node[-1], False),
        "action": action,
        "dma": {"input": IDMA_NAME, "output": ODMA_NAME, "protocol": "FINN Zynq IODMA"},
        "layers": layers,
        "deployed": {**deployed_bits(model, host_input_dim=info.obs_dim if input_mode == "integer"
                                     and not export["input_quantizer"].get("binary") else None,
                                     host_output_constants=0 if discrete else host_output_constants(action)),
                     "counts": "every weight and threshold at the width the hardware stores it, the input stage "
                               "included (host constants at float32)"},
        "hashes": {"student_checkpoint_sha256": export["student_checkpoint_sha256"],
                   "qonnx_sha256": sha256_file(design_dir / QONNX_FILE), "weights_npz_sha256": None,
                   "bitstream_sha256": sha256_file(bit) if bit.exists() else None},
        "source": {"run": export["run"], "student": export["student"]},
    }
    from hw_build.runtime_weights import runtime_section, writable

    if writable(model):
        spec["runtime_weights"] = runtime_section(model, spec, arrays)
    return spec, arrays


def write_accel_spec(design_dir: Path, clock_ns: float, input_mode: str = "integer") -> dict[str, Any]:
    """Write ``weights.npz`` then ``accel.json`` (which holds the former's hash) atomically, and
    ``finn_settings.json``, the settings FINN's own PYNQ driver needs for the same design."""
    from host.design.finn_settings import write_finn_settings
    from host.design.spec import load_spec
    from hw_build.design import ACCEL_FILE, WEIGHTS_FILE, sha256_file

    spec, arrays = build_accel_spec(design_dir, clock_ns, input_mode)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic.write_bytes(design_dir / WEIGHTS_FILE, buf.getvalue())
    spec["hashes"]["weights_npz_sha256"] = sha256_file(design_dir / WEIGHTS_FILE)
    atomic.write_json(design_dir / ACCEL_FILE, spec)
    write_finn_settings(load_spec(design_dir))
    return spec


def _differences(ours: Any, theirs: Any, path: str = "") -> list[str]:
    """Key paths where two JSON values differ (``theirs``: the file's)."""
    if isinstance(ours, dict) and isinstance(theirs, dict):
        out = []
        for key in sorted(set(ours) | set(theirs), key=str):
            where = f"{path}.{key}" if path else str(key)
            if key not in theirs:
                out.append(f"{where} is missing")
            elif key not in ours:
                out.append(f"{where} is not the graph's")
            else:
                out += _differences(ours[key], theirs[key], where)
        return out
    if isinstance(ours, list) and isinstance(theirs, list) and len(ours) == len(theirs):
        return [d for i, (a, b) in enumerate(zip(ours, theirs)) for d in _differences(a, b, f"{path}[{i}]")]
    return [] if ours == theirs else [f"{path} differs"]


def board_file_mismatches(design_dir: Path) -> list[str]:
    """Where the files the board loads differ from what the design's FINN graph makes of them.

    ``weights.npz`` (array by array, dtype included), ``accel.json`` (every field, the hash of
    ``weights.npz`` checked against the file itself) and ``finn_settings.json`` are rebuilt from the
    compiled graph and ``export.json``, as ``make estimate`` wrote them, and compared: a file edited
    after the build (its hash rewritten to match) shows here. Returns one phrase per difference.
    """
    from host.design.finn_settings import SETTINGS_FILE, finn_driver_settings
    from host.design.spec import AccelSpec, load_spec
    from hw_build.design import ACCEL_FILE, WEIGHTS_FILE, sha256_file

    on_disk = load_spec(design_dir)
    kind = on_disk.input_transform.get("kind")
    spec, arrays = build_accel_spec(design_dir, on_disk.data["clock_ns"], "float" if kind == "none" else "integer")
    spec = json.loads(json.dumps(spec))
    spec["design"] = on_disk.data.get("design")  # a design folder may be renamed; its name computes nothing
    spec["hashes"]["weights_npz_sha256"] = sha256_file(design_dir / WEIGHTS_FILE)
    problems = [f"{ACCEL_FILE}: {d}" for d in _differences(spec, on_disk.data)]
    for key in sorted(set(arrays) | set(on_disk.arrays)):
        ours, theirs = arrays.get(key), on_disk.arrays.get(key)
        if theirs is None or ours is None:
            problems.append(f"{WEIGHTS_FILE}: array {key} is {'missing' if theirs is None else 'not the graph’s'}")
        elif ours.shape != theirs.shape or ours.dtype != theirs.dtype or not np.array_equal(ours, theirs):
            problems.append(f"{WEIGHTS_FILE}: array {key} differs from the graph's")
    settings = design_dir / SETTINGS_FILE
    if settings.exists():
        expected = json.loads(json.dumps(finn_driver_settings(AccelSpec(design_dir, spec, arrays))))
        try:
            found = json.loads(settings.read_text())
        except ValueError:
            found = None
        problems += [f"{settings.name}: {d}" for d in _differences(expected, found)] if found is not None else \
            [f"{settings.name} is not valid JSON"]
    return problems
