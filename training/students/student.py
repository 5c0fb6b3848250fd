"""The low-bit Brevitas student: a small MLP built so that FINN can compile its actor.

Built for FINN by construction (see docs/design-decisions.md):

- the observation goes through a fixed per-channel affine (``(obs - shift) * scale``, set from
  teacher-visited states so every channel fills the input quantizer's range; it exports as
  Sub/Mul nodes that FINN's streamlining absorbs into the first thresholds), then a signed
  per-tensor ``QuantIdentity`` (8 bits by default);
- hidden layers are ``QuantLinear`` with per-output-channel learned weight scales (MSE
  initialised; FINN folds them into the thresholds) and float biases, each followed by an
  unsigned ``QuantReLU`` with a learned per-tensor scale;
- the actor's output layer has no bias and one positive per-tensor scale, so the hardware's
  integer argmax (LabelSelect) picks the same action as the float logits; for continuous
  actions its output, times that scale, is the Gaussian mean;
- the critic head is a float ``Linear`` on the last hidden features: it trains the shared
  trunk (the actor-critic part of the loss) and is never deployed.

Pixel students (``conv`` set, binary frames such as MinAtar's): the frame (height × width ×
channels, the environment's own layout) is taken as is, 0 or 1, with no affine and no input
quantizer (the accelerator's input is ``BINARY``); it is transposed to channels-first for
``QuantConv2d`` layers (valid padding, per-output-channel weight scales, float biases, each
followed by a ``QuantReLU``), flattened, and continues into the dense layers above. FINN cancels
the transposes against those of its own convolution lowering, so the accelerator streams the
frame channels-last, as the environment gives it.

``weight_bits=None`` gives the same architecture in float (the float-distillation baseline).
"""

from __future__ import annotations

import numbers
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn as nn
from brevitas.core.scaling import ScalingImplType
from brevitas.core.stats import StatsOp
from brevitas.nn import QuantConv2d, QuantIdentity, QuantLinear, QuantReLU
from brevitas.quant.binary import SignedBinaryWeightPerTensorConst
from brevitas.quant.scaled_int import (
    Int8ActPerTensorFloatMSE,
    Int8WeightPerChannelFloatMSE,
    Int8WeightPerTensorFloatMSE,
    Uint8ActPerTensorFloatMSE,
)

from training.errors import FlowError

MAX_BITS = 8
#: Weights go down to 1 bit (bipolar, ±scale); activations to 2 bits: Brevitas exports a 1-bit
#: QuantReLU as BipolarQuant (±1), which is not a ReLU's {0, 1}.
MIN_WEIGHT_BITS, MIN_ACT_BITS = 1, 2


def arch_label(hidden, conv=(), kernel: int = 3, stride: int = 1) -> str:
    """A student architecture's name in labels, run folders and keys: ``2x32``, ``32-16``, or
    ``c8-1x16`` / ``c16s2-1x32`` for convolutions (kernel and stride named where not 3 and 1);
    ``c32k4s2`` alone for convolutions read out by the output layer with no dense layer between."""
    hidden, conv = list(hidden), list(conv)
    arch = "" if not hidden else f"{len(hidden)}x{hidden[0]}" if len(set(hidden)) == 1 else "-".join(map(str, hidden))
    if conv:
        arch = "c" + "-".join(map(str, conv)) + (f"k{kernel}" if kernel != 3 else "") + \
               (f"s{stride}" if stride != 1 else "") + ("-" + arch if arch else "")
    return arch


def dense_label(hidden) -> str:
    """A student's dense layers as pages name them: ``2×32``, ``32-16``, or ``no dense layer``
    (a convolutional student read out by its output layer)."""
    return arch_label(hidden).replace("x", "×") if hidden else "no dense layer"


def student_act_bits(weight_bits: int, act_bits: int | None = None) -> int:
    """A student's activation width: ``act_bits`` where a setting gives one (``ABITS=``, a grid's
    ``act_bits``), else the default for ``weight_bits``: the same, but at least :data:`MIN_ACT_BITS`."""
    return int(act_bits) if act_bits else max(weight_bits, MIN_ACT_BITS)


def check_hidden(hidden, conv) -> None:
    """Raise :class:`FlowError` unless ``hidden`` are positive dense widths; a convolutional student
    may have none (its output layer reads the last feature map, flattened)."""
    if (not hidden and not conv) or (hidden and min(hidden) <= 0):
        raise FlowError(f"hidden widths must be positive (none only after convolutions), got {list(hidden)}")


