"""The gymnasium environments the flow supports, and how to make them.

An environment is supported when the PPO hyperparameter file has an entry for it; that file
is the single list (see :mod:`training.teacher.config`).
"""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import numpy as np

from host.loop.envs import MINATAR_TIME_LIMIT  # noqa: F401  (the one episode limit, re-exported)
from training.errors import FlowError


@dataclass(frozen=True)
class EnvInfo:
    """What the flow needs to know about an environment's spaces."""

    env_id: str
    obs_dim: int  # values per observation (a frame's height × width × channels)
    discrete: bool
    n_actions: int  # number of discrete actions, or the dimension of a continuous action
    action_low: np.ndarray | None = None
    action_high: np.ndarray | None = None
    obs_shape: tuple[int, ...] = ()  # the observation's own shape: (obs_dim,), or (height, width, channels)
    binary_obs: bool = False  # every value is 0 or 1 (MinAtar's frames)

    @property
    def pixels(self) -> bool:
        """Whether observations are frames (height × width × channels) rather than flat vectors."""
        return len(self.obs_shape) == 3


def check_supported(env_id: str) -> None:
    """Raise :class:`FlowError` naming the supported ids if ``env_id`` is not one of them."""
    from training.teacher.config import supported_envs, unsupported_env_error

    supported = supported_envs()
    if env_id not in supported:
        raise unsupported_env_error(env_id, supported)


def make_env(env_id: str, **kwargs) -> gym.Env:
    """Make one supported environment (raises :class:`FlowError` for an unknown id), as the host
    makes it (:func:`host.loop.envs.make_env`: MinAtar registered and cut at its episode limit)."""
    from host.loop.envs import make_env as host_make_env
    from host.errors import HostError

    check_supported(env_id)
    try:
        return host_make_env(env_id, **kwargs)
    except HostError as exc:
        raise FlowError(str(exc)) from None


def env_info(env_id: str) -> EnvInfo:
    """Describe the observation and action spaces of a supported environment."""
    env = make_env(env_id)
    try:
        obs_space, act_space = env.observation_space, env.action_space
        if not isinstance(obs_space, gym.spaces.Box) or len(obs_space.shape) not in (1, 3):
            raise FlowError(f"{env_id}: only flat or image (height × width × channels) Box observations are supported, "
                            f"got {obs_space}")
        shape = tuple(int(d) for d in obs_space.shape)
        binary = obs_space.dtype == np.bool_ or (bool(np.all(obs_space.low == 0)) and bool(np.all(obs_space.high == 1))
                                                 and np.issubdtype(obs_space.dtype, np.integer))
        obs = {"obs_dim": int(np.prod(shape)), "obs_shape": shape, "binary_obs": bool(binary)}
        if isinstance(act_space, gym.spaces.Discrete):
            return EnvInfo(env_id, discrete=True, n_actions=int(act_space.n), **obs)
        if isinstance(act_space, gym.spaces.Box) and len(act_space.shape) == 1:
            return EnvInfo(env_id, discrete=False, n_actions=int(act_space.shape[0]),
                           action_low=np.asarray(act_space.low, dtype=np.float32),
                           action_high=np.asarray(act_space.high, dtype=np.float32), **obs)
        raise FlowError(f"{env_id}: only Discrete or flat Box actions are supported, got {act_space}")
    finally:
        env.close()
