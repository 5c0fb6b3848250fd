"""Running ONNX graphs of every level (QONNX, streamlined FINN, FINN hardware layers) on batches.

The exported graphs have batch size 1. qonnx and FINN's Python execution handle a batch if
the graph says so: :func:`with_batch` rewrites the input/output shapes (and the hardware
layers' ``numInputVectors``) to ``n`` and re-infers the rest, which makes 10,000 states one
call of a few milliseconds instead of 10,000 calls of several.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from qonnx.core.modelwrapper import ModelWrapper


def load_model(model_or_path) -> ModelWrapper:
    """A ModelWrapper from a path or a ModelWrapper (copied, so callers' models stay intact)."""
    if isinstance(model_or_path, ModelWrapper):
        return ModelWrapper(model_or_path.model.SerializeToString())
    return ModelWrapper(str(Path(model_or_path)))


def with_batch(model_or_path, n: int) -> ModelWrapper:
    """A copy of a single-input, single-output graph that takes ``n`` rows at once."""
    from qonnx.custom_op.registry import getCustomOp
    from qonnx.transformation.infer_shapes import InferShapes

    model = load_model(model_or_path)
    for tensor in (model.graph.input[0], model.graph.output[0]):
        shape = model.get_tensor_shape(tensor.name)
        model.set_tensor_shape(tensor.name, [n] + list(shape[1:]))
    del model.graph.value_info[:]
    for node in model.graph.node:
        try:
            op = getCustomOp(node)
        except Exception:  # a standard ONNX node: nothing to set
            continue
        if "numInputVectors" in op.get_nodeattr_types():
            op.set_nodeattr("numInputVectors", [n])
    return model.transform(InferShapes())


def execute_batch(model_or_path, states: np.ndarray) -> np.ndarray:
    """Outputs of the graph for every row of ``states``, shape ``(n, outputs)``."""
    from finn.core.onnx_exec import execute_onnx

    states = np.asarray(states, dtype=np.float32)
    model = with_batch(model_or_path, len(states))
    out = execute_onnx(model, {model.graph.input[0].name: states})[model.graph.output[0].name]
    return np.asarray(out).reshape(len(states), -1)