def check_bit_width(name: str, bits: object) -> None:
    """Raise :class:`FlowError` unless ``bits`` is a bit width a student supports for ``name``
    (``weight_bits``: 1 to 8; ``act_bits`` and ``input_bits``: 2 to 8)."""
    low = MIN_WEIGHT_BITS if name == "weight_bits" else MIN_ACT_BITS
    if isinstance(bits, bool) or not isinstance(bits, numbers.Integral) or not low <= bits <= MAX_BITS:
        raise FlowError(f"{name} must be an integer from {low} to {MAX_BITS}, got {bits!r}")


#: Training steps over which activation scales are initialised (see :class:`ReluQuant`).
COLLECT_STATS_STEPS = 100


class HiddenWeightQuant(Int8WeightPerChannelFloatMSE):
    """Signed per-output-channel weights, scale learned after an MSE initialisation.

    ``narrow_range=False`` keeps the full signed grid (2 bits: {-2, -1, 0, 1}) instead of the
    ternary grid the default narrow range gives at 2 bits.
    """

    scaling_impl_type = ScalingImplType.PARAMETER_FROM_STATS
    narrow_range = False


class OutputWeightQuant(Int8WeightPerTensorFloatMSE):
    """Signed weights with one positive, learned per-tensor scale (the hardware argmax needs it)."""

    scaling_impl_type = ScalingImplType.PARAMETER_FROM_STATS
    narrow_range = False


class BipolarHiddenWeightQuant(SignedBinaryWeightPerTensorConst):
    """1-bit weights: ±scale per output channel, the scale learned from the mean |w|."""

    scaling_impl_type = ScalingImplType.PARAMETER_FROM_STATS
    scaling_stats_op = StatsOp.AVE
    scaling_per_output_channel = True


class BipolarOutputWeightQuant(SignedBinaryWeightPerTensorConst):
    """1-bit weights with one positive, learned per-tensor scale (for the hardware argmax)."""

    scaling_impl_type = ScalingImplType.PARAMETER_FROM_STATS
    scaling_stats_op = StatsOp.AVE


def weight_quant(bits: int, output: bool, narrow: bool = False):
    """The weight quantizer of a hidden or output layer at ``bits``.

    ``narrow``: the symmetric grid without its most negative value (2 bits: {-1, 0, 1}), which
    FINN's RTL MVU needs on the xc7z020's DSP48E1 (``make codegen IMPL=rtl``).
    """
    if bits == 1:
        return BipolarOutputWeightQuant if output else BipolarHiddenWeightQuant
    quant = OutputWeightQuant if output else HiddenWeightQuant
    return quant.let(narrow_range=True) if narrow else quant


class ReluQuant(Uint8ActPerTensorFloatMSE):
    """Unsigned per-tensor activations, scale learned after an MSE initialisation.

    The scale is initialised from the first ``collect_stats_steps`` training batches; until
    then eval mode and export disagree, so every stage trains at least that long.
    """

    collect_stats_steps = COLLECT_STATS_STEPS



class InputQuant(Int8ActPerTensorFloatMSE):
    """Signed per-tensor input quantizer (the observation after the fixed per-channel affine)."""

    collect_stats_steps = COLLECT_STATS_STEPS



