"""The schema of ``accel.json`` (format version 2), validated by pydantic before the host uses a key.

pydantic does the work: required keys, types (strict: a string is not a number), the FINN
datatypes the host can pack and emulate, and shapes bounded by what the PYNQ-Z2's fabric and
DMA buffers can hold (so a damaged ``packed_shape`` cannot make the host allocate terabytes).
The model validators then check the file against itself: shapes against their datatypes (the
packed bytes FINN's packing gives), the input datatype against the first layer's and the output
datatype against the last layer's, each layer's output against the next layer's input, the host's
input quantizer against the input datatype, the action against the last layer, and the weight
bits counted in ``deployed`` against each layer's weight datatype. :func:`validate_accel`
turns the first failure into one sentence naming the key. The arrays of ``weights.npz`` are
checked against the layers by :mod:`host.design.spec`; the FINN graph, where a workstation has
it, by ``hw_build.accel_spec.board_file_mismatches``.

pydantic is on the PYNQ image (pynq 3.1 depends on it) and in both of the project's environments.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

ACCEL_FORMAT_VERSION = 2

#: The FINN datatypes the host packs, unpacks and emulates.
DATATYPE = re.compile(r"^(BINARY|BIPOLAR|TERNARY|FLOAT32|U?INT([1-9]|[12][0-9]|3[0-2]))$")
#: Bounds from the board: a frame's values and packed bytes (the PYNQ-Z2 has 512 MB in all), layer sizes.
MAX_DIM = 1 << 16
MAX_FRAME_VALUES = 1 << 20
MAX_FRAME_BYTES = 1 << 20
MAX_LAYERS = 256
HEX64 = r"^[0-9a-f]{64}$"

Dim = Annotated[int, Field(ge=1, le=MAX_DIM)]
Name = Annotated[str, Field(min_length=1, max_length=200)]
Identifier = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")]


def datatype_range(name: str) -> tuple[int, float, float]:
    """``(bits, min, max)`` of a FINN datatype name (one that :data:`DATATYPE` accepts)."""
    if name == "FLOAT32":
        return 32, -math.inf, math.inf
    if name in ("BINARY",):
        return 1, 0, 1
    if name == "BIPOLAR":
        return 1, -1, 1
    if name == "TERNARY":
        return 2, -1, 1
    bits = int(name.lstrip("UINT"))
    if name.startswith("U"):
        return bits, 0, (1 << bits) - 1
    return bits, -(1 << (bits - 1)), (1 << (bits - 1)) - 1


def _datatype(value: str) -> str:
    if not DATATYPE.match(value):
        raise ValueError(f"'{value}' is not a FINN datatype this host packs (BINARY, BIPOLAR, TERNARY, FLOAT32, INTn or "
                         "UINTn with n from 1 to 32)")
    return value


class _Model(BaseModel):
    model_config = ConfigDict(strict=True, extra="allow")


DataType = Annotated[str, Field(max_length=16)]


class _Layer(_Model):
    name: Name
    pe: Dim
    input_dtype: DataType
    output_dtype: DataType

    @field_validator("input_dtype", "output_dtype", "weight_dtype", "acc_dtype", "threshold_dtype", check_fields=False)
    @classmethod
    def _known(cls, value: str) -> str:
        return _datatype(value)


class MVAULayer(_Layer):
    op: Literal["MVAU"]
    mw: Dim
    mh: Dim
    simd: Dim
    weight_dtype: DataType
    acc_dtype: DataType
    binary_xnor: bool
    no_activation: bool
    act_val: int
    weights: Name
    thresholds: Optional[Name]

    @model_validator(mode="after")
    def _thresholds(self) -> "MVAULayer":
        if self.no_activation != (self.thresholds is None):
            raise ValueError(f"layer {self.name}: thresholds must be null exactly when no_activation is true")
        if self.no_activation and self.output_dtype != self.acc_dtype:
            raise ValueError(f"layer {self.name} has no activation, so its output datatype ({self.output_dtype}) must "
                             f"be its accumulator's ({self.acc_dtype})")
        return self


class ThresholdingLayer(_Layer):
    op: Literal["Thresholding"]
    channels: Dim
    act_val: int
    thresholds: Name
    threshold_dtype: Optional[DataType] = None


Pair = Annotated[list[Dim], Field(min_length=2, max_length=2)]


class SlidingWindowLayer(_Layer):
    op: Literal["ConvolutionInputGenerator"]
    channels: Dim
    simd: Dim
    ifm_dim: Pair
    ofm_dim: Pair
    kernel: Pair
    stride: Pair
    dilation: Pair
    depthwise: bool


class LabelSelectLayer(_Layer):
    op: Literal["LabelSelect"]
    labels: Dim
    k: Literal[1]


Layer = Annotated[Union[MVAULayer, ThresholdingLayer, SlidingWindowLayer, LabelSelectLayer], Field(discriminator="op")]
Shape = Annotated[list[Dim], Field(min_length=2, max_length=6)]


class Stream(_Model):
    finn_datatype: DataType
    normal_shape: Shape
    folded_shape: Shape
    packed_shape: Shape

    @field_validator("finn_datatype")
    @classmethod
    def _known(cls, value: str) -> str:
        return _datatype(value)

    @model_validator(mode="after")
    def _shapes(self) -> "Stream":
        values = math.prod(self.normal_shape[1:])
        if self.normal_shape[0] != 1 or self.folded_shape[0] != 1 or self.packed_shape[0] != 1:
            raise ValueError("normal_shape, folded_shape and packed_shape must describe one frame (first dimension 1)")
        if values > MAX_FRAME_VALUES:
            raise ValueError(f"normal_shape {self.normal_shape} holds {values:,} values per frame, more than the "
                             f"{MAX_FRAME_VALUES:,} a frame on the board may")
        if math.prod(self.folded_shape[1:]) != values:
            raise ValueError(f"folded_shape {self.folded_shape} does not hold the {values} values of normal_shape "
                             f"{self.normal_shape}")
        bits = datatype_range(self.finn_datatype)[0]
        expected = [*self.folded_shape[:-1], math.ceil(self.folded_shape[-1] * bits / 8)]
        if self.packed_shape != expected:
            raise ValueError(f"packed_shape {self.packed_shape} is not the {expected} that folded_shape "
                             f"{self.folded_shape} of {self.finn_datatype} packs into")
        if math.prod(self.packed_shape) > MAX_FRAME_BYTES:
            raise ValueError(f"packed_shape {self.packed_shape} is more than the {MAX_FRAME_BYTES:,} bytes a frame's "
                             "DMA buffer may hold")
        return self


Floats = Annotated[list[float], Field(min_length=1, max_length=MAX_FRAME_VALUES)]


class QuantizeTransform(_Model):
    kind: Literal["quantize"]
    shift: Floats
    scale: Floats
    quant_scale: Annotated[float, Field(gt=0, allow_inf_nan=False)]
    zero_point: Annotated[float, Field(allow_inf_nan=False)]
    min_int: int
    max_int: int

    @model_validator(mode="after")
    def _range(self) -> "QuantizeTransform":
        if self.min_int > self.max_int:
            raise ValueError("input.transform: min_int is above max_int")
        if not all(math.isfinite(v) for v in [*self.shift, *self.scale]):
            raise ValueError("input.transform: shift and scale must be finite")
        return self


class NoTransform(_Model):
    kind: Literal["none", "binary"]


class Input(Stream):
    transform: Annotated[Union[QuantizeTransform, NoTransform], Field(discriminator="kind")]


Scale = Union[Annotated[float, Field(gt=0, allow_inf_nan=False)],
              Annotated[list[Annotated[float, Field(gt=0, allow_inf_nan=False)]], Field(min_length=1)]]
Bias = Union[Annotated[float, Field(allow_inf_nan=False)],
             Annotated[list[Annotated[float, Field(allow_inf_nan=False)]], Field(min_length=1)]]


class DiscreteAction(_Model):
    kind: Literal["discrete"]
    n: Annotated[int, Field(ge=2, le=MAX_DIM)]


class ContinuousAction(_Model):
    kind: Literal["continuous"]
    n: Dim
    output_scale: Scale
    output_bias: Optional[Bias] = None
    low: list[float]
    high: list[float]

    @model_validator(mode="after")
    def _per_action(self) -> "ContinuousAction":
        for key in ("output_scale", "output_bias", "low", "high"):
            value = getattr(self, key)
            if isinstance(value, list) and len(value) != self.n:
                raise ValueError(f"action.{key} holds {len(value)} values for {self.n} action(s): one float, or one "
                                 "per action")
        if any(lo > hi for lo, hi in zip(self.low, self.high)):
            raise ValueError("action.low is above action.high")
        return self


class Dma(_Model):
    input: Identifier
    output: Identifier

    @model_validator(mode="after")
    def _two(self) -> "Dma":
        if self.input == self.output:
            raise ValueError("dma.input and dma.output name the same DMA")
        return self


class Hashes(_Model):
    weights_npz_sha256: Annotated[str, Field(pattern=HEX64)]
    bitstream_sha256: Optional[Annotated[str, Field(pattern=HEX64)]] = None


class DeployedLayer(_Model):
    name: str
    weight_bits: Annotated[int, Field(ge=0)]


class Deployed(_Model):
    layers: list[DeployedLayer]


class Memory(_Model):
    layer: Name
    ip: Identifier
    offset: Annotated[int, Field(ge=0, le=1 << 32)]
    dat_file: Annotated[str, Field(pattern=r"^[0-9]+_[0-9]+_[A-Za-z0-9_]+\.dat$")]
    words: Annotated[int, Field(ge=1, le=1 << 24)]


class RuntimeWeights(_Model):
    """A writable design's memories (``make estimate WEIGHTS=runtime``; :mod:`host.design.policy_memory`)."""

    signature: dict[str, Any]
    signature_sha256: Annotated[str, Field(pattern=HEX64)]
    memories: Annotated[list[Memory], Field(min_length=1, max_length=MAX_LAYERS)]
    policy_sha256: Annotated[str, Field(pattern=HEX64)]


