"""Teacher hyperparameters: loading the rl-zoo3-style YAML files and turning them into PPO or SAC arguments.

``ppo.yml`` lists the supported environments; ``sac.yml`` holds SAC entries for some of them
(``ALGO=sac``: the teacher kind is a setting).
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import yaml

from training.errors import FlowError

#: The teacher algorithms and their hyperparameter files (``training/teacher/hyperparams/``).
ALGOS = ("ppo", "sac")
DEFAULT_HYPERPARAMS = "ppo.yml"

# The constructor arguments an entry may set, per algorithm (their types and ranges: training.teacher.schema).
_ALGO_KEYS = {
    "ppo": {"learning_rate", "n_steps", "batch_size", "n_epochs", "gamma", "gae_lambda", "clip_range",
            "clip_range_vf", "normalize_advantage", "ent_coef", "vf_coef", "max_grad_norm", "use_sde",
            "sde_sample_freq", "target_kl", "policy_kwargs"},
    "sac": {"learning_rate", "buffer_size", "learning_starts", "batch_size", "tau", "gamma", "train_freq",
            "gradient_steps", "ent_coef", "target_update_interval", "target_entropy", "use_sde", "sde_sample_freq",
            "use_sde_at_warmup", "policy_kwargs"},
}
#: SB3's own default activation of each algorithm's networks.
DEFAULT_ACTIVATION = {"ppo": "tanh", "sac": "relu"}


def _default_path(algo: str = "ppo") -> Path:
    return Path(__file__).resolve().parent / "hyperparams" / f"{algo}.yml"


def check_algo(algo: str) -> str:
    """``algo`` if it is a teacher algorithm, else :class:`FlowError` naming them."""
    if algo not in ALGOS:
        raise FlowError(f"unknown teacher algorithm {algo!r}; known: {', '.join(ALGOS)}")
    return algo


def load_hyperparam_file(path: str | os.PathLike | None = None, algo: str = "ppo") -> dict[str, dict[str, Any]]:
    """Read a hyperparameter file (default: ``training/teacher/hyperparams/<algo>.yml``)."""
    path = Path(path) if path is not None else _default_path(check_algo(algo))
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise FlowError(f"hyperparameter file {path} does not exist") from None
    except yaml.YAMLError as exc:
        raise FlowError(f"hyperparameter file {path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise FlowError(f"hyperparameter file {path} must map environment ids to mappings of settings")
    return data


def unsupported_env_error(env_id: str, supported: list[str]) -> FlowError:
    """The error for an environment id without a hyperparameter entry."""
    return FlowError(
        f"environment '{env_id}' is not supported; supported: {', '.join(supported)} "
        "(add an entry to training/teacher/hyperparams/ppo.yml to support another)"
    )


def supported_envs(path: str | os.PathLike | None = None) -> list[str]:
    """The environment ids that have a hyperparameter entry."""
    return list(load_hyperparam_file(path))


def load_hyperparams(env_id: str, path: str | os.PathLike | None = None, algo: str = "ppo") -> dict[str, Any]:
    """Return the validated ``algo`` hyperparameters of ``env_id`` as plain YAML-able data."""
    table = load_hyperparam_file(path, algo)
    if env_id not in table:
        if algo != "ppo" and env_id in supported_envs():
            raise FlowError(f"{env_id} has no {algo.upper()} entry (entries: {', '.join(table)}); add one to "
                            f"training/teacher/hyperparams/{algo}.yml or train the PPO teacher")
        raise unsupported_env_error(env_id, supported_envs() if algo != "ppo" else list(table))
    return validate_hyperparams(env_id, copy.deepcopy(table[env_id]), algo)


def validate_hyperparams(env_id: str, hp: dict[str, Any], algo: str = "ppo") -> dict[str, Any]:
    """The entry with its numbers of the right type (``lr: 1e-3``, a string to YAML 1.1, is a float),
    validated by the pydantic models of :mod:`training.teacher.schema`; a wrong key, type or value
    raises :class:`FlowError` naming the field and its allowed range."""
    from training.teacher.schema import validate_entry

    return validate_entry(env_id, hp, check_algo(algo))


def parse_net_arch(text: str) -> list[int]:
    """Parse ``"256,256"`` into ``[256, 256]`` (raises :class:`FlowError`)."""
    try:
        sizes = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        sizes = []
    if not sizes or min(sizes) <= 0:
        raise FlowError(f"--net-arch must be comma-separated positive layer widths, e.g. 256,256; got '{text}'")
    return sizes


def _parse_schedule(env_id: str, key: str, value: Any) -> tuple[str, float]:
    if isinstance(value, str) and value.startswith("lin_"):
        try:
            return "linear", float(value[4:])
        except ValueError:
            pass
    elif isinstance(value, (int, float)):
        return "constant", float(value)
    raise FlowError(f"{env_id}: {key} must be a number or 'lin_<number>', got {value!r}")


def normalize_settings(hp: dict[str, Any]) -> dict[str, bool]:
    """The VecNormalize settings of an entry: ``{'norm_obs': bool, 'norm_reward': bool}``."""
    norm = hp.get("normalize", False)
    if isinstance(norm, bool):
        return {"norm_obs": norm, "norm_reward": norm}
    return {"norm_obs": bool(norm.get("norm_obs", True)), "norm_reward": bool(norm.get("norm_reward", True))}


def ppo_kwargs(env_id: str, hp: dict[str, Any]) -> dict[str, Any]:
    """Turn a validated entry into keyword arguments for ``stable_baselines3.PPO``."""
    return algo_kwargs(env_id, hp, "ppo")


def algo_kwargs(env_id: str, hp: dict[str, Any], algo: str) -> dict[str, Any]:
    """Turn a validated entry into keyword arguments for ``stable_baselines3.PPO`` or ``SAC``."""
    import torch.nn as nn
    from stable_baselines3.common.utils import LinearSchedule

    kwargs = {k: copy.deepcopy(v) for k, v in hp.items() if k in _ALGO_KEYS[algo]}
    for key in ("learning_rate", "clip_range"):
        if key in kwargs:
            kind, value = _parse_schedule(env_id, key, kwargs[key])
            kwargs[key] = LinearSchedule(value, 0.0, 1.0) if kind == "linear" else value
    pk = dict(kwargs.get("policy_kwargs") or {})
    pk["activation_fn"] = {"tanh": nn.Tanh, "relu": nn.ReLU}[pk.get("activation_fn", DEFAULT_ACTIVATION[algo])]
    if "features_extractor" in pk:
        from training.teacher.features import FEATURE_EXTRACTORS

        pk["features_extractor_class"] = FEATURE_EXTRACTORS[pk.pop("features_extractor")]
    kwargs["policy_kwargs"] = pk
    return kwargs