@dataclass
class StudentSpec:
    """Everything needed to rebuild a student; stored in its checkpoint."""

    obs_dim: int
    n_out: int
    discrete: bool
    hidden: tuple[int, ...] = (32, 32)
    weight_bits: int | None = 2
    act_bits: int | None = 2
    input_bits: int | None = 8
    obs_shift: list[float] = field(default_factory=list)
    obs_scale: list[float] = field(default_factory=list)
    narrow_weights: bool = False
    #: A frame's (height, width, channels); empty for a flat observation.
    obs_shape: tuple[int, ...] = ()
    #: Output channels of each convolution (pixel students), before the dense ``hidden`` layers.
    conv: tuple[int, ...] = ()
    kernel: int = 3
    stride: int = 1
    #: The observation is binary (0/1) and goes in as is: no affine, no input quantizer.
    binary_input: bool = False
    #: Weight bits of the first layer (first convolution or dense layer) and of the output layer;
    #: None: ``weight_bits``. A layer is never below ``weight_bits`` (see :meth:`layer_weight_bits`).
    first_bits: int | None = None
    last_bits: int | None = None
    #: Continuous actions: the output layer has a bias and one weight scale per action, applied
    #: on the host with the bias (``action = scale[a] × accumulator[a] + bias[a]``).
    output_affine: bool = False
    #: Hidden widths of a separate float critic on the observation; empty: the value head sits
    #: on the actor's last hidden layer (the shared trunk). Never deployed.
    critic_hidden: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        self.hidden = tuple(int(h) for h in self.hidden)
        self.conv = tuple(int(c) for c in self.conv)
        self.critic_hidden = tuple(int(h) for h in self.critic_hidden)
        for name in ("first_bits", "last_bits"):
            if getattr(self, name) is not None:
                check_bit_width("weight_bits", getattr(self, name))
        if self.output_affine and self.discrete:
            raise FlowError("output_affine is for continuous actions: a hardware argmax needs one output scale")
        self.obs_shape = tuple(int(d) for d in self.obs_shape) or (self.obs_dim,)
        if int(np.prod(self.obs_shape)) != self.obs_dim:
            raise FlowError(f"obs_shape {self.obs_shape} does not hold {self.obs_dim} values")
        if self.binary_input:
            self.input_bits = 1 if self.weight_bits is not None else None
        for name in ("weight_bits", "act_bits") + (() if self.binary_input else ("input_bits",)):
            if getattr(self, name) is not None:  # None: a float layer
                check_bit_width(name, getattr(self, name))
        if self.conv:
            if len(self.obs_shape) != 3:
                raise FlowError(f"a convolutional student needs frames (height, width, channels), got {self.obs_shape}")
            if not self.binary_input:
                raise FlowError("convolutional students take binary frames (MinAtar's) only so far")
            if min(self.conv) <= 0 or self.kernel <= 0 or self.stride <= 0:
                raise FlowError(f"conv channels, kernel and stride must be positive, got {self.conv}, {self.kernel}, {self.stride}")
            if min(self.conv_output_hw()) <= 0:
                raise FlowError(f"{len(self.conv)} convolutions of kernel {self.kernel}, stride {self.stride} do not fit "
                                f"a {self.obs_shape[0]}×{self.obs_shape[1]} frame")
        if (self.weight_bits is None) != (self.act_bits is None):
            raise FlowError("weight_bits and act_bits must both be set or both be float (None)")
        check_hidden(self.hidden, self.conv)
        if not self.obs_shift:
            self.obs_shift = [0.0] * self.obs_dim
        if not self.obs_scale:
            self.obs_scale = [1.0] * self.obs_dim
        if len(self.obs_shift) != self.obs_dim or len(self.obs_scale) != self.obs_dim:
            raise FlowError(f"obs_shift/obs_scale must have {self.obs_dim} entries")

    @property
    def quantized(self) -> bool:
        """True unless this is the float architecture."""
        return self.weight_bits is not None

    def conv_output_hw(self) -> tuple[int, int]:
        """Height and width of the last convolution's output (valid padding)."""
        h, w = self.obs_shape[:2]
        for _ in self.conv:
            h, w = (h - self.kernel) // self.stride + 1, (w - self.kernel) // self.stride + 1
        return h, w

    def flat_features(self) -> int:
        """Width of the input of the first dense layer (the flattened last feature map, or the observation)."""
        if not self.conv:
            return self.obs_dim
        h, w = self.conv_output_hw()
        return h * w * self.conv[-1]

    def layer_counts(self) -> list[tuple[int, int]]:
        """``(weights, biases)`` of each deployed layer in order: convolutions, dense layers, output (no bias)."""
        counts, cin = [], self.obs_shape[-1]
        for c in self.conv:
            counts.append((self.kernel * self.kernel * cin * c, c))
            cin = c
        sizes = [self.flat_features(), *self.hidden, self.n_out]
        counts += [(a * b, b) for a, b in zip(sizes[:-2], sizes[1:-1])]
        counts.append((sizes[-2] * sizes[-1], 0))
        return counts

    def layer_weight_bits(self, layer: str) -> int | None:
        """Weight bits of the ``first``, ``hidden`` or ``output`` layer (None in float): the layer's
        own setting where it is above ``weight_bits``, else ``weight_bits`` (so while a precision
        schedule is above a layer's own bits, that layer follows the schedule)."""
        if self.weight_bits is None:
            return None
        own = {"first": self.first_bits, "output": self.last_bits}.get(layer)
        return max(self.weight_bits, own) if own is not None else self.weight_bits

    def with_bits(self, weight_bits: int | None, act_bits: int | None) -> "StudentSpec":
        """The same student at other bit widths."""
        data = asdict(self)
        data.update(weight_bits=weight_bits, act_bits=act_bits)
        if not self.binary_input:  # a binary input stays binary at every precision
            if weight_bits is None:
                data["input_bits"] = None
            elif data["input_bits"] is None:
                data["input_bits"] = 8
        return StudentSpec(**data)

    def label(self) -> str:
        """Short name, e.g. ``2x32-w2a2``, ``2x32-w4a4n`` (narrow-range weights) or ``2x32-float``."""
        arch = arch_label(self.hidden, self.conv, self.kernel, self.stride)
        if not self.quantized:
            return f"{arch}-float"
        narrow = "n" if self.narrow_weights else ""
        first, last = self.layer_weight_bits("first"), self.layer_weight_bits("output")
        parts = (f"f{first}" if first != self.weight_bits else "") + (f"l{last}" if last != self.weight_bits else "")
        return (f"{arch}-w{self.weight_bits}a{self.act_bits}{narrow}" + (f"-{parts}" if parts else "")
                + ("-oa" if self.output_affine else ""))


