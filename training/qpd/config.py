"""The one config of a distillation run (QPD, its ablations and the float-student baseline).

Defaults work on every supported environment; a YAML file (``--config``) or command-line
flags override any field. Unknown keys and impossible values are refused with one sentence.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import field
from pathlib import Path
from typing import Any, Literal, Union

import yaml
from pydantic import ConfigDict, ValidationError
from pydantic.dataclasses import dataclass

from training.qpd.finetune import FinetuneConfig
from training.qpd.loss import LossConfig
from training.errors import FlowError
from training.students.student import (COLLECT_STATS_STEPS, MAX_BITS, MIN_WEIGHT_BITS, arch_label, check_bit_width,
                                       check_hidden, student_act_bits)

METHODS = ("qpd", "direct", "float")
#: The precision ladder QPD walks down by default, truncated at the target.
DEFAULT_LADDER = (8, 6, 4, 3, 2, 1)
FLAT_HIDDEN = [32, 32]
#: The pixel student by default: one 3×3 convolution of 8 channels and a 16-unit layer (MinAtar
#: Breakout: 8,528 weights, 0.4 % of the teacher's bits at 2 bits).
PIXEL_CONV, PIXEL_HIDDEN = [8], [16]


@dataclass(config=ConfigDict(extra="forbid"))
class QPDConfig:
    """Everything a distillation run needs; saved as the run's ``config.yaml``.

    Attributes:
        method: ``qpd`` (precision schedule), ``direct`` (one stage at the target bits, the
            ablation without the transition) or ``float`` (a float student, for PTQ later).
        schedule: weight bits per stage, high to low, ending at ``weight_bits``; the first
            entry may be ``"float"``. Default: 8, 6, 4, 3, 2, 1 down to the target.
        act_bits: default ``max(weight_bits, 2)`` (1-bit weights are bipolar; activations stop at 2).
        hidden: dense layer widths; default ``[32, 32]``, or :data:`PIXEL_HIDDEN` for frames.
        conv: output channels of each convolution (pixel students, binary frames only);
            default none, or :data:`PIXEL_CONV` for an environment with frames.
        kernel / stride: of every convolution (valid padding).
        narrow_weights: narrow-range weights (2 bits: {-1, 0, 1}), which FINN's RTL MVU needs on
            the xc7z020 (``make codegen IMPL=rtl``); ``NARROW=1`` on ``make distill``.
        updates: Adam updates over all stages together (the same budget for every method).
        final_stage_share: share of ``updates`` spent in the last stage (the rest is split
            evenly over the earlier stages). 0.7: with 0.4, QPD at 2 bits collapsed on one seed
            of three on Acrobot-v1 and LunarLander-v3 (too few updates at the target
            precision); with 0.7 it keeps the teacher on every seed (README, "QPD results").
        mix_start / mix_end: share of each batch drawn from student-visited (DAgger) states,
            moving linearly from start to end over the run.
        first_bits / last_bits: weight bits of the first layer (the first convolution or dense
            layer) and of the output layer; default ``weight_bits``. They are never below the
            target: while the schedule is above them, those layers follow it.
        output_affine: continuous actions only: the output layer gets one learned scale and one
            bias per action, which the host applies to the accelerator's integer accumulators
            (``action = scale[a] × acc[a] + bias[a]``), so they cost the fabric nothing.
        critic: ``shared`` (the value head sits on the student's low-bit trunk, so the value
            term trains the deployed layers too) or ``separate`` (a float MLP of
            ``critic_hidden`` on the observation: the value term leaves the actor alone).
        float_warm_start: a float stage first (a share ``1 / stages`` of the early budget), also
            for ``direct``, so every method starts its quantized stages from a float student.
        lr_schedule: ``stage`` (a cosine from ``lr`` to ``lr × lr_final_factor`` in every stage,
            Adam restarted per stage) or ``global`` (one cosine over all stages together).
        clip_targets: clip the teacher's Gaussian means to the action range (a PPO teacher's mean
            can leave it; the environment clips the action, so only the clipped part matters).
        log_std_init: the student's log-std starts at ``zero`` or at the ``teacher``'s (the
            Gaussian KL divides mean errors by the student's variance: starting at the teacher's
            narrow std weighs the means as the teacher's distribution does).
        finetune: RL fine-tuning after the last stage (:class:`training.qpd.finetune.FinetuneConfig`:
            PPO on the quantized student with a KL term towards the teacher); none by default.
    """

    env_id: str = "CartPole-v1"
    seed: int = 0
    method: str = "qpd"
    hidden: list[int] | None = None
    conv: list[int] | None = None
    kernel: int = 3
    stride: int = 1
    weight_bits: int = 2
    act_bits: int | None = None
    input_bits: int = 8
    narrow_weights: bool = False
    schedule: list[Union[int, Literal["float"]]] | None = None
    updates: int = 8000
    final_stage_share: float = 0.7
    batch_size: int = 256
    lr: float = 1e-3
    lr_final_factor: float = 0.1
    teacher_states: int = 50_000
    dagger: bool = True
    dagger_interval: int = 500
    dagger_steps: int = 2000
    student_memory: int = 50_000
    mix_start: float = 0.0
    mix_end: float = 0.5
    n_envs: int = 8
    eval_episodes: int = 100
    stage_eval_episodes: int = 10
    agreement_states: int = 5000
    first_bits: int | None = None
    last_bits: int | None = None
    output_affine: bool = False
    critic: Literal["shared", "separate"] = "shared"
    critic_hidden: list[int] = field(default_factory=lambda: [64, 64])
    float_warm_start: bool = False
    lr_schedule: Literal["stage", "global"] = "stage"
    clip_targets: bool = False
    log_std_init: Literal["zero", "teacher"] = "zero"
    finetune: FinetuneConfig | None = None
    loss: LossConfig = field(default_factory=LossConfig)

    def __post_init__(self) -> None:
        if isinstance(self.loss, dict):
            self.loss = _build(LossConfig, self.loss, "loss")
        if isinstance(self.finetune, dict):
            self.finetune = _build(FinetuneConfig, self.finetune, "finetune")
        if self.act_bits is None:
            self.act_bits = student_act_bits(self.weight_bits) if isinstance(self.weight_bits, int) else self.weight_bits
        if self.hidden is None or self.conv is None:
            conv, hidden = default_architecture(self.env_id)
            if self.hidden is None:
                self.hidden = hidden
            if self.conv is None:
                self.conv = conv
        self.hidden = [int(h) for h in self.hidden]
        self.conv = [int(c) for c in self.conv]
        self.validate()

    def validate(self) -> None:
        """Raise :class:`FlowError` for an impossible config."""
        if self.method not in METHODS:
            raise FlowError(f"method must be one of {', '.join(METHODS)}, got {self.method!r}")
        for name in ("weight_bits", "act_bits", "input_bits"):
            check_bit_width(name, getattr(self, name))
        check_hidden(self.hidden, self.conv)
        if self.conv and (min(self.conv) <= 0 or self.kernel <= 0 or self.stride <= 0):
            raise FlowError(f"conv channels, kernel and stride must be positive, got {self.conv}, {self.kernel}, {self.stride}")
        for name in ("updates", "batch_size", "teacher_states", "dagger_interval", "dagger_steps",
                     "student_memory", "n_envs", "eval_episodes", "stage_eval_episodes", "agreement_states"):
            if int(getattr(self, name)) <= 0:
                raise FlowError(f"{name} must be positive, got {getattr(self, name)}")
        if not 0 < self.final_stage_share <= 1 or not 0 < self.lr_final_factor <= 1:
            raise FlowError("final_stage_share and lr_final_factor must be in (0, 1]")
        if not 0 <= self.mix_start <= 1 or not 0 <= self.mix_end <= 1:
            raise FlowError("mix_start and mix_end must be in [0, 1]")
        if self.lr <= 0:
            raise FlowError(f"lr must be positive, got {self.lr}")
        for name in ("first_bits", "last_bits"):
            bits = getattr(self, name)
            if bits is not None:
                check_bit_width("weight_bits", bits)
                if self.method != "float" and bits < self.weight_bits:
                    raise FlowError(f"{name} ({bits}) must not be below weight_bits ({self.weight_bits}): those layers "
                                    "are the ones kept at higher precision")
        if not self.critic_hidden or min(self.critic_hidden) <= 0:
            raise FlowError(f"critic_hidden widths must be positive, got {self.critic_hidden}")
        stages = self.stages()
        short = [u for u in self.stage_updates() if u < 2 * COLLECT_STATS_STEPS]
        if short:
            raise FlowError(
                f"{self.updates} updates over {len(stages)} stages leaves a stage {min(short)} updates; "
                f"each needs at least {2 * COLLECT_STATS_STEPS} (the quantizers initialise their scales over "
                f"{COLLECT_STATS_STEPS}): raise updates or shorten the schedule"
            )

    def stages(self) -> list[tuple[int | None, int | None]]:
        """``(weight_bits, act_bits)`` of each stage, ``(None, None)`` for a float stage."""
        if self.method == "float":
            return [(None, None)]
        if self.method == "direct":
            return [(None, None)] * self.float_warm_start + [(self.weight_bits, self.act_bits)]
        schedule = self.schedule if self.schedule is not None else (
            [b for b in DEFAULT_LADDER if b > self.weight_bits] + [self.weight_bits])
        if not schedule:
            raise FlowError("schedule must not be empty")
        if self.float_warm_start and schedule[0] != "float":
            schedule = ["float", *schedule]
        out: list[tuple[int | None, int | None]] = []
        for i, entry in enumerate(schedule):
            if entry == "float":
                if i != 0:
                    raise FlowError("schedule: 'float' can only be the first stage")
                out.append((None, None))
                continue
            if not isinstance(entry, int) or not MIN_WEIGHT_BITS <= entry <= MAX_BITS:
                raise FlowError(f"schedule entries must be 'float' or integers from {MIN_WEIGHT_BITS} to {MAX_BITS}, "
                                f"got {entry!r}")
            # Activations walk down with the weights but never below their target, and the last
            # stage is the target itself (activations below the weights included: w8a4 ends at a4).
            out.append((max(entry, self.weight_bits),
                        self.act_bits if entry == self.weight_bits else max(entry, self.act_bits)))
        bits = [w for w, _ in out if w is not None]
        if any(a <= b for a, b in zip(bits, bits[1:])):
            raise FlowError(f"schedule must go strictly from high to low precision, got {schedule}")
        if bits[-1:] != [self.weight_bits] or schedule[-1] != self.weight_bits:
            raise FlowError(f"schedule must end at the target weight_bits {self.weight_bits}, got {schedule}")
        return out

    def stage_updates(self) -> list[int]:
        """Adam updates of each stage; they add up to ``updates``."""
        n = len(self.stages())
        if n == 1:
            return [self.updates]
        last = int(round(self.updates * self.final_stage_share))
        early = (self.updates - last) // (n - 1)
        counts = [early] * (n - 1) + [self.updates - early * (n - 1)]
        return counts

    def to_dict(self) -> dict[str, Any]:
        """Plain data for ``config.yaml``."""
        return dataclasses.asdict(self)

    def effective_dict(self) -> dict[str, Any]:
        """:meth:`to_dict` without the settings this run does not use (``final_stage_share``
        of a one-stage schedule), for deciding whether two runs are the same computation."""
        data = self.to_dict()
        if len(self.stages()) == 1:
            data.pop("final_stage_share")
        for key, legacy in RECIPE_DEFAULTS.items():  # settings added later: absent where they keep the old computation
            if data.get(key) == legacy:
                data.pop(key)
        if data.get("critic") != "separate":
            data.pop("critic_hidden", None)
        if not self.narrow_weights:  # the former behaviour: runs and trials made before the setting match
            data.pop("narrow_weights")
        if not self.conv:  # likewise for the pixel settings of an MLP student
            for key in ("conv", "kernel", "stride"):
                data.pop(key)
        return data

    def arch_label(self) -> str:
        """The architecture part of names, e.g. ``2x32`` or ``c8-1x16`` (as :meth:`StudentSpec.label`)."""
        return arch_label(self.hidden, self.conv, self.kernel, self.stride)

    def run_name(self) -> str:
        """Default run folder name, e.g. ``qpd-2x32-w2a2-s0`` or ``qpd-2x32-w3a3-f8l8-s0``."""
        arch = self.arch_label()
        if self.method == "float":
            bits = "float"
        else:
            bits = f"w{self.weight_bits}a{self.act_bits}" + ("n" if self.narrow_weights else "") + \
                   layer_bits_suffix(self.weight_bits, self.first_bits, self.last_bits, self.output_affine)
        return f"{self.method}-{arch}-{bits}{'-ft' if self.finetune else ''}-s{self.seed}"


#: Settings added with the recipe study (issue: QPD where compression is hard) and the value each
#: had before: a stored config without them, or with these values, is the same computation.
RECIPE_DEFAULTS: dict[str, Any] = {
    "first_bits": None, "last_bits": None, "output_affine": False, "critic": "shared", "float_warm_start": False,
    "lr_schedule": "stage", "clip_targets": False, "log_std_init": "zero", "finetune": None,
}


def layer_bits_suffix(weight_bits: int | None, first_bits: int | None, last_bits: int | None,
                      output_affine: bool = False) -> str:
    """The part of a student's name that says where its layers differ from ``weight_bits``:
    ``-f8l8`` (first and last layer at 8 bits), ``-l4``, and ``-oa`` for a per-action output affine."""
    parts = ""
    if first_bits is not None and first_bits != weight_bits:
        parts += f"f{first_bits}"
    if last_bits is not None and last_bits != weight_bits:
        parts += f"l{last_bits}"
    return (f"-{parts}" if parts else "") + ("-oa" if output_affine else "")


def dense_layers(env_id: str, width: int | None = None, depth: int | None = None) -> list[int]:
    """A student's dense widths from a width and a depth (``--width``/``--depth``, ``WIDTH=``/``DEPTH=``),
    each defaulting to ``env_id``'s default student; depth 0: none (the output layer reads the
    convolutions)."""
    if depth is not None and depth < 0:
        raise FlowError(f"--depth must be 0 or more, got {depth}")
    default = default_architecture(env_id)[1]
    return [width or default[0]] * (len(default) if depth is None else depth)


def default_architecture(env_id: str) -> tuple[list[int], list[int]]:
    """The default student of ``env_id``: ``(conv channels, hidden widths)`` (no convolution for flat observations)."""
    from training.envs import env_info

    if env_info(env_id).pixels:
        return list(PIXEL_CONV), list(PIXEL_HIDDEN)
    return [], list(FLAT_HIDDEN)


def _build(cls, data: dict[str, Any], where: str):
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise FlowError(f"unknown {where} setting(s): {', '.join(sorted(unknown))}; known: {', '.join(sorted(names))}")
    try:
        return cls(**data)
    except ValidationError as exc:
        raise FlowError(validation_sentence(exc, where)) from None
    except TypeError as exc:
        raise FlowError(f"bad {where} settings: {exc}") from None


def validation_sentence(exc: ValidationError, where: str) -> str:
    """pydantic's first complaint as one sentence naming the setting, what it allows and what it got."""
    err = exc.errors(include_url=False)[0]
    names = [str(part) for part in err["loc"] if isinstance(part, str)]
    if err["type"] in ("unexpected_keyword_argument", "extra_forbidden") and len(names) >= 2:  # in a nested section
        section = names[0]
        nested = {"loss": LossConfig, "finetune": FinetuneConfig}.get(section)
        known = ", ".join(f.name for f in dataclasses.fields(nested)) if nested else ""
        return f"unknown {section} setting {names[-1]!r}" + (f"; known: {known}" if known else "")
    loc = names[0] if names and names[0] not in ("loss", "finetune") else ".".join(names[:2]) or where
    more = f" (and {exc.error_count() - 1} more problem(s))" if exc.error_count() > 1 else ""
    got = "" if "got" in err["msg"] else f", got {err.get('input')!r}"
    return f"{where} setting {loc!r}: {err['msg'].rstrip('.')}{got}{more}"


