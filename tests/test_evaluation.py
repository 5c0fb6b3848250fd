"""The seeded evaluation helper."""

from __future__ import annotations

import numpy as np

from training.evaluation import eval_seeds, evaluate


def _lean_left(obs: np.ndarray) -> np.ndarray:
    return np.zeros(len(obs), dtype=int)


def _balance(obs: np.ndarray) -> np.ndarray:
    # The classic hand-written CartPole controller: push towards the pole's lean.
    return (obs[:, 2] + 0.5 * obs[:, 3] > 0).astype(int)


def test_seeds_are_consecutive_from_the_start():
    assert eval_seeds(3) == [1000, 1001, 1002]
    assert eval_seeds(2, start=7) == [7, 8]


def test_same_policy_and_seeds_give_the_same_returns():
    a = evaluate(_balance, "CartPole-v1", eval_seeds(5))
    b = evaluate(_balance, "CartPole-v1", eval_seeds(5))
    assert a.returns == b.returns and a.lengths == b.lengths


def test_returns_and_lengths_agree_with_a_hand_rolled_loop():
    import gymnasium as gym

    result = evaluate(_lean_left, "CartPole-v1", [3, 4])
    for seed, ret, length in zip([3, 4], result.returns, result.lengths):
        env = gym.make("CartPole-v1")
        env.reset(seed=seed)
        total, steps, done = 0.0, 0, False
        while not done:
            _, r, term, trunc, _ = env.step(0)
            total, steps, done = total + r, steps + 1, term or trunc
        assert (ret, length) == (total, steps)


def test_results_dict_has_every_episode_and_the_seeds():
    result = evaluate(_balance, "CartPole-v1", eval_seeds(4))
    d = result.to_dict()
    assert d["seeds"] == [1000, 1001, 1002, 1003] and len(d["returns"]) == 4
    assert d["mean_return"] == np.mean(d["returns"]) and d["std_return"] == np.std(d["returns"])
    assert d["deterministic"] is True
    assert "4 episodes" in result.summary()


def test_a_better_policy_scores_higher():
    assert evaluate(_balance, "CartPole-v1", eval_seeds(3)).mean > evaluate(_lean_left, "CartPole-v1", eval_seeds(3)).mean


def test_batched_episodes_equal_one_at_a_time():
    together = evaluate(_balance, "CartPole-v1", [5, 6, 7])
    alone = [evaluate(_balance, "CartPole-v1", [seed]).returns[0] for seed in (5, 6, 7)]
    assert together.returns == alone