class AccelFile(_Model):
    """accel.json, format version 2 (``runtime_weights`` only in a writable design)."""

    format_version: Literal[2]
    design: Optional[Name] = None
    env_id: Name
    clock_ns: Annotated[float, Field(gt=0.5, le=1000)]
    input: Input
    output: Stream
    action: Annotated[Union[DiscreteAction, ContinuousAction], Field(discriminator="kind")]
    dma: Dma
    layers: Annotated[list[Layer], Field(min_length=1, max_length=MAX_LAYERS)]
    hashes: Hashes
    deployed: Optional[Deployed] = None
    runtime_weights: Optional[RuntimeWeights] = None

    @model_validator(mode="after")
    def _consistent(self) -> "AccelFile":
        layers = self.layers
        if self.runtime_weights is not None:
            from host.design.policy_memory import memory_words

            by_name = {layer.name: layer for layer in layers}
            for memory in self.runtime_weights.memories:
                layer = by_name.get(memory.layer)
                if not isinstance(layer, (MVAULayer, ThresholdingLayer)):
                    raise ValueError(f"runtime_weights names a memory of {memory.layer}, which is no MVAU or "
                                     "Thresholding layer of this design")
                if isinstance(layer, ThresholdingLayer) and layer.threshold_dtype is None:
                    raise ValueError(f"layer {layer.name} is writable but has no threshold_dtype")
                expected = memory_words(layer.model_dump())
                if memory.words != expected:
                    raise ValueError(f"runtime_weights: the memory of {memory.layer} holds {expected} words for its "
                                     f"layer's shape and folding, not {memory.words}")
        if self.input.finn_datatype != layers[0].input_dtype:
            raise ValueError(f"input.finn_datatype {self.input.finn_datatype} is not the first layer's input datatype "
                             f"({layers[0].input_dtype})")
        if self.output.finn_datatype != layers[-1].output_dtype:
            raise ValueError(f"output.finn_datatype {self.output.finn_datatype} is not the last layer's output datatype "
                             f"({layers[-1].output_dtype})")
        for a, b in zip(layers, layers[1:]):
            if a.output_dtype != b.input_dtype:
                raise ValueError(f"layer {a.name} outputs {a.output_dtype} but the next layer, {b.name}, takes "
                                 f"{b.input_dtype}")
        transform = self.input.transform
        if isinstance(transform, QuantizeTransform):
            _, lo, hi = datatype_range(self.input.finn_datatype)
            if transform.min_int < lo or transform.max_int > hi:
                raise ValueError(f"input.transform's codes {transform.min_int}..{transform.max_int} do not fit the "
                                 f"input datatype {self.input.finn_datatype}")
            obs_dim = math.prod(self.input.normal_shape[1:])
            for key in ("shift", "scale"):
                if len(getattr(transform, key)) not in (1, obs_dim):
                    raise ValueError(f"input.transform.{key} holds {len(getattr(transform, key))} values for "
                                     f"{obs_dim} observation values")
        last = layers[-1]
        if isinstance(self.action, DiscreteAction):
            if isinstance(last, MVAULayer) and last.no_activation:  # the host takes the argmax of the logits
                if last.mh != self.action.n or math.prod(self.output.normal_shape[1:]) != self.action.n:
                    raise ValueError(f"the logits layer {last.name} gives {last.mh} values for action.n {self.action.n}")
            elif not isinstance(last, LabelSelectLayer):
                raise ValueError("a discrete design must end in a LabelSelect layer or in an MVAU without activation "
                                 "(the logits, whose argmax the host takes)")
            elif last.labels != self.action.n:
                raise ValueError(f"the LabelSelect layer chooses among {last.labels} labels, action.n is {self.action.n}")
            if isinstance(last, LabelSelectLayer) and datatype_range(self.output.finn_datatype)[2] < self.action.n - 1:
                raise ValueError(f"output.finn_datatype {self.output.finn_datatype} cannot hold action indices up to "
                                 f"{self.action.n - 1}")
        else:
            if not isinstance(last, MVAULayer) or not last.no_activation:
                raise ValueError("a continuous design must end in an MVAU without activation (the action head)")
            if math.prod(self.output.normal_shape[1:]) != self.action.n or last.mh != self.action.n:
                raise ValueError(f"the output holds {math.prod(self.output.normal_shape[1:])} values for action.n "
                                 f"{self.action.n}")
        if self.deployed is not None:
            counted = {d.name: d.weight_bits for d in self.deployed.layers}
            for layer in layers:
                if isinstance(layer, MVAULayer) and layer.name in counted:
                    bits = layer.mw * layer.mh * datatype_range(layer.weight_dtype)[0]
                    if counted[layer.name] != bits:
                        raise ValueError(f"layer {layer.name}'s weight_dtype {layer.weight_dtype} gives {bits} weight "
                                         f"bits, deployed counts {counted[layer.name]}")
        return self