class QuantStudent(nn.Module):
    """Actor-critic student: shared quantized trunk, quantized actor head, float critic head."""

    def __init__(self, spec: StudentSpec) -> None:
        super().__init__()
        self.spec = spec
        self.register_buffer("obs_shift", torch.tensor(spec.obs_shift, dtype=torch.float32))
        self.register_buffer("obs_scale", torch.tensor(spec.obs_scale, dtype=torch.float32))
        q = spec.quantized
        self.input_quant = (
            QuantIdentity(act_quant=InputQuant, bit_width=spec.input_bits, return_quant_tensor=True)
            if q and not spec.binary_input else nn.Identity()
        )
        convs: list[nn.Module] = []
        cin = spec.obs_shape[-1]
        for i, c in enumerate(spec.conv):
            if q:
                bits = spec.layer_weight_bits("first" if i == 0 else "hidden")
                convs.append(QuantConv2d(cin, c, spec.kernel, stride=spec.stride, bias=True,
                                         weight_quant=weight_quant(bits, False, spec.narrow_weights),
                                         weight_bit_width=bits, return_quant_tensor=False))
                convs.append(QuantReLU(act_quant=ReluQuant, bit_width=spec.act_bits, return_quant_tensor=True))
            else:
                convs += [nn.Conv2d(cin, c, spec.kernel, stride=spec.stride), nn.ReLU()]
            cin = c
        self.convs = nn.Sequential(*convs)
        layers: list[nn.Module] = []
        width = spec.flat_features()
        for i, h in enumerate(spec.hidden):
            if q:
                bits = spec.layer_weight_bits("first" if i == 0 and not spec.conv else "hidden")
                layers.append(QuantLinear(width, h, bias=True, weight_quant=weight_quant(bits, False, spec.narrow_weights),
                                          weight_bit_width=bits, return_quant_tensor=False))
                layers.append(QuantReLU(act_quant=ReluQuant, bit_width=spec.act_bits, return_quant_tensor=True))
            else:
                layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        self.trunk = nn.Sequential(*layers)
        if q:
            bits = spec.layer_weight_bits("output")
            # A per-action affine (continuous) takes the hidden layers' per-channel quantizer: one scale per action.
            self.actor_out = QuantLinear(width, spec.n_out, bias=spec.output_affine,
                                         weight_quant=weight_quant(bits, not spec.output_affine, spec.narrow_weights),
                                         weight_bit_width=bits, return_quant_tensor=False)
        else:
            self.actor_out = nn.Linear(width, spec.n_out, bias=spec.output_affine)
        if spec.critic_hidden:
            sizes = [spec.obs_dim, *spec.critic_hidden]
            mlp: list[nn.Module] = []
            for a, b in zip(sizes[:-1], sizes[1:]):
                mlp += [nn.Linear(a, b), nn.ReLU()]
            self.critic = nn.Sequential(*mlp, nn.Linear(sizes[-1], 1))
        else:
            self.critic_out = nn.Linear(width, 1)
        # State-independent log-std of the Gaussian for continuous actions (not deployed).
        self.log_std = nn.Parameter(torch.zeros(spec.n_out), requires_grad=not spec.discrete)

    def features(self, obs: torch.Tensor):
        """The last hidden layer's output (a QuantTensor when quantized)."""
        if self.spec.conv:  # a binary frame, as is, channels-last to channels-first
            if tuple(obs.shape[1:]) != self.spec.obs_shape:  # flat rows (the export's input is a frame)
                obs = obs.reshape(len(obs), *self.spec.obs_shape)
            return self.trunk(torch.flatten(self.convs(obs.permute(0, 3, 1, 2)), 1))
        if obs.dim() != 2:  # frames or other shapes as rows (the export's graph gets rows and has no reshape)
            obs = obs.reshape(len(obs), -1)
        x = (obs - self.obs_shift) * self.obs_scale
        return self.trunk(self.input_quant(x))

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(actor_output, value)``: logits or Gaussian mean, and the value estimate."""
        h = self.features(obs)
        out = self.actor_out(h)
        if self.spec.critic_hidden:  # a separate float critic on the observation (after the fixed affine)
            flat = obs.reshape(len(obs), -1)
            value = self.critic((flat - self.obs_shift) * self.obs_scale)
        else:
            value = self.critic_out(h.value if hasattr(h, "value") else h)
        return _as_tensor(out), value.squeeze(-1)

    def actor(self, obs: torch.Tensor) -> torch.Tensor:
        """The deployed part: observation to logits (discrete) or action mean (continuous)."""
        return _as_tensor(self.actor_out(self.features(obs)))

    def output_scale(self, h) -> torch.Tensor | None:
        """The scale of the actor's output (input activation scale × output weight scale), or None in float."""
        if not self.spec.quantized:
            return None
        scale = h.scale * self.actor_out.quant_weight().scale
        return scale.reshape(()) if scale.numel() == 1 else scale.reshape(-1)

    @torch.no_grad()
    def input_quantizer(self) -> dict[str, Any]:
        """The input stage as the host runs it (``host.datapath.quantizer``): the fixed affine, then the
        input quantizer's scale, zero point, bit width and integer range, all float32 values."""
        if not self.spec.quantized:
            raise FlowError("a float student has no input quantizer")
        if self.spec.binary_input:
            return {"binary": True, "bit_width": 1, "signed": False, "narrow_range": False, "min_int": 0, "max_int": 1}
        self.eval()
        qt = self.input_quant(torch.zeros(1, self.spec.obs_dim))
        int_quant = self._input_int_quant()
        bits = qt.bit_width
        return {"shift": self.obs_shift.tolist(), "scale": self.obs_scale.tolist(),
                "quant_scale": float(qt.scale.reshape(())), "zero_point": float(qt.zero_point.reshape(())),
                "bit_width": int(bits), "signed": bool(qt.signed), "narrow_range": bool(int_quant.narrow_range),
                "min_int": int(int_quant.min_int(bits)), "max_int": int(int_quant.max_int(bits))}

    @torch.no_grad()
    def input_codes(self, obs: torch.Tensor) -> torch.Tensor:
        """The input quantizer's integer codes of a batch of raw observations, by Brevitas's own
        ``IntQuant.to_int`` (the reference the host's quantizer is checked against); a binary
        frame's codes are its values."""
        if self.spec.binary_input:
            return obs.reshape(len(obs), -1).to(torch.int64)
        x = (obs - self.obs_shift) * self.obs_scale
        qt = self.input_quant(x)
        return self._input_int_quant().to_int(qt.scale, qt.zero_point, qt.bit_width, x)

    def _input_int_quant(self):
        return act_int_quant(self.input_quant)

    @torch.no_grad()
    def integer_logits(self, obs: torch.Tensor) -> torch.Tensor:
        """The output layer's integer accumulators: the values the hardware compares.

        Exact ties between actions are ties here; the float logits of two equal accumulators
        can differ in the last bit, which is why actions are taken from these.
        """
        h = self.features(obs)
        return torch.round(_as_tensor(self.actor_out(h)) / self.output_scale(h))

    @torch.no_grad()
    def act(self, obs: np.ndarray) -> np.ndarray:
        """Deterministic actions for a batch of raw observations (argmax, or the mean).

        Discrete and quantized: argmax of :meth:`integer_logits`, ties broken towards the
        lowest action index, the rule of FINN's LabelSelect (see README, verification).
        """
        h = self.features(torch.as_tensor(np.asarray(obs, dtype=np.float32)))
        return deterministic_actions(_as_tensor(self.actor_out(h)), self.spec.discrete,
                                     self.output_scale(h) if self.spec.discrete else None)


