"""The Brevitas student: spec checks, stage warm starts, checkpoints."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from training.errors import FlowError
from training.students.student import QuantStudent, StudentSpec, student_from_state, student_state, transfer_float_weights


def _trained(spec: StudentSpec, steps: int = 120) -> QuantStudent:
    torch.manual_seed(0)
    student = QuantStudent(spec)
    student.train()
    opt = torch.optim.Adam(student.parameters(), lr=1e-2)
    for _ in range(steps):
        x = torch.randn(64, spec.obs_dim)
        out, value = student(x)
        loss = ((out - x[:, : spec.n_out]) ** 2).mean() + (value**2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return student.eval()


SPEC = StudentSpec(obs_dim=4, n_out=2, discrete=True, hidden=(16, 16), weight_bits=4, act_bits=4)


@pytest.mark.parametrize("kwargs", [{"weight_bits": 0}, {"act_bits": 1}, {"act_bits": 9}, {"hidden": ()}, {"weight_bits": None},
                                    {"weight_bits": 2.5}, {"input_bits": True}])
def test_bad_specs(kwargs):
    with pytest.raises(FlowError):
        StudentSpec(**{**dict(obs_dim=4, n_out=2, discrete=True), **kwargs})


def test_numpy_integer_bit_widths_are_accepted():
    assert StudentSpec(obs_dim=4, n_out=2, discrete=True, weight_bits=np.int64(3), act_bits=3).weight_bits == 3


def test_weights_sit_on_the_integer_grid_and_output_scale_is_one_positive_number():
    student = _trained(SPEC)
    hidden = student.trunk[0].quant_weight()
    assert hidden.scale.shape == (16, 1)  # per output channel
    ints = (hidden.value / hidden.scale).detach()
    assert torch.allclose(ints, ints.round(), atol=1e-4) and ints.min() >= -8 and ints.max() <= 7
    out_scale = student.actor_out.quant_weight().scale
    assert out_scale.numel() == 1 and out_scale.item() > 0


def test_one_bit_weights_are_bipolar():
    student = _trained(SPEC.with_bits(1, 2))
    for layer in (student.trunk[0], student.actor_out):
        q = layer.quant_weight()
        assert set((q.value / q.scale).detach().round().unique().tolist()) <= {-1.0, 1.0}
    assert student.trunk[0].quant_weight().scale.shape == (16, 1) and student.actor_out.quant_weight().scale.numel() == 1


def test_checkpoint_round_trip_gives_the_same_outputs():
    student = _trained(SPEC)
    again = student_from_state(student_state(student))
    x = torch.randn(100, 4)
    assert torch.equal(student.actor(x), again.actor(x))


def test_stage_warm_start_copies_weights_and_reinitialises_scales():
    high = _trained(SPEC.with_bits(8, 8))
    low = QuantStudent(SPEC.with_bits(2, 2))
    transfer_float_weights(high, low)
    assert torch.equal(low.trunk[0].weight, high.trunk[0].weight)
    assert torch.equal(low.critic_out.weight, high.critic_out.weight)
    low.train()
    low(torch.randn(64, 4))
    # The naive warm start, a strict state-dict load, carries the 8-bit range into 2 bits.
    carried = QuantStudent(SPEC.with_bits(2, 2))
    carried.train()
    carried(torch.randn(64, 4))
    carried.load_state_dict(high.state_dict())
    w = high.trunk[0].weight
    fresh_q, carried_q = low.trunk[0].quant_weight(), carried.trunk[0].quant_weight()
    assert not torch.allclose(fresh_q.scale, carried_q.scale)
    # Scales set from the weights' statistics at 2 bits fit the weights better than the carried range.
    assert ((fresh_q.value - w) ** 2).mean() < ((carried_q.value - w) ** 2).mean()


def test_float_student_and_back():
    float_student = QuantStudent(SPEC.with_bits(None, None))
    assert not float_student.spec.quantized and float_student.spec.input_bits is None
    quant = QuantStudent(float_student.spec.with_bits(3, 3))
    transfer_float_weights(float_student, quant)
    assert quant.spec.input_bits == 8 and torch.equal(quant.trunk[0].weight, float_student.trunk[0].weight)
