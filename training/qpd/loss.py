"""QPD's actor-critic distillation loss (docs/method.md).

Policy term: temperature-scaled KL(teacher ‖ student) over the softmax of the logits for
discrete actions; for continuous actions the Gaussian KL(teacher ‖ student) or plain
mean/log-std matching. Value term: Huber or MSE between the teacher's and the student's
value estimates (both standardised by the teacher's value statistics), weighted. Optional
entropy bonus on the student's policy.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from pydantic import ConfigDict
from pydantic.dataclasses import dataclass

from training.errors import FlowError

VALUE_LOSSES = ("huber", "mse")
CONTINUOUS_LOSSES = ("gaussian_kl", "mean_std")


@dataclass(config=ConfigDict(extra="forbid"))
class LossConfig:
    """Weights and shapes of the loss terms."""

    temperature: float = 1.0
    value_coef: float = 0.5
    value_loss: str = "huber"
    entropy_coef: float = 0.0
    continuous_loss: str = "gaussian_kl"

    def __post_init__(self) -> None:
        if self.temperature <= 0:
            raise FlowError(f"loss.temperature must be positive, got {self.temperature}")
        if self.value_coef < 0 or self.entropy_coef < 0:
            raise FlowError("loss.value_coef and loss.entropy_coef must be >= 0")
        if self.value_loss not in VALUE_LOSSES:
            raise FlowError(f"loss.value_loss must be one of {', '.join(VALUE_LOSSES)}, got {self.value_loss!r}")
        if self.continuous_loss not in CONTINUOUS_LOSSES:
            raise FlowError(f"loss.continuous_loss must be one of {', '.join(CONTINUOUS_LOSSES)}, got {self.continuous_loss!r}")


def discrete_policy_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Mean over the batch of T² · KL(softmax(t/T) ‖ softmax(s/T)).

    The T² factor keeps the gradient's size independent of T (Hinton et al., 2015).
    """
    t_logp = F.log_softmax(teacher_logits / temperature, dim=-1)
    s_logp = F.log_softmax(student_logits / temperature, dim=-1)
    kl = (t_logp.exp() * (t_logp - s_logp)).sum(-1)
    return kl.mean() * temperature**2


def gaussian_kl(s_mean: torch.Tensor, s_log_std: torch.Tensor, t_mean: torch.Tensor, t_log_std: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of KL(N(t_mean, t_std²) ‖ N(s_mean, s_std²)), summed over action dims."""
    s_log_std = s_log_std.expand_as(s_mean)
    t_log_std = t_log_std.expand_as(t_mean)
    var_ratio = torch.exp(2 * (t_log_std - s_log_std))
    mean_term = ((t_mean - s_mean) / torch.exp(s_log_std)) ** 2
    kl = 0.5 * (var_ratio + mean_term - 1.0) + (s_log_std - t_log_std)
    return kl.sum(-1).mean()


def mean_std_matching(s_mean: torch.Tensor, s_log_std: torch.Tensor, t_mean: torch.Tensor, t_log_std: torch.Tensor) -> torch.Tensor:
    """MSE on the means plus MSE on the log-stds (summed over action dims, mean over the batch)."""
    return ((s_mean - t_mean) ** 2).sum(-1).mean() + ((s_log_std.expand_as(t_log_std) - t_log_std) ** 2).sum(-1).mean()


def value_term(student_value: torch.Tensor, teacher_value: torch.Tensor, kind: str) -> torch.Tensor:
    """Huber (δ = 1) or MSE between value estimates."""
    if kind == "huber":
        return F.smooth_l1_loss(student_value, teacher_value)
    return F.mse_loss(student_value, teacher_value)


def distillation_loss(
    student_out: torch.Tensor,
    student_value: torch.Tensor,
    teacher: dict[str, torch.Tensor],
    cfg: LossConfig,
    *,
    discrete: bool,
    student_log_std: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The total loss and its parts.

    ``teacher`` holds ``logits`` (discrete) or ``mean`` and ``log_std`` (continuous), and
    ``value``, already standardised like ``student_value``.
    """
    if discrete:
        policy = discrete_policy_kl(student_out, teacher["logits"], cfg.temperature)
        logp = F.log_softmax(student_out, dim=-1)
        entropy = -(logp.exp() * logp).sum(-1).mean()
    else:
        fn = gaussian_kl if cfg.continuous_loss == "gaussian_kl" else mean_std_matching
        policy = fn(student_out, student_log_std, teacher["mean"], teacher["log_std"])
        entropy = (student_log_std + 0.5 * math.log(2 * math.pi * math.e)).sum()
    value = value_term(student_value, teacher["value"], cfg.value_loss)
    total = policy + cfg.value_coef * value - cfg.entropy_coef * entropy
    parts = {"loss": total.item(), "policy": policy.item(), "value": value.item(), "entropy": entropy.item()}
    return total, parts
