"""Counting a deployed network's size in bits, the figure QPD's compression ratio is made of.

Only the actor is deployed, so only the actor is counted, for the teacher and the student
alike: every weight at its bit width, every bias at 32 bits (float32 in the teacher; in the
accelerator biases become part of integer thresholds, which we do not count more cheaply).
Quantizer scales, the input affine and the critic are not counted (a handful of numbers, or
not deployed).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from training.students.student import StudentSpec

BIAS_BITS = 32
FLOAT_BITS = 32


@dataclass(frozen=True)
class SizeCount:
    """Parameters and bits of a deployed actor."""

    n_weights: int
    n_biases: int
    weight_bits: int
    bias_bits: int

    @property
    def total_bits(self) -> int:
        """Weights and biases together."""
        return self.weight_bits + self.bias_bits

    def to_dict(self) -> dict[str, int]:
        """JSON-able fields, including ``total_bits``."""
        return {**asdict(self), "total_bits": self.total_bits}


def student_size(spec: StudentSpec) -> SizeCount:
    """Size of a student's actor (convolutions and hidden layers with biases; the output layer's
    bias only with a per-action output affine), each layer's weights at that layer's own bits."""
    counts = spec.layer_counts()
    if spec.output_affine:
        counts[-1] = (counts[-1][0], spec.n_out)
    roles = ["first"] + ["hidden"] * (len(counts) - 2) + ["output"]
    weights, biases = sum(w for w, _ in counts), sum(b for _, b in counts)
    wbits = sum(w * (spec.layer_weight_bits(role) or FLOAT_BITS) for (w, _), role in zip(counts, roles))
    return SizeCount(weights, biases, wbits, biases * BIAS_BITS)


def teacher_size(teacher) -> SizeCount:
    """Size of a teacher's actor (:meth:`~training.teacher.policy.TeacherPolicy.actor_layers`: its
    feature extractor's layers, e.g. a CNN's, then the policy MLP and the action head), float32."""
    import torch.nn as nn

    actor = teacher.actor_layers()
    layers = [m for m in actor.extractor.modules() if isinstance(m, (nn.Linear, nn.Conv2d))] + list(actor.linears)
    weights = sum(m.weight.numel() for m in layers)
    biases = sum(m.bias.numel() for m in layers if m.bias is not None)
    return SizeCount(weights, biases, weights * FLOAT_BITS, biases * BIAS_BITS)
