"""A trained student exports to QONNX, and the QONNX graph gives the same actions."""

from __future__ import annotations

import numpy as np

from hw_build.export import export_actor_qonnx, run_qonnx
from training.qpd.distill import STUDENT_FILE, load_student
from training.qpd.replay import Collector
from training.teacher.policy import TeacherPolicy


def test_qonnx_graph_gives_the_students_actions_on_real_states(short_qpd_student, cartpole_teacher, tmp_path):
    run_dir, _ = short_qpd_student
    student, _ = load_student(run_dir / STUDENT_FILE)
    path = export_actor_qonnx(student, tmp_path / "policy.qonnx.onnx")
    states = Collector("CartPole-v1", 4, 77_000).collect(TeacherPolicy.load(cartpole_teacher).sample, 300)
    torch_out = student.actor(__import__("torch").as_tensor(states)).detach().numpy()
    onnx_out = run_qonnx(path, states)
    assert np.allclose(onnx_out, torch_out, atol=1e-5)
    top2 = np.sort(torch_out, axis=1)[:, -2:]
    decisive = (top2[:, 1] - top2[:, 0]) > 1e-5  # exact ties are the hardware tie rule's business
    assert decisive.mean() > 0.9
    assert (onnx_out.argmax(1) == torch_out.argmax(1))[decisive].all()


def test_exported_graph_is_built_from_finn_friendly_nodes(short_qpd_student, tmp_path):
    from qonnx.core.modelwrapper import ModelWrapper

    student, _ = load_student(short_qpd_student[0] / STUDENT_FILE)
    model = ModelWrapper(str(export_actor_qonnx(student, tmp_path / "p.onnx")))
    ops = {node.op_type for node in model.graph.node}
    assert ops <= {"Sub", "Mul", "Quant", "Gemm", "MatMul", "Relu"}, ops
    assert not list(tmp_path.glob("*.tmp"))
