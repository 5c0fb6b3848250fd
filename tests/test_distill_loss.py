"""The actor-critic distillation loss on hand-computed cases."""

from __future__ import annotations

import math

import pytest
import torch

from training.qpd.loss import (
    LossConfig,
    discrete_policy_kl,
    distillation_loss,
    gaussian_kl,
    mean_std_matching,
    value_term,
)
from training.errors import FlowError


def test_discrete_kl_by_hand():
    teacher = torch.tensor([[0.0, math.log(3.0)]])  # p_t = (1/4, 3/4)
    student = torch.tensor([[0.0, 0.0]])  # p_s = (1/2, 1/2)
    expected = 0.25 * math.log(0.25 / 0.5) + 0.75 * math.log(0.75 / 0.5)
    assert discrete_policy_kl(student, teacher, 1.0).item() == pytest.approx(expected, rel=1e-6)


def test_temperature_softens_both_and_scales_by_t_squared():
    teacher = torch.tensor([[0.0, 2.0 * math.log(3.0)]])  # at T=2: p_t = (1/4, 3/4)
    student = torch.tensor([[0.0, 0.0]])
    expected = 4.0 * (0.25 * math.log(0.5) + 0.75 * math.log(1.5))
    assert discrete_policy_kl(student, teacher, 2.0).item() == pytest.approx(expected, rel=1e-6)


def test_kl_is_zero_only_for_the_same_distribution():
    logits = torch.randn(8, 3)
    assert discrete_policy_kl(logits, logits, 1.0).item() == pytest.approx(0.0, abs=1e-7)
    assert discrete_policy_kl(logits + 5.0, logits, 1.0).item() == pytest.approx(0.0, abs=1e-6)  # shift-invariant
    assert discrete_policy_kl(torch.zeros(8, 3), logits, 1.0).item() > 0


def test_gaussian_kl_by_hand():
    zero, one = torch.zeros(1, 1), torch.ones(1, 1)
    # KL(N(0,1) || N(1,1)) = 1/2
    assert gaussian_kl(one, zero, zero, zero).item() == pytest.approx(0.5)
    # KL(N(0,1) || N(0,e^2)) = 0.5 (e^-2 - 1) + 1
    assert gaussian_kl(zero, one, zero, zero).item() == pytest.approx(0.5 * (math.exp(-2) - 1) + 1)
    # summed over action dimensions
    assert gaussian_kl(torch.ones(1, 3), torch.zeros(3), torch.zeros(1, 3), torch.zeros(1, 3)).item() == pytest.approx(1.5)


def test_mean_std_matching_by_hand():
    assert mean_std_matching(torch.tensor([[1.0]]), torch.tensor([0.5]), torch.tensor([[3.0]]), torch.tensor([[0.0]])).item() == pytest.approx(4.25)


def test_value_terms_by_hand():
    s, t = torch.tensor([0.5, 2.0]), torch.tensor([0.0, 0.0])
    assert value_term(s, t, "huber").item() == pytest.approx((0.125 + 1.5) / 2)
    assert value_term(s, t, "mse").item() == pytest.approx((0.25 + 4.0) / 2)


def test_total_combines_the_terms_with_their_weights():
    teacher = {"logits": torch.tensor([[0.0, math.log(3.0)]]), "value": torch.tensor([0.0])}
    student_logits, student_value = torch.tensor([[0.0, 0.0]]), torch.tensor([2.0])
    cfg = LossConfig(value_coef=0.5, entropy_coef=0.1, value_loss="mse")
    total, parts = distillation_loss(student_logits, student_value, teacher, cfg, discrete=True)
    assert parts["entropy"] == pytest.approx(math.log(2))
    assert parts["value"] == pytest.approx(4.0)
    assert total.item() == pytest.approx(parts["policy"] + 0.5 * 4.0 - 0.1 * math.log(2), rel=1e-6)


def test_loss_gradient_moves_the_student_towards_the_teacher():
    teacher = {"logits": torch.tensor([[2.0, -1.0]]), "value": torch.tensor([1.0])}
    logits = torch.zeros(1, 2, requires_grad=True)
    value = torch.zeros(1, requires_grad=True)
    total, _ = distillation_loss(logits, value, teacher, LossConfig(), discrete=True)
    total.backward()
    assert logits.grad[0, 0] < 0 < logits.grad[0, 1] and value.grad[0] < 0


@pytest.mark.parametrize("kwargs", [{"temperature": 0}, {"value_loss": "l1"}, {"continuous_loss": "wasserstein"}, {"value_coef": -1}])
def test_bad_loss_settings(kwargs):
    with pytest.raises(FlowError):
        LossConfig(**kwargs)
