"""Graph changes this flow makes to a streamlined student, each a small qonnx Transformation."""

from __future__ import annotations

import numpy as np
from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation
from qonnx.transformation.infer_datatypes import InferDataTypes
from qonnx.transformation.infer_shapes import InferShapes

OUTPUT_SCALE_PROP = "qpd_output_scale"
OUTPUT_BIAS_PROP = "qpd_output_bias"


class InsertLabelSelectHead(Transformation):
    """Discrete policies: end the graph in an argmax that FINN turns into a LabelSelect layer.

    Inserts ``TopK(k=1)`` and removes the positive scalar ``Mul`` (the output scale) in front
    of it, so the argmax runs on the last MVAU's integer accumulators inside the accelerator.
    """

    def apply(self, model: ModelWrapper) -> tuple[ModelWrapper, bool]:
        from finn.transformation.streamline.absorb import AbsorbScalarMulAddIntoTopK
        from qonnx.transformation.insert_topk import InsertTopK

        model = model.transform(InsertTopK(k=1))
        model = model.transform(AbsorbScalarMulAddIntoTopK())
        model = model.transform(InferDataTypes())
        return model, False


class StripArgmaxScale(Transformation):
    """Discrete policies whose argmax the host takes (``IMPL=rtl``): the accelerator ends in the
    last MVAU, which returns its integer accumulators (the logits in units of the output scale).

    Removes the scalar ``Mul`` (a positive output scale) and scalar ``Add`` at the graph's end,
    which do not change the argmax; a negative or per-action scale would, and is refused.
    FINN's LabelSelect, the only layer that could take the argmax in the fabric, exists in HLS
    only; the host's ``np.argmax`` breaks exact ties to the lowest index as LabelSelect does.
    """

    def apply(self, model: ModelWrapper) -> tuple[ModelWrapper, bool]:
        from training.errors import FlowError

        out_name = model.graph.output[0].name
        last = model.find_producer(out_name)
        while last is not None and last.op_type in ("Mul", "Add") and model.get_initializer(last.input[1]) is not None:
            value = np.asarray(model.get_initializer(last.input[1]), dtype=np.float64)
            if value.size != 1 or (last.op_type == "Mul" and value.item() <= 0):
                raise FlowError(f"the output {last.op_type} by {value.reshape(-1)[:4].tolist()} changes the argmax: "
                                "only a positive per-tensor output scale can move to the host's argmax")
            last = StripOutputScale._remove(model, last)
        model.set_tensor_datatype(out_name, DataType["FLOAT32"])
        model = model.transform(InferShapes())
        model = model.transform(InferDataTypes())
        return model, False


class StripOutputScale(Transformation):
    """Continuous policies: move the final output affine (``Mul`` by the output scale, then an
    optional ``Add`` of a per-action bias) to the host.

    The accelerator then returns the last MVAU's integer accumulators; the scale (one number,
    or one per action for a student with ``output_affine``) and the bias are kept in the model's
    metadata (``qpd_output_scale``, ``qpd_output_bias``, JSON) and go into ``accel.json``, so the
    host computes ``action = scale × accumulator + bias``: per-action constants that cost the
    fabric nothing.
    """

    def apply(self, model: ModelWrapper) -> tuple[ModelWrapper, bool]:
        import json

        out_name = model.graph.output[0].name
        last = model.find_producer(out_name)
        bias = None
        if last is not None and last.op_type == "Add" and model.get_initializer(last.input[1]) is not None:
            bias = np.asarray(model.get_initializer(last.input[1]), dtype=np.float64).reshape(-1)
            last = self._remove(model, last)
        if last is None or last.op_type != "Mul" or model.get_initializer(last.input[1]) is None:
            if bias is None:
                return model, False
            scale = np.ones(1)
        else:
            scale = np.asarray(model.get_initializer(last.input[1]), dtype=np.float64).reshape(-1)
            self._remove(model, last)
        model.set_metadata_prop(OUTPUT_SCALE_PROP, json.dumps(float(scale[0]) if scale.size == 1 else scale.tolist()))
        if bias is not None:
            model.set_metadata_prop(OUTPUT_BIAS_PROP, json.dumps(bias.tolist()))
        model.set_tensor_datatype(out_name, DataType["FLOAT32"])
        model = model.transform(InferShapes())
        model = model.transform(InferDataTypes())
        return model, False

    @staticmethod
    def _remove(model: ModelWrapper, node):
        """Remove the graph's last node ``node``; its producer now writes the graph output. Returns that producer."""
        out_name = node.output[0]
        prev = model.find_producer(node.input[0])
        model.graph.node.remove(node)
        prev.output[0] = out_name
        return prev