def deterministic_actions(out: torch.Tensor, discrete: bool, output_scale: torch.Tensor | None) -> np.ndarray:
    """A student's actions from its actor output: the mean (continuous), or the argmax of the
    integer accumulators ``round(out / output_scale)`` (the float logits where ``output_scale``
    is None), ties towards the lowest index, as FINN's LabelSelect breaks them."""
    if not discrete:
        return out.numpy()
    values = out if output_scale is None else torch.round(out / output_scale)
    return first_argmax(values.numpy())


def act_int_quant(act_layer: nn.Module):
    """The ``IntQuant`` inside a Brevitas activation layer (QuantIdentity, QuantReLU): its integer range."""
    return act_layer.act_quant.fused_activation_quant_proxy.tensor_quant.int_quant


def first_argmax(values: np.ndarray) -> np.ndarray:
    """Index of the largest value in each row, the lowest index among exact ties."""
    return np.argmax(values, axis=-1)


def _as_tensor(x) -> torch.Tensor:
    return x.value if hasattr(x, "value") else x


class ActorOnly(nn.Module):
    """The student's actor as its own module: what is exported to QONNX and deployed."""

    def __init__(self, student: QuantStudent) -> None:
        super().__init__()
        self.student = student

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """Observation to logits or action mean."""
        return self.student.actor(obs)


