"""The gymnasium environments the flow supports, and how to make them.

An environment is supported when the PPO hyperparameter file has an entry for it; that file
is the single list (see :mod:`training.teacher.config`).
"""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import numpy as np

from training.errors import FlowError


@dataclass(frozen=True)
class EnvInfo:
    """What the flow needs to know about an environment's spaces."""

    env_id: str
    obs_dim: int
    discrete: bool
    n_actions: int  # number of discrete actions, or the dimension of a continuous action
    action_low: np.ndarray | None = None
    action_high: np.ndarray | None = None


def check_supported(env_id: str) -> None:
    """Raise :class:`FlowError` naming the supported ids if ``env_id`` is not one of them."""
    from training.teacher.config import supported_envs, unsupported_env_error

    supported = supported_envs()
    if env_id not in supported:
        raise unsupported_env_error(env_id, supported)


def make_env(env_id: str, **kwargs) -> gym.Env:
    """Make one supported environment (raises :class:`FlowError` for an unknown id)."""
    check_supported(env_id)
    return gym.make(env_id, **kwargs)


def env_info(env_id: str) -> EnvInfo:
    """Describe the observation and action spaces of a supported environment."""
    env = make_env(env_id)
    try:
        obs_space, act_space = env.observation_space, env.action_space
        if not isinstance(obs_space, gym.spaces.Box) or len(obs_space.shape) != 1:
            raise FlowError(f"{env_id}: only flat Box observations are supported, got {obs_space}")
        if isinstance(act_space, gym.spaces.Discrete):
            return EnvInfo(env_id, int(obs_space.shape[0]), True, int(act_space.n))
        if isinstance(act_space, gym.spaces.Box) and len(act_space.shape) == 1:
            return EnvInfo(
                env_id,
                int(obs_space.shape[0]),
                False,
                int(act_space.shape[0]),
                np.asarray(act_space.low, dtype=np.float32),
                np.asarray(act_space.high, dtype=np.float32),
            )
        raise FlowError(f"{env_id}: only Discrete or flat Box actions are supported, got {act_space}")
    finally:
        env.close()