def output_affine(model: ModelWrapper) -> tuple[float | list[float], list[float] | None]:
    """The output scale and bias :class:`StripOutputScale` moved to the host (from the model's metadata)."""
    import json

    scale = json.loads(model.get_metadata_prop(OUTPUT_SCALE_PROP))
    bias = model.get_metadata_prop(OUTPUT_BIAS_PROP)
    return scale, (json.loads(bias) if bias else None)


INPUT_QUANT_PROP = "qpd_input_quantizer"


class StripInputQuantizer(Transformation):
    """Integer-input designs: move the student's input quantizer out of the fabric, to the host.

    After streamlining, the input quantizer (the student's affine folded in) is the graph's
    first ``MultiThreshold``: a float observation in, the signed input code out. This removes
    it, so the accelerator's input is that integer code (datatype ``INT<bits>``) and the host
    computes it with the student's own arithmetic (``host.datapath.quantizer``, bit-exact to Brevitas,
    which a bank of float thresholds is not at exact rounding midpoints). The quantizer's
    parameters travel in the model's ``qpd_input_quantizer`` metadata (written by the export);
    the removed node must produce exactly that integer range, or the step refuses.
    """

    def apply(self, model: ModelWrapper) -> tuple[ModelWrapper, bool]:
        import json

        from qonnx.custom_op.registry import getCustomOp

        from training.errors import FlowError

        raw = model.get_metadata_prop(INPUT_QUANT_PROP)
        if not raw:
            raise FlowError("the QONNX model carries no input quantizer (qpd_input_quantizer metadata): "
                            "re-export it with make export")
        quant = json.loads(raw)
        graph_in = model.graph.input[0].name
        if quant.get("binary"):  # a binary frame is its own code: nothing to move to the host
            from hw_build.export import BINARY_FRAME_DATATYPE

            if model.get_tensor_datatype(graph_in) != DataType[BINARY_FRAME_DATATYPE]:
                raise FlowError(f"the student takes binary frames but the graph's input is not {BINARY_FRAME_DATATYPE}: "
                                "re-export it")
            return model, False
        first = model.find_consumer(graph_in)
        if first is None or first.op_type != "MultiThreshold" or len(model.find_consumers(graph_in)) != 1:
            raise FlowError("the streamlined graph does not start with the input quantizer's thresholds, so the "
                            "input cannot be quantized on the host (build with INPUT=float)")
        op = getCustomOp(first)
        dtype = DataType[op.get_nodeattr("out_dtype")]
        if (op.get_nodeattr("out_scale") != 1.0 or int(op.get_nodeattr("out_bias")) != quant["min_int"]
                or dtype.min() > quant["min_int"] or dtype.max() < quant["max_int"]):
            raise FlowError(f"the input thresholds ({dtype.name}, bias {op.get_nodeattr('out_bias')}) do not produce "
                            f"the input quantizer's codes {quant['min_int']}..{quant['max_int']}")
        successor = first.output[0]
        for consumer in model.find_consumers(successor):
            for i, name in enumerate(consumer.input):
                if name == successor:
                    consumer.input[i] = graph_in
        model.graph.node.remove(first)
        model.set_tensor_datatype(graph_in, dtype)
        model = model.transform(InferShapes())
        model = model.transform(InferDataTypes())
        return model, False
