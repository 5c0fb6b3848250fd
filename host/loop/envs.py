"""Making the gymnasium environments a design runs against, on the board and everywhere else.

The families gymnasium does not register itself are registered here (MinAtar), with the same
episode limit the training stage uses, so the host's episodes are the training stage's episodes.
"""

from __future__ import annotations

import gymnasium as gym

from host.errors import HostError

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
        raise HostError(f"{env_id} needs the minatar package (pinned 1.0.15 in the locks; make install / make host-env)") from None
    finally:
        root.disabled = was
    minatar.gym.register_envs()


def make_env(env_id: str, **kwargs) -> gym.Env:
    """``gym.make(env_id)`` after :func:`register_family`, MinAtar cut at :data:`MINATAR_TIME_LIMIT` steps."""
    register_family(env_id)
    if env_id.startswith("MinAtar/"):
        kwargs.setdefault("max_episode_steps", MINATAR_TIME_LIMIT)
    try:
        return gym.make(env_id, **kwargs)
    except gym.error.Error as exc:
        raise HostError(f"cannot make environment {env_id}: {exc}") from None
