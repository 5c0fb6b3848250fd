"""Graph changes this flow makes to a streamlined student, each a small qonnx Transformation."""

from __future__ import annotations

import numpy as np
from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation
from qonnx.transformation.infer_datatypes import InferDataTypes
from qonnx.transformation.infer_shapes import InferShapes

OUTPUT_SCALE_PROP = "qpd_output_scale"


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


class StripOutputScale(Transformation):
    """Continuous policies: move the final scalar ``Mul`` (the output scale) to the host.

    The accelerator then returns the last MVAU's integer accumulators; the scale is kept in
    the model's metadata (``qpd_output_scale``) and goes into ``accel.json`` so the host
    computes ``action = scale × accumulator``.
    """

    def apply(self, model: ModelWrapper) -> tuple[ModelWrapper, bool]:
        out_name = model.graph.output[0].name
        last = model.find_producer(out_name)
        if last is None or last.op_type != "Mul":
            return model, False
        scale = model.get_initializer(last.input[1])
        if scale is None or scale.size != 1:
            return model, False
        model.set_metadata_prop(OUTPUT_SCALE_PROP, repr(float(np.asarray(scale).reshape(()))))
        producer_out = last.input[0]
        model.graph.node.remove(last)
        prev = model.find_producer(producer_out)
        prev.output[0] = out_name
        model.set_tensor_datatype(out_name, DataType["FLOAT32"])
        model = model.transform(InferShapes())
        model = model.transform(InferDataTypes())
        return model, False


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
