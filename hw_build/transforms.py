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
