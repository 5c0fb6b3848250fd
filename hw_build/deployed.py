"""What a deployed policy stores, in bits: the size QPD's compression ratio is judged on.

:func:`deployed_bits` reads the compiled FINN graph (the hardware layers after bit-width
minimisation) and counts every stored value at the width the generated hardware stores it:
MVAU weights at the weight datatype, thresholds (of MVAU and Thresholding layers) at their
tensor's datatype, which is what FINN's HLS/RTL memories are generated with. The input stage
is counted wherever it runs: on the fabric it is a Thresholding layer (a float-input design's
bank of float32 thresholds); on the host it is the student's input quantizer (per-channel shift
and scale, the quantizer's scale and zero point, float32 each). A continuous head's output
scale, applied on the host, is one float32 too. LabelSelect stores nothing.

FINN's own ``op_and_param_counts`` report counts one threshold per output channel; a channel
of an ``a``-bit activation holds ``2^a - 1`` of them, which is what this counts.
"""

from __future__ import annotations

from typing import Any

FLOAT_BITS = 32


def host_input_bits(obs_dim: int) -> int:
    """Bits of the host-side input quantizer: shift and scale per channel, scale and zero point."""
    return (2 * obs_dim + 2) * FLOAT_BITS


def deployed_bits(model, *, host_input_dim: int | None = None, host_output_constants: int = 0) -> dict[str, Any]:
    """Per-layer and total bits a compiled FINN graph stores, plus the host-side constants.

    Args:
        model: the hardware-layer graph (a ``ModelWrapper``), after ``step_minimize_bit_width``.
        host_input_dim: the observation size when the input quantizer runs on the host.
        host_output_constants: how many float constants the host applies to the output
            (continuous actions: the output scale, one per action with a per-action affine, and the biases).

    Returns:
        ``{"layers": [{name, op, where, weight_bits, threshold_bits, bits}], "fabric_bits",
        "host_bits", "total_bits"}``.
    """
    import numpy as np
    from qonnx.core.datatype import DataType
    from qonnx.custom_op.registry import getCustomOp

    layers: list[dict[str, Any]] = []
    if host_input_dim is not None:
        bits = host_input_bits(host_input_dim)
        layers.append({"name": "input quantizer", "op": "InputQuantizer", "where": "host",
                       "weight_bits": 0, "threshold_bits": 0, "constant_bits": bits, "bits": bits})
    for node in model.graph.node:
        kind = node.op_type.split("_")[0]
        op = getCustomOp(node)
        weight_bits = threshold_bits = 0
        if kind == "MVAU":
            weights = model.get_initializer(node.input[1])
            wdt = DataType[op.get_nodeattr("weightDataType")]
            weight_bits = int(np.size(weights)) * wdt.bitwidth()
            if not op.get_nodeattr("noActivation"):
                thresholds = model.get_initializer(node.input[2])
                threshold_bits = int(np.size(thresholds)) * model.get_tensor_datatype(node.input[2]).bitwidth()
        elif kind == "Thresholding":
            thresholds = model.get_initializer(node.input[1])
            threshold_bits = int(np.size(thresholds)) * DataType[op.get_nodeattr("weightDataType")].bitwidth()
        layers.append({"name": node.name, "op": kind, "where": "fabric", "weight_bits": weight_bits,
                       "threshold_bits": threshold_bits, "constant_bits": 0, "bits": weight_bits + threshold_bits})
    if host_output_constants:
        bits = host_output_constants * FLOAT_BITS
        layers.append({"name": "output scale" + (" and bias" if host_output_constants > 1 else ""), "op": "OutputScale",
                       "where": "host", "weight_bits": 0, "threshold_bits": 0, "constant_bits": bits, "bits": bits})
    fabric = sum(layer["bits"] for layer in layers if layer["where"] == "fabric")
    host = sum(layer["bits"] for layer in layers if layer["where"] == "host")
    return {"layers": layers, "fabric_bits": fabric, "host_bits": host, "total_bits": fabric + host}


def worst_case_widths(model):
    """Widen every MVAU's accumulator and threshold datatype to the worst case its datatypes allow.

    FINN sizes accumulators (and so threshold memories) from the actual weight values; for a
    student whose weights are not at hand (an architecture, not a checkpoint) this gives the
    bound every trained student of that architecture stays within: FINN's own datatype-only
    accumulator minimisation, and thresholds stored at the accumulator's width.
    """
    from qonnx.core.datatype import DataType
    from qonnx.custom_op.registry import getCustomOp
    from qonnx.transformation.infer_datatypes import InferDataTypes

    for node in model.graph.node:
        if node.op_type.split("_")[0] != "MVAU":
            continue
        op = getCustomOp(node)
        op.minimize_accumulator_width(model, datatype_only=True)
        if not op.get_nodeattr("noActivation"):
            model.set_tensor_datatype(node.input[2], DataType[op.get_nodeattr("accDataType")])
    return model.transform(InferDataTypes())
