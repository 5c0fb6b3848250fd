"""A flat quantized student with its weights and scales read once: PPO's rollouts of QAT PPO.

While PPO collects a rollout the student cannot change, yet Brevitas re-quantizes every weight
and recomputes every scale on each call: for a 2x32 MuJoCo student that per-call Python is most
of a rollout step (``bench/bench_qat_rollout.py``). Brevitas's own ``quant_inference_mode``
caches them, but on a fresh flat student (input quantizer, float biases) its first call can
recurse without end in Brevitas 0.13, so this module does the caching itself.

It replays Brevitas's eval-mode arithmetic op for op, in the same order, on the values Brevitas
computed once: the input affine, then for each quantizer ``IntQuant`` (``x / scale + zero_point``,
round half to even, clamp to the integer range, ``- zero_point``, ``* scale``), and
``F.linear`` with the quantized weight and the float bias, as ``QuantLinear`` calls it. The
outputs are therefore bit for bit Brevitas's (tests/test_baselines.py), so a QAT PPO run with
it is the run without it. Eval-mode scales do not depend on the input (a learned value, or the
statistics buffer before initialisation), which is what makes reading them once valid.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from training.errors import FlowError
from training.students.student import QuantStudent, StudentSpec, act_int_quant, deterministic_actions


class _FrozenQuant:
    """One activation quantizer's eval-mode ``IntQuant``, its scale and range read once."""

    def __init__(self, quant_tensor, int_quant) -> None:
        bits = quant_tensor.bit_width
        self.scale = quant_tensor.scale.detach()
        self.zero_point = quant_tensor.zero_point.detach()
        self.min_int = int_quant.min_int(bits).detach()
        self.max_int = int_quant.max_int(bits).detach()

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.round(x / self.scale + self.zero_point)
        y = torch.clamp(y, self.min_int, self.max_int)
        return (y - self.zero_point) * self.scale


class FrozenStudent:
    """A flat quantized :class:`QuantStudent`'s eval forward, weights and scales read at construction.

    Valid while the student's parameters do not change (one PPO rollout, one evaluation); build
    a new one after each update.
    """

    @staticmethod
    def supports(spec: StudentSpec) -> bool:
        """Whether a student of ``spec`` can be frozen: flat and quantized (frames take Brevitas's own mode)."""
        return spec.quantized and not spec.conv and not spec.binary_input

    @torch.no_grad()
    def __init__(self, student: QuantStudent) -> None:
        spec = student.spec
        if not self.supports(spec):
            raise FlowError("FrozenStudent is for flat quantized students (frame students use quant_inference_mode)")
        if student.training:
            raise FlowError("FrozenStudent reads eval-mode scales: put the student in eval mode first")
        self.shift, self.obs_scale = student.obs_shift, student.obs_scale
        probe = torch.zeros(1, spec.obs_dim)
        qt = student.input_quant(probe)
        self.input = _FrozenQuant(qt, act_int_quant(student.input_quant))
        self.layers: list[tuple[torch.Tensor, torch.Tensor | None, _FrozenQuant]] = []
        layers = list(student.trunk)
        for linear, relu in zip(layers[::2], layers[1::2]):
            weight = linear.quant_weight().value.detach()
            bias = linear.bias.detach() if linear.bias is not None else None
            qt = relu(F.linear(qt.value, weight, bias))
            self.layers.append((weight, bias, _FrozenQuant(qt, act_int_quant(relu))))
        out_quant = student.actor_out.quant_weight()
        self.out_weight = out_quant.value.detach()
        self.out_bias = student.actor_out.bias.detach() if student.actor_out.bias is not None else None
        last = self.layers[-1][2] if self.layers else self.input
        self.discrete = spec.discrete
        # Only a hardware argmax needs it, and it is per tensor there (a continuous per-action affine is not).
        self.output_scale = (last.scale * out_quant.scale.detach()).reshape(()) if spec.discrete else None

    @torch.no_grad()
    def features(self, obs: torch.Tensor) -> torch.Tensor:
        """The last hidden layer's dequantized output (``QuantStudent.features(obs).value``)."""
        if obs.dim() != 2:
            obs = obs.reshape(len(obs), -1)
        x = self.input((obs - self.shift) * self.obs_scale)
        for weight, bias, quant in self.layers:
            x = quant(torch.relu(F.linear(x, weight, bias)))
        return x

    @torch.no_grad()
    def actor(self, features: torch.Tensor) -> torch.Tensor:
        """Logits or Gaussian mean from :meth:`features`' output (``QuantStudent.actor``)."""
        return F.linear(features, self.out_weight, self.out_bias)

    @torch.no_grad()
    def act(self, obs: np.ndarray) -> np.ndarray:
        """Deterministic actions for a batch of raw observations, as :meth:`QuantStudent.act` takes them.

        Discrete: argmax of the integer accumulators (``QuantStudent.integer_logits``), ties
        towards the lowest index; continuous: the mean.
        """
        out = self.actor(self.features(torch.as_tensor(np.asarray(obs, dtype=np.float32))))
        return deterministic_actions(out, self.discrete, self.output_scale)
