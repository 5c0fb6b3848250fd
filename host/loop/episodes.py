"""The environment loop: seeded episodes, ``k`` environments side by side, one batched policy call per step.

The same loop drives the hardware policy and the software ones, so every policy meets the
same seeds: episode ``i`` is reset with ``seeds[i]`` whatever policy plays it. Shadow policies
are asked for their action on every observation the driving policy saw (without acting),
which is how per-step action agreement is measured; they are asked after the episodes, all
observations in a few large batches, and timed separately at batch 1 on a sample of them. Observations holding NaN or infinity stop
their episode (it is recorded as stopped) and are never passed to the policy. A policy call that
times out (:class:`~host.errors.AcceleratorTimeout`: the driver has reset the accelerator
by then) stops the episodes it was playing, recorded as stopped, and the loop goes on with
the next seeds: one hung call does not fail the episodes after it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import gymnasium as gym
import numpy as np

from host.errors import AcceleratorTimeout

Policy = Callable[[np.ndarray], np.ndarray]


@dataclass
class EpisodeRecord:
    """One episode of the driving policy."""

    seed: int
    ret: float = 0.0
    length: int = 0
    stopped: str | None = None
    timed_out: bool = False
    agree: dict[str, int] = field(default_factory=dict)


@dataclass
class LoopResult:
    """Episodes and per-call timings of one policy."""

    episodes: list[EpisodeRecord]
    times: dict[str, list[float]]

    @property
    def returns(self) -> list[float]:
        """Episode returns in seed order."""
        return [e.ret for e in self.episodes]


def actions_agree(a: np.ndarray, b: np.ndarray, tolerance: float) -> np.ndarray:
    """Row-wise agreement: equal indices (discrete) or values within ``tolerance`` (continuous)."""
    a, b = np.asarray(a), np.asarray(b)
    if a.ndim == 1 and b.ndim == 1:
        return a == b
    return np.all(np.abs(a.reshape(len(a), -1) - b.reshape(len(b), -1)) <= tolerance, axis=1)


def run_episodes(
    policy: Policy,
    make_env: Callable[[], gym.Env],
    seeds: Sequence[int],
    *,
    num_envs: int = 1,
    shadows: dict[str, Policy] | None = None,
    tolerance: float = 0.0,
    call_times: Callable[[], Any] | None = None,
    progress: Callable[[int], None] | None = None,
) -> LoopResult:
    """Play one episode per seed with ``policy``, ``num_envs`` at a time.

    ``call_times`` (optional) returns the driver's split of the last call (an object with
    ``check``, ``pack``, ``accel``, ``unpack``), recorded per call beside the env-step time.
    """
    shadows = shadows or {}
    seen_obs: list[np.ndarray] = []
    seen_actions: list[np.ndarray] = []
    seen_episode: list[np.ndarray] = []
    envs = [make_env() for _ in range(max(1, min(num_envs, len(seeds))))]
    records = [EpisodeRecord(int(s), agree={name: 0 for name in shadows}) for s in seeds]
    times: dict[str, list[float]] = {k: [] for k in ("policy", "check", "pack", "accel", "unpack", "network", "env_step")}
    times.update({f"shadow:{name}": [] for name in shadows})
    pending = list(range(len(seeds)))
    slots: dict[int, tuple[int, np.ndarray]] = {}  # env index -> (episode index, observation)

    def start(slot: int) -> None:
        if pending:
            ep = pending.pop(0)
            obs, _ = envs[slot].reset(seed=records[ep].seed)
            slots[slot] = (ep, np.asarray(obs, dtype=np.float32))

    def finish(slot: int) -> None:
        del slots[slot]
        if progress:
            progress(1)
        start(slot)

    for slot in range(len(envs)):
        start(slot)
    try:
        while slots:
            for slot in [s for s, (_, o) in slots.items() if not np.isfinite(o).all()]:
                ep = slots[slot][0]
                records[ep].stopped = f"non-finite observation at step {records[ep].length}; not sent to the policy"
                finish(slot)
            if not slots:
                break
            order = list(slots)
            obs = np.stack([slots[s][1] for s in order])
            t0 = time.perf_counter()
            try:
                actions = policy(obs)
            except AcceleratorTimeout as exc:
                for slot in order:
                    ep = slots[slot][0]
                    records[ep].stopped = f"accelerator timeout at step {records[ep].length}: {exc}"
                    records[ep].timed_out = True
                    finish(slot)
                continue
            times["policy"].append(time.perf_counter() - t0)
            if call_times is not None:
                split = call_times()
                for key in ("check", "pack", "accel", "unpack", "network"):
                    if hasattr(split, key):  # network: the remote backend's round trip less the server's call
                        times[key].append(getattr(split, key))
            if shadows:
                seen_obs.append(obs)
                seen_actions.append(np.asarray(actions))
                seen_episode.append(np.array([slots[s][0] for s in order]))
            t0 = time.perf_counter()
            for slot, action in zip(order, actions):
                ep = slots[slot][0]
                obs_next, reward, terminated, truncated, _ = envs[slot].step(action)
                records[ep].ret += float(reward)
                records[ep].length += 1
                if terminated or truncated:
                    finish(slot)
                else:
                    slots[slot] = (ep, np.asarray(obs_next, dtype=np.float32))
            times["env_step"].append((time.perf_counter() - t0) / max(1, len(order)))
    finally:
        for env in envs:
            env.close()
    if shadows and seen_obs:
        _shadow(shadows, np.concatenate(seen_obs), np.concatenate(seen_actions), np.concatenate(seen_episode),
                records, times, tolerance)
    return LoopResult(records, times)


SHADOW_CHUNK = 4096
SHADOW_TIMED_CALLS = 200


def _shadow(shadows: dict[str, Policy], obs: np.ndarray, actions: np.ndarray, episode: np.ndarray,
            records: list[EpisodeRecord], times: dict[str, list[float]], tolerance: float) -> None:
    """Agreement of each shadow policy with the driving policy's actions, per episode."""
    for name, shadow in shadows.items():
        other = np.concatenate([shadow(obs[i:i + SHADOW_CHUNK]) for i in range(0, len(obs), SHADOW_CHUNK)])
        same = actions_agree(actions, other, tolerance).astype(np.int64)
        counts = np.zeros(len(records), dtype=np.int64)
        np.add.at(counts, episode, same)
        for record, count in zip(records, counts):
            record.agree[name] = int(count)
        for row in obs[:SHADOW_TIMED_CALLS]:
            t0 = time.perf_counter()
            shadow(row[None])
            times[f"shadow:{name}"].append(time.perf_counter() - t0)
