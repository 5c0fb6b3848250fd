"""The environment loop, the comparison report, and the compare command end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np

from host.loop.episodes import run_episodes
from host.loop.report import paired_permutation_test

REPO = Path(__file__).resolve().parents[2]


def _balance(obs):
    return (obs[:, 2] + 0.5 * obs[:, 3] > 0).astype(int)


def test_side_by_side_environments_give_the_same_returns():
    one = run_episodes(_balance, lambda: gym.make("CartPole-v1"), [1000, 1001, 1002, 1003, 1004], num_envs=1)
    four = run_episodes(_balance, lambda: gym.make("CartPole-v1"), [1000, 1001, 1002, 1003, 1004], num_envs=4)
    assert one.returns == four.returns
    assert len(four.times["policy"]) < len(one.times["policy"])  # fewer, batched calls


class NaNAfter(gym.Wrapper):
    def __init__(self, env, step):
        super().__init__(env)
        self.at, self.t = step, 0

    def reset(self, **kw):
        self.t = 0
        return self.env.reset(**kw)

    def step(self, action):
        obs, r, term, trunc, info = self.env.step(action)
        self.t += 1
        if self.t == self.at:
            obs = obs.copy()
            obs[1] = np.nan
        return obs, r, term, trunc, info


def test_a_nan_observation_stops_its_episode_and_is_never_passed_on():
    def policy(obs):
        assert np.isfinite(obs).all()
        return _balance(obs)

    result = run_episodes(policy, lambda: NaNAfter(gym.make("CartPole-v1"), 5), [1000, 1001], num_envs=2)
    assert all(e.length == 5 and "non-finite observation" in e.stopped for e in result.episodes)


def test_shadow_agreement_is_counted_per_step():
    result = run_episodes(_balance, lambda: gym.make("CartPole-v1"), [1000], shadows={"same": _balance,
                          "left": lambda o: np.zeros(len(o), dtype=int)})
    ep = result.episodes[0]
    assert ep.agree["same"] == ep.length and 0 < ep.agree["left"] < ep.length


def test_paired_test():
    assert paired_permutation_test([1.0, 2.0], [1.0, 2.0])["p_value"] == 1.0
    shifted = paired_permutation_test(list(np.arange(30.0) + 5), list(np.arange(30.0)))
    assert shifted["p_value"] < 0.001 and shifted["mean_difference"] == 5.0
    noise = np.random.default_rng(1).normal(size=30)
    assert paired_permutation_test(list(noise), list(np.zeros(30)))["p_value"] > 0.05


def _compare(*args, cwd=REPO):
    return subprocess.run([sys.executable, "-m", "host", "compare", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=600)


def test_compare_end_to_end(discrete_design, tmp_path):
    proc = _compare("--design", str(discrete_design), "--episodes", "3", "--num-envs", "2", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    rep = json.loads((tmp_path / "compare.json").read_text())
    ref = rep["software"]["integer reference (numpy)"]  # no FINN graphs in the reference folder
    assert ref["step_agreement"] == 1.0 and ref["identical_returns"] == 3 and ref["paired_test"]["identical"]
    assert "float teacher (numpy)" in rep["software"] and rep["frames_through_emulated_fabric"] > 0
    assert {"check", "pack", "accel", "unpack", "env_step"} <= set(rep["latency"])
    assert (tmp_path / "compare.md").exists()
    assert "identical returns on every episode" in proc.stdout


def test_compare_refuses_an_environment_of_another_shape(discrete_design, tmp_path):
    proc = _compare("--design", str(discrete_design), "--env", "Acrobot-v1", "--out", str(tmp_path))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("error: the environment's observations have shape (6,)")


def test_compare_of_a_missing_design(tmp_path):
    proc = _compare("--design", str(tmp_path / "nothing"))
    assert proc.returncode == 2 and "not found" in proc.stderr
