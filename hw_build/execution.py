"""Running ONNX graphs of every level (QONNX, streamlined FINN, FINN hardware layers) on batches.

The exported graphs have batch size 1. qonnx and FINN's Python execution handle a batch if
the graph says so: :func:`with_batch` rewrites the input/output shapes (and the hardware
layers' ``numInputVectors``) to ``n`` and re-infers the rest, which makes 10,000 states one
call of a few milliseconds instead of 10,000 calls of several.

Sliding windows (qonnx ``Im2Col`` in the streamlined graph, FINN's ``ConvolutionInputGenerator``,
whose Python execution is that ``Im2Col``) compute batch 1 only (qonnx's ``Im2Col`` reorders a
larger batch wrongly); the graph then runs batched between them and each sliding window runs
one frame at a time with its own execution, on the graph of batch 1.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from qonnx.core.modelwrapper import ModelWrapper


def load_model(model_or_path) -> ModelWrapper:
    """A ModelWrapper from a path or a ModelWrapper (copied, so callers' models stay intact).

    A graph file that ONNX cannot read (truncated, or not ONNX) is one sentence (:class:`FlowError`).
    """
    if isinstance(model_or_path, ModelWrapper):
        return ModelWrapper(model_or_path.model.SerializeToString())
    return read_graph(Path(model_or_path))


def read_graph(path: Path) -> ModelWrapper:
    """The ONNX graph at ``path``; a missing, truncated or non-ONNX file is one sentence (:class:`FlowError`)."""
    from training.errors import FlowError

    if not Path(path).is_file():
        raise FlowError(f"the graph {path} does not exist: rerun the make target that writes it")
    try:
        model = ModelWrapper(str(path))
        model.graph.node  # noqa: B018  (a parse that yielded nothing fails here)
    except Exception as exc:  # noqa: BLE001  (protobuf's DecodeError, onnx's errors: the file is damaged)
        raise FlowError(f"the graph {path} cannot be read ({type(exc).__name__}): it is truncated or not ONNX; "
                        "rerun the make target that writes it") from None
    return model


def _sliding_window(node) -> bool:
    return node.op_type == "Im2Col" or node.op_type.startswith("ConvolutionInputGenerator")


def with_batch(model_or_path, n: int) -> ModelWrapper:
    """A copy of a single-input, single-output graph whose tensors have batch ``n``."""
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
            op.set_nodeattr("numInputVectors", [n] + list(op.get_nodeattr("numInputVectors"))[1:])
    model = model.transform(InferShapes())
    if any(_sliding_window(node) for node in model.graph.node):
        # their shape inference says batch 1 whatever the input: every activation gets the batch here
        initializers = {init.name for init in model.graph.initializer}
        for info in model.graph.value_info:
            dims = info.type.tensor_type.shape.dim
            if info.name not in initializers and len(dims) > 1 and dims[0].dim_value == 1:
                dims[0].dim_value = n
    return model


def execute_batch(model_or_path, states: np.ndarray) -> np.ndarray:
    """Outputs of the graph for every row of ``states``, shape ``(n, outputs)``."""
    from finn.core.onnx_exec import execute_onnx

    states = np.asarray(states, dtype=np.float32)
    single = load_model(model_or_path)
    model = with_batch(single, len(states))
    if not any(_sliding_window(node) for node in model.graph.node):
        out = execute_onnx(model, {model.graph.input[0].name: states})[model.graph.output[0].name]
        return np.asarray(out).reshape(len(states), -1)
    nodes, value, at = list(model.graph.node), states, 0
    while at < len(nodes):
        if _sliding_window(nodes[at]):
            value = _frame_by_frame(single, single.graph.node[at], value)
            at += 1
            continue
        end = at
        while end + 1 < len(nodes) and not _sliding_window(nodes[end + 1]):
            end += 1
        context = execute_onnx(model, {nodes[at].input[0]: value}, return_full_exec_context=True,
                               start_node=nodes[at], end_node=nodes[end])
        value, at = context[nodes[end].output[0]], end + 1
    return np.asarray(value).reshape(len(states), -1)


def _frame_by_frame(single: ModelWrapper, node, frames: np.ndarray) -> np.ndarray:
    """One sliding-window node of the batch-1 graph run on each frame with its own execution."""
    from qonnx.custom_op.registry import getCustomOp

    op = getCustomOp(node)
    out_shape = single.get_tensor_shape(node.output[0])
    rows = []
    for frame in frames:
        context = {node.input[0]: frame[None], node.output[0]: np.zeros(out_shape, dtype=np.float32)}
        op.execute_node(context, single.graph)
        rows.append(context[node.output[0]])
    return np.concatenate(rows)
