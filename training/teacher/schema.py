"""The teacher hyperparameter entries as pydantic models: each field's type and allowed range.

A YAML number in any notation becomes the field's type: PyYAML's YAML 1.1 resolver reads
``1e-3`` (no dot) as a *string*, so every number field here first turns a numeric string into
a number; an integer field takes ``1e5`` or ``8000.0`` but refuses ``0.5``. A wrong type or
value is refused in one sentence naming the field and what it allows
(:func:`validate_entry`).
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from training.errors import FlowError


def _number(value: Any) -> Any:
    """A numeric string as a float (``"1e-3"``, ``"3e5"``); anything else unchanged, for pydantic to judge."""
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return value
    return value


def _integer(value: Any) -> Any:
    """A whole number in any notation (``1e5``, ``"3e5"``, ``8000.0``) as an int; else unchanged."""
    value = _number(value)
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    return value


def _schedule(value: Any) -> Any:
    """A number, or ``lin_<number>`` (linear decay to 0, as in rl-zoo3)."""
    if isinstance(value, str) and value.startswith("lin_"):
        rate = _number(value[4:])
        if isinstance(rate, float) and rate > 0:
            return value
        raise ValueError(f"must be a number > 0 or 'lin_<number > 0>', got {value!r}")
    value = _number(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"must be a number > 0 or 'lin_<number > 0>', got {value!r}")
    return value


Float = Annotated[float, BeforeValidator(_number)]
Int = Annotated[int, BeforeValidator(_integer)]
Schedule = Annotated[Union[float, str], BeforeValidator(_schedule)]
Widths = list[Annotated[int, Field(ge=0)]]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Normalize(_Strict):
    """VecNormalize's switches (``normalize: {norm_obs: true, norm_reward: false}``)."""

    norm_obs: bool = True
    norm_reward: bool = True


class PolicyKwargs(_Strict):
    """The network of an entry (a mapping, never an eval'd string as in rl-zoo3)."""

    net_arch: Union[Widths, dict[Literal["pi", "vf", "qf"], Widths]] | None = None
    activation_fn: Literal["tanh", "relu"] | None = None
    ortho_init: bool | None = None
    log_std_init: Float | None = None
    squash_output: bool | None = None
    features_extractor: Literal["minatar_cnn"] | None = None  # training/teacher/features.py
    features_extractor_kwargs: dict[str, Any] | None = None


class SacPolicyKwargs(_Strict):
    """What a SAC entry's network may set."""

    net_arch: Union[Widths, dict[Literal["pi", "qf"], Widths]] | None = None
    activation_fn: Literal["tanh", "relu"] | None = None
    log_std_init: Float | None = None


class _Entry(_Strict):
    """The keys every entry has: the run's, not the algorithm's."""

    n_timesteps: Int = Field(gt=0)
    n_envs: Int = Field(1, gt=0)
    policy: Literal["MlpPolicy", "CnnPolicy"] = "MlpPolicy"
    normalize: Union[bool, Normalize] = False
    learning_rate: Schedule = 3e-4
    gamma: Float = Field(0.99, ge=0, le=1)
    batch_size: Int = Field(64, gt=0)
    use_sde: bool = False
    sde_sample_freq: Int = Field(-1, ge=-1)


class PpoEntry(_Entry):
    """A ``ppo.yml`` entry: stable-baselines3 PPO's arguments with their ranges."""

    n_steps: Int = Field(2048, gt=0)
    n_epochs: Int = Field(10, gt=0)
    gae_lambda: Float = Field(0.95, ge=0, le=1)
    clip_range: Schedule = 0.2
    clip_range_vf: Float | None = Field(None, gt=0)
    normalize_advantage: bool = True
    ent_coef: Float = Field(0.0, ge=0)
    vf_coef: Float = Field(0.5, ge=0)
    max_grad_norm: Float = Field(0.5, gt=0)
    target_kl: Float | None = Field(None, gt=0)
    policy_kwargs: PolicyKwargs | None = None


class SacEntry(_Entry):
    """A ``sac.yml`` entry: stable-baselines3 SAC's arguments with their ranges."""

    buffer_size: Int = Field(1_000_000, gt=0)
    learning_starts: Int = Field(100, ge=0)
    tau: Float = Field(0.005, gt=0, le=1)
    train_freq: Int = Field(1, gt=0)
    gradient_steps: Int = Field(1, ge=-1)
    ent_coef: Union[Literal["auto"], Annotated[str, Field(pattern=r"^auto_[0-9.eE+-]+$")], Float] = "auto"
    target_update_interval: Int = Field(1, gt=0)
    target_entropy: Union[Literal["auto"], Float] = "auto"
    use_sde_at_warmup: bool = False
    policy_kwargs: SacPolicyKwargs | None = None


ENTRIES: dict[str, type[_Entry]] = {"ppo": PpoEntry, "sac": SacEntry}


def _range(model: type[BaseModel], name: str) -> str:
    """A field's allowed range as text (``0 <= gamma <= 1``); empty where it has no bounds."""
    field = model.model_fields.get(name)
    if field is None:
        return ""
    low = high = ""
    for rule in field.metadata:
        for attr, sign in (("gt", "<"), ("ge", "<=")):
            if getattr(rule, attr, None) is not None:
                low = f"{getattr(rule, attr)} {sign} "
        for attr, sign in (("lt", "<"), ("le", "<=")):
            if getattr(rule, attr, None) is not None:
                high = f" {sign} {getattr(rule, attr)}"
    return f"{low}{name}{high}" if low or high else ""


def _sentence(env_id: str, model: type[BaseModel], error: ValidationError) -> str:
    """The most specific problem of a validation error as one sentence naming the field."""
    first = max(error.errors(), key=lambda e: len(e["loc"]))  # of a union's errors, the deepest
    loc = ".".join(str(part) for part in first["loc"]
                   if not any(c in str(part) for c in "[-") and str(part) not in ("bool", "int", "float", "str", "Normalize"))
    msg = first["msg"].removeprefix("Value error, ").replace("Input should", "should")
    if first["type"] == "extra_forbidden":
        return f"{env_id}: unknown hyperparameter {loc}"
    if first["type"] == "missing":
        return f"{env_id}: hyperparameters must set {loc}"
    allowed = _range(model, loc)
    return (f"{env_id}: {loc} {msg}" + ("" if "got" in msg else f", got {first.get('input')!r}")
            + (f" (allowed: {allowed})" if allowed else ""))


def validate_entry(env_id: str, hp: dict[str, Any], algo: str) -> dict[str, Any]:
    """``hp`` checked against the ``algo`` entry model, its numbers of the right type; only the
    keys it set. Raises :class:`FlowError` with one sentence naming the field and its range."""
    model = ENTRIES[algo]
    try:
        entry = model.model_validate(hp)
    except ValidationError as exc:
        raise FlowError(_sentence(env_id, model, exc)) from None
    return entry.model_dump(exclude_unset=True, exclude_none=False)
