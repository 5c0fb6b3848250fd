"""Exporting a student's actor to QONNX and running the QONNX graph.

Uses Brevitas's ``export_qonnx`` on the TorchScript path (``dynamo=False``: 0.15 s and quiet,
the same graph as the dynamo exporter; STACK.md), then qonnx's cleanup so the graph has
static shapes and folded constants.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import torch

from training.student import ActorOnly, QuantStudent


def export_actor_qonnx(student: QuantStudent, path: str | Path) -> Path:
    """Write the student's actor (batch 1) as a cleaned-up QONNX model at ``path`` (atomically)."""
    from brevitas.export import export_qonnx
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.util.cleanup import cleanup_model

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    student.eval()
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        export_qonnx(ActorOnly(student), torch.zeros(1, student.spec.obs_dim), export_path=tmp, dynamo=False)
        model = cleanup_model(ModelWrapper(tmp))
        model.save(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def run_qonnx(model_or_path, states: np.ndarray) -> np.ndarray:
    """Execute a batch-1 QONNX graph on each row of ``states``; return the stacked outputs."""
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx

    model = model_or_path if isinstance(model_or_path, ModelWrapper) else ModelWrapper(str(model_or_path))
    iname, oname = model.graph.input[0].name, model.graph.output[0].name
    rows = [execute_onnx(model, {iname: row[None, :].astype(np.float32)})[oname] for row in np.asarray(states)]
    return np.concatenate(rows).reshape(len(rows), -1)
