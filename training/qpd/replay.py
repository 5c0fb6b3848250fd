"""The distillation data: teacher-visited states and student-visited states (DAgger).

Both memories hold raw observations only; the teacher labels every sampled batch when it is
drawn, so student-visited states get the teacher's targets as DAgger prescribes.
"""

from __future__ import annotations

from typing import Callable

import gymnasium as gym
import numpy as np

from training.envs import make_env


class ObservationMemory:
    """A ring buffer of observations with uniform sampling."""

    def __init__(self, capacity: int, obs_shape: int | tuple[int, ...]) -> None:
        shape = (obs_shape,) if isinstance(obs_shape, int) else tuple(obs_shape)
        self.data = np.zeros((capacity, *shape), dtype=np.float32)
        self.capacity, self.size, self.pos = capacity, 0, 0

    def __len__(self) -> int:
        return self.size

    def add(self, obs: np.ndarray) -> None:
        """Append a batch of observations, overwriting the oldest once full."""
        for row in np.asarray(obs).reshape(-1, *self.data.shape[1:]):
            self.data[self.pos] = row
            self.pos = (self.pos + 1) % self.capacity
            self.size = min(self.size + 1, self.capacity)

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` observations drawn uniformly with replacement."""
        return self.data[rng.integers(0, self.size, size=n)]


class Collector:
    """Steps ``n_envs`` environments with any batch policy and yields the visited observations.

    Episodes are seeded from ``seed_base`` upwards, far from the evaluation seeds, so the
    states the student learns from never include an evaluation episode's.
    """

    def __init__(self, env_id: str, n_envs: int, seed_base: int) -> None:
        self.envs: list[gym.Env] = [make_env(env_id) for _ in range(n_envs)]
        self.next_seed = seed_base
        self.obs = np.stack([self._reset(env) for env in self.envs])

    def _reset(self, env: gym.Env) -> np.ndarray:
        obs, _ = env.reset(seed=self.next_seed)
        self.next_seed += 1
        return np.asarray(obs, dtype=np.float32)

    def collect(self, policy: Callable[[np.ndarray], np.ndarray], n_steps: int) -> np.ndarray:
        """Run ``policy`` for ``n_steps`` steps in total (across the envs); return the observations seen."""
        seen = []
        for _ in range(max(1, n_steps // len(self.envs))):
            seen.append(self.obs.copy())
            actions = policy(self.obs)
            for i, env in enumerate(self.envs):
                obs, _, terminated, truncated, _ = env.step(actions[i])
                self.obs[i] = self._reset(env) if (terminated or truncated) else obs
        return np.concatenate(seen)

    def close(self) -> None:
        """Close the environments."""
        for env in self.envs:
            env.close()


def mix_fraction(progress: float, start: float, end: float) -> float:
    """Share of a batch drawn from student-visited states at ``progress`` ∈ [0, 1] (linear)."""
    progress = min(max(progress, 0.0), 1.0)
    return start + (end - start) * progress
