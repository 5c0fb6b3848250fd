"""Exporting a student's actor to QONNX and running the QONNX graph.

Uses Brevitas's ``export_qonnx`` on the TorchScript path (``dynamo=False``: 0.15 s and quiet,
the same graph as the dynamo exporter; docs/design-decisions.md), then qonnx's cleanup so the graph has
static shapes and folded constants.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import torch

from training.students.student import ActorOnly, QuantStudent


def export_actor_qonnx(student: QuantStudent, path: str | Path, metadata: dict[str, str] | None = None) -> Path:
    """Write the student's actor (batch 1) as a cleaned-up QONNX model at ``path`` (atomically).

    ``metadata`` goes into the model's metadata properties (the later FINN steps read
    ``qpd_action``: ``discrete`` or ``continuous``, and ``qpd_input_quantizer``: the input
    stage the host runs for integer-input designs).
    """
    import json

    from hw_build.transforms import INPUT_QUANT_PROP

    from brevitas.export import export_qonnx
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.util.cleanup import cleanup_model

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    student.eval()
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        export_qonnx(ActorOnly(student), torch.zeros(1, *student.spec.obs_shape), export_path=tmp, dynamo=False)
        model = cleanup_model(ModelWrapper(tmp))
        if student.spec.binary_input:  # the frame's values are its codes, as they are
            from qonnx.core.datatype import DataType

            model.set_tensor_datatype(model.graph.input[0].name, DataType[BINARY_FRAME_DATATYPE])
        for key, value in {"qpd_action": "discrete" if student.spec.discrete else "continuous",
                           INPUT_QUANT_PROP: json.dumps(student.input_quantizer()), **(metadata or {})}.items():
            model.set_metadata_prop(key, value)
        model.save(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


#: FINN's datatype for a binary frame. Not ``BINARY``: FINN's HLS MVAU refuses a true-binary (0/1,
#: not bipolar) input at code generation ("True binary (non-bipolar) inputs not yet supported"),
#: and its RTL MVAU takes activations of 2 bits or more, so the first layer after the sliding
#: window could not be generated. Two bits a value hold 0 and 1 exactly; the stream and the
#: sliding window's buffer carry one bit more per value, nothing else changes.
BINARY_FRAME_DATATYPE = "UINT2"


def run_qonnx(model_or_path, states: np.ndarray) -> np.ndarray:
    """Execute a QONNX graph on every row of ``states`` (one batched call); return the outputs."""
    from hw_build.execution import execute_batch

    return execute_batch(model_or_path, states)


#: Seeds of the episodes whose states the parity and verification checks use.
CHECK_SEED_BASE = 50_000_000


def episode_states(env_id: str, policy, n: int, seed_base: int = CHECK_SEED_BASE) -> np.ndarray:
    """``n`` observations visited by ``policy`` in real, seeded episodes (8 run side by side)."""
    from training.qpd.replay import Collector

    collector = Collector(env_id, 8, seed_base)
    try:
        return collector.collect(policy, -(-n // 8) * 8)[:n]
    finally:
        collector.close()


def integer_logits(logits: np.ndarray, output_scale: float) -> np.ndarray:
    """Another level's float logits as the integer logits the hardware's LabelSelect sees
    (divided by the student's output scale and rounded)."""
    return np.round(logits / output_scale)


def integer_actions(logits: np.ndarray, output_scale: float) -> np.ndarray:
    """Actions from another level's float logits: argmax of :func:`integer_logits`, ties to the
    lowest index like the hardware."""
    from training.students.student import first_argmax

    return first_argmax(integer_logits(logits, output_scale))


def student_output_scale(student: QuantStudent, states: np.ndarray) -> float:
    """The discrete student's per-tensor output scale (the step between its integer logits)."""
    with torch.no_grad():
        return float(student.output_scale(student.features(torch.as_tensor(np.asarray(states, dtype=np.float32)))))


def compare_outputs(student: QuantStudent, states: np.ndarray, other: np.ndarray) -> dict:
    """Agreement between the student and another level's raw outputs on the same states.

    Discrete: actions from integer logits (see :func:`integer_actions`). Continuous: largest
    absolute difference of the action means.
    """
    from training.students.student import first_argmax

    x = torch.as_tensor(np.asarray(states, dtype=np.float32))
    with torch.no_grad():
        ref = student.actor(x).numpy()
        if student.spec.discrete:
            scale = student_output_scale(student, states)
            ref_int = student.integer_logits(x).numpy()
            other_int = integer_logits(other, scale)
            top2 = np.sort(ref_int, axis=1)[:, -2:]
            return {"n_states": len(states),
                    "action_agreement": float((first_argmax(ref_int) == first_argmax(other_int)).mean()),
                    "max_abs_logit_diff": float(np.abs(ref - other).max()),
                    "integer_logits_equal": bool(np.array_equal(ref_int, other_int)),
                    "exact_ties": int((top2[:, 0] == top2[:, 1]).sum())}
    return {"n_states": len(states), "max_abs_action_diff": float(np.abs(ref - other).max()),
            "action_agreement": float(np.isclose(ref, other, atol=1e-5, rtol=1e-5).all(axis=1).mean())}


def export_design(run_dir: str | Path, design: str | None = None, *, force: bool = False, n_states: int = 1000,
                  out: Path | None = None) -> dict:
    """``make export``: the student's actor to ``bitstreams/<design>/policy.qonnx.onnx`` plus the parity check
    (``out``: into that folder instead, which is emptied first; ``make load-policy``'s work folder)."""

    from hw_build.design import EXPORT_FILE, QONNX_FILE, default_design_name, new_design_dir, sha256_file
    from training import atomic
    from training.qpd.distill import STUDENT_FILE, StudentPolicy, load_student
    from training.errors import FlowError
    from training.runs import read_run_config

    run_dir = Path(run_dir)
    config = read_run_config(run_dir)
    if config["kind"] != "student" or not (run_dir / STUDENT_FILE).exists():
        raise FlowError(f"run folder {run_dir} has no distilled student ({STUDENT_FILE}): run make distill first")
    student, _ = load_student(run_dir / STUDENT_FILE)
    if not student.spec.quantized:
        raise FlowError(f"the student in {run_dir} is a float network: FINN compiles quantized students only "
                        "(distil with --method qpd or direct)")
    env_id = config["env_id"]
    name = design or default_design_name(env_id, run_dir)
    if out is None:
        out = new_design_dir(name, force)
    else:
        import shutil

        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
    qonnx_path = export_actor_qonnx(student, out / QONNX_FILE, {"env_id": env_id})
    states = episode_states(env_id, StudentPolicy(student), n_states)
    parity = compare_outputs(student, states, run_qonnx(qonnx_path, states))
    record = {
        "format_version": 2, "design": name, "env_id": env_id, "run": str(run_dir), "student": student.spec.label(),
        "action": "discrete" if student.spec.discrete else "continuous",
        "student_checkpoint_sha256": sha256_file(run_dir / STUDENT_FILE), "qonnx_sha256": sha256_file(qonnx_path),
        "input_quantizer": student.input_quantizer(),
        "parity": {"levels": "Brevitas vs QONNX (qonnx execute_onnx)", "states": "real episodes driven by the student",
                   **parity},
    }
    teacher_dir = Path(config.get("teacher", ""))
    # a teacher run folder, or a user's SB3 .zip / zoo folder (training.teacher.external)
    if config.get("teacher") and ((teacher_dir / "teacher.zip").exists() or teacher_dir.suffix == ".zip"
                                  or any(teacher_dir.glob("*.zip"))):
        export_teacher_numpy(teacher_dir, env_id, out / "teacher.npz")
        record["teacher"] = {"run": str(teacher_dir), "numpy_weights": "teacher.npz"}
    atomic.write_json(out / EXPORT_FILE, record)
    print(f"exported {run_dir} to {qonnx_path}\n  parity on {parity['n_states']} states from real episodes: "
          f"action agreement {100 * parity['action_agreement']:.2f} %, " +
          (f"largest logit difference {parity['max_abs_logit_diff']:.2e}, exact ties {parity['exact_ties']}"
           if "max_abs_logit_diff" in parity else f"largest action difference {parity['max_abs_action_diff']:.2e}"))
    if parity["action_agreement"] < 1.0:
        raise FlowError(f"QONNX export of {run_dir} disagrees with Brevitas on "
                        f"{100 * (1 - parity['action_agreement']):.2f} % of states; see {out / EXPORT_FILE}")
    return record


def export_teacher_numpy(teacher_dir: Path, env_id: str, path: Path) -> Path:
    """The float teacher's actor as plain arrays, for its numpy forward pass on the board.

    Holds ``w{i}``/``b{i}`` per linear layer (PyTorch layout: out × in) and each one's activation,
    the observation normaliser (if the teacher had one) and the action bounds; a MinAtar
    teacher's convolution as ``conv0_w``/``conv0_b`` (out × in × kh × kw) and ``frame_shape``.
    """
    import io

    from training.errors import FlowError

    import torch.nn as nn

    from training import atomic
    from training.teacher.policy import TeacherPolicy

    from training.teacher.features import MinAtarCNN

    teacher = TeacherPolicy.load(teacher_dir, env_id)
    actor = teacher.actor_layers()
    extractor, linears = actor.extractor, list(actor.linears)
    arrays: dict[str, np.ndarray] = {}
    policy_act = actor.activation.__name__.lower() if actor.activation is not None else "identity"
    activations = [policy_act] * (len(linears) - 1) + ["identity"]
    if isinstance(extractor, MinAtarCNN):  # conv, ReLU, flatten (channels first), linear, ReLU
        conv = extractor.conv[0]
        arrays.update(conv0_w=conv.weight.detach().numpy().astype(np.float32),
                      conv0_b=conv.bias.detach().numpy().astype(np.float32),
                      frame_shape=np.array(teacher.model.observation_space.shape))
        linears.insert(0, extractor.linear[0])
        activations.insert(0, "relu")
    elif any(isinstance(m, (nn.Linear, nn.Conv2d)) for m in extractor.modules()):
        raise FlowError(f"the teacher of {teacher_dir} has a feature extractor ({type(extractor).__name__}) that "
                        "the numpy teacher does not implement")
    for i, layer in enumerate(linears):
        arrays[f"w{i}"] = layer.weight.detach().numpy().astype(np.float32)
        arrays[f"b{i}"] = layer.bias.detach().numpy().astype(np.float32)
    arrays["activation"] = np.array(policy_act)
    arrays["activations"] = np.array(activations)
    arrays["discrete"] = np.array(teacher.discrete)
    if teacher.normalizer is not None:
        n = teacher.normalizer
        arrays.update(obs_mean=n.mean, obs_var=n.var, obs_clip=np.array(n.clip), obs_eps=np.array(n.epsilon))
    if not teacher.discrete:
        arrays.update(low=teacher.model.action_space.low, high=teacher.model.action_space.high,
                      squash=np.array(actor.squash))
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return atomic.write_bytes(path, buf.getvalue())
