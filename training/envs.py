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


#: MinAtar registers no time limit; episodes are cut here (a good Breakout agent otherwise plays on).
MINATAR_TIME_LIMIT = 10_000


def register_family(env_id: str) -> None:
    """Register the gymnasium ids of ``env_id``'s family where gymnasium does not know them itself.

    MinAtar (``MinAtar/<Game>-v1``) declares a gymnasium entry point that gymnasium 1.x no
    longer loads, so its ``register_envs()`` is called here (once; its warning that seaborn is
    missing concerns plotting only and is silenced).
    """
    if not env_id.startswith("MinAtar/") or env_id in gym.registry:
        return
    import logging

    root = logging.getLogger()
    was, root.disabled = root.disabled, True
    try:
        import minatar.gym
    except ImportError:
        raise FlowError(f"{env_id} needs the minatar package: make install (the lock pins minatar 1.0.15)") from None
    finally:
        root.disabled = was
    minatar.gym.register_envs()


def make_env(env_id: str, **kwargs) -> gym.Env:
    """Make one supported environment (raises :class:`FlowError` for an unknown id)."""
    check_supported(env_id)
    register_family(env_id)
    if env_id.startswith("MinAtar/"):
        kwargs.setdefault("max_episode_steps", MINATAR_TIME_LIMIT)
    return gym.make(env_id, **kwargs)


def env_info(env_id: str) -> EnvInfo:
    """Describe the observation and action spaces of a supported environment."""
    env = make_env(env_id)
    try:
        obs_space, act_space = env.observation_space, env.action_space
        if isinstance(obs_space, gym.spaces.Box) and len(obs_space.shape) == 3:
            raise FlowError(f"{env_id} has image observations {obs_space.shape}: its teacher trains (make teacher), "
                            "but students, export and the host take flat observations only so far")
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