def same_computation(stored: Any, cfg: QPDConfig) -> bool:
    """Whether a stored config (a run's ``config.yaml`` ``qpd`` section, a trial record's
    ``distill_config``) describes the distillation ``cfg`` asks for, ignoring unused settings."""
    if not isinstance(stored, dict):
        return False
    wanted = json.loads(json.dumps(cfg.effective_dict()))
    stored = {k: v for k, v in json.loads(json.dumps(stored)).items() if k in wanted}
    return stored == wanted


def read_settings(path: str | Path) -> dict[str, Any]:
    """The mapping of distillation settings in a YAML file (not yet checked against QPDConfig)."""
    try:
        loaded = yaml.safe_load(Path(path).read_text())
    except FileNotFoundError:
        raise FlowError(f"config file {path} does not exist") from None
    except yaml.YAMLError as exc:
        raise FlowError(f"config file {path} is not valid YAML: {exc}") from None
    if loaded is not None and not isinstance(loaded, dict):
        raise FlowError(f"config file {path} must be a mapping of settings")
    return dict(loaded or {})


def load_qpd_config(path: str | Path | None = None, **overrides: Any) -> QPDConfig:
    """Defaults, then the YAML file's settings, then ``overrides`` (ignoring ``None`` values)."""
    data: dict[str, Any] = read_settings(path) if path is not None else {}
    data.update({k: v for k, v in overrides.items() if v is not None})
    return _build(QPDConfig, data, "distillation")