def transfer_float_weights(src: QuantStudent, dst: QuantStudent) -> None:
    """Copy weights, biases, critic and buffers from ``src`` to ``dst``, never quantizer state.

    This is a precision stage's warm start: ``dst``'s quantizers then initialise their scales
    from the copied weights' statistics (and from the data, for activations) on its first
    forward passes, instead of carrying ``src``'s ranges (docs/design-decisions.md: a loaded quantizer keeps
    its old range and marks its statistics as collected).
    """
    src_state = src.state_dict()
    keep = {
        k: v for k, v in src_state.items()
        if not any(tag in k for tag in ("_quant", "quant.", "act_quant", "scaling_impl", "tensor_quant"))
    }
    missing, unexpected = dst.load_state_dict(keep, strict=False)
    if unexpected:
        raise RuntimeError(f"unexpected keys in warm start: {unexpected}")
    weights = [k for k in keep if k.endswith("weight") or k.endswith("bias")]
    not_loaded = [k for k in weights if k in missing]
    if not_loaded:
        raise RuntimeError(f"warm start did not load {not_loaded}")


@torch.no_grad()
def calibrate(module: nn.Module, states: np.ndarray, *, batches: int = COLLECT_STATS_STEPS + 20,
              batch_size: int = 256, seed: int = 0) -> nn.Module:
    """Post-training quantization: set every quantizer's scale from data, without training.

    Weight scales initialise from the weights on the first forward pass; activation scales
    from the statistics of the first ``COLLECT_STATS_STEPS`` training-mode batches. No
    parameter is updated. Returns ``module`` in eval mode.
    """
    rng = np.random.default_rng(seed)
    module.train()
    for _ in range(batches):
        module(torch.as_tensor(states[rng.integers(0, len(states), size=batch_size)], dtype=torch.float32))
    return module.eval()


def student_state(student: QuantStudent) -> dict[str, Any]:
    """What a student checkpoint holds: the spec and the state dict."""
    return {"spec": asdict(student.spec), "state_dict": student.state_dict()}


def student_from_state(state: dict[str, Any]) -> QuantStudent:
    """Rebuild a student from :func:`student_state`'s output."""
    student = QuantStudent(StudentSpec(**state["spec"]))
    if student.spec.quantized:
        # Run once so brevitas's stats-initialised scales exist before loading their values.
        student.eval()
        with torch.no_grad():
            student(torch.zeros(1, *student.spec.obs_shape))
    student.load_state_dict(state["state_dict"])
    student.eval()
    return student