_TAGS = {"MVAU", "Thresholding", "ConvolutionInputGenerator", "LabelSelect", "discrete", "continuous", "quantize",
         "none", "binary", "list[...]", "float", "constrained-float", "constrained-list", "str", "int"}


def _where(loc: tuple) -> str:
    parts = [p for p in loc if p not in _TAGS and not (isinstance(p, str) and p.startswith(("list[", "function-")))]
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _sentence(error: dict[str, Any]) -> str:
    where = _where(error["loc"])
    message = error["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")
    if error["type"] == "missing":
        return f"key '{where}' is missing"
    if error["type"] == "union_tag_not_found":
        tag = re.search(r"discriminator '(\w+)'", error["msg"])
        return f"key '{where}.{tag.group(1) if tag else 'kind'}' is missing"
    if error["type"] == "union_tag_invalid":
        return f"'{where}' has an unknown kind ({message})"
    shown = repr(error.get("input"))
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    if not where:
        return message
    if error["type"] == "value_error" or error["type"].endswith("_error") and "is not" in message:
        return f"'{where}': {message}"
    return f"'{where}' is {shown}: {message[0].lower() + message[1:]}"


def validate_accel(data: Any) -> AccelFile:
    """Validate a parsed accel.json; raise ``ValueError`` with one sentence naming the first bad key."""
    try:
        return AccelFile.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        raise ValueError(_sentence(errors[0])) from None
