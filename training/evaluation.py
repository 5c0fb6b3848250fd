"""Seeded, deterministic evaluation of any policy on a gymnasium environment.

A policy here is any callable from a batch of observations ``(n, obs_dim)`` to their
actions, so the same helper evaluates teachers, students and the hardware policy on
identical seeds.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
from tqdm.auto import tqdm

from training.envs import make_env

#: Evaluation seeds start here for every policy, so teacher, student and hardware runs are
#: paired episode by episode. Training seeds are small integers and never collide with these.
EVAL_SEED_START = 1000

Policy = Callable[[np.ndarray], np.ndarray]


def eval_seeds(n_episodes: int, start: int = EVAL_SEED_START) -> list[int]:
    """The seeds of ``n_episodes`` evaluation episodes."""
    return list(range(start, start + n_episodes))


@dataclass
class EvalResult:
    """Returns and lengths of seeded episodes."""

    env_id: str
    seeds: list[int]
    returns: list[float] = field(default_factory=list)
    lengths: list[int] = field(default_factory=list)
    wall_s: float = 0.0

    @property
    def mean(self) -> float:
        """Mean episode return."""
        return float(np.mean(self.returns))

    @property
    def std(self) -> float:
        """Population standard deviation of the episode returns (as rl-zoo3 reports it)."""
        return float(np.std(self.returns))

    def to_dict(self) -> dict[str, Any]:
        """The fields of ``results.json`` that describe the episodes."""
        return {
            "env_id": self.env_id,
            "deterministic": True,
            "n_episodes": len(self.seeds),
            "seeds": self.seeds,
            "mean_return": self.mean,
            "std_return": self.std,
            "min_return": float(np.min(self.returns)),
            "max_return": float(np.max(self.returns)),
            "returns": self.returns,
            "lengths": self.lengths,
            "eval_wall_s": round(self.wall_s, 3),
        }

    def summary(self) -> str:
        """One line a person reads."""
        return (
            f"{self.env_id}: {self.mean:.2f} ± {self.std:.2f} over {len(self.seeds)} episodes "
            f"(seeds {self.seeds[0]}..{self.seeds[-1]}, min {min(self.returns):.1f}, max {max(self.returns):.1f})"
        )


def evaluate(
    policy: Policy,
    env_id: str,
    seeds: Sequence[int],
    *,
    progress: bool = False,
    desc: str = "evaluating",
) -> EvalResult:
    """Run one deterministic episode per seed and record its return and length.

    All episodes run side by side, one environment per seed (the host's environment loop,
    :func:`host.loop.episodes.run_episodes`, the same loop the hardware comparison uses), and
    ``policy`` gets the observations of the episodes still running as one float32 batch
    ``(n, obs_dim)``. Each episode is independent of the others, so the returns are the same
    as one episode at a time; nothing but the seeds is random, so the same policy and seeds
    give the same returns.
    """
    from host.loop.episodes import run_episodes

    result = EvalResult(env_id=env_id, seeds=[int(s) for s in seeds])
    start = time.perf_counter()
    with tqdm(total=len(result.seeds), desc=desc, unit="ep", disable=not progress, leave=False) as bar:
        loop = run_episodes(policy, lambda: make_env(env_id), result.seeds, num_envs=len(result.seeds),
                            progress=bar.update)
    result.returns = [float(e.ret) for e in loop.episodes]
    result.lengths = [int(e.length) for e in loop.episodes]
    result.wall_s = time.perf_counter() - start
    return result
