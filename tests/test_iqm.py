"""The tables' interquartile mean with its bootstrap 95 % CI over episodes × seeds (rliable's statistic)."""

from __future__ import annotations

import numpy as np
from scipy.stats import trim_mean

from flow.experiments.table import aggregate, iqm_with_ci, markdown


def test_iqm_is_the_25_percent_trimmed_mean_inside_its_bootstrap_interval():
    returns = list(np.random.default_rng(3).normal(100.0, 20.0, 300)) + [1e6]  # one wild episode
    iqm, low, high = iqm_with_ci(returns)
    assert iqm == trim_mean(returns, 0.25) and low < iqm < high and high < 110  # the outlier does not move it
    assert iqm_with_ci(returns) == (iqm, low, high)  # a re-render gives the same table
    assert iqm_with_ci([500.0] * 10) == (500.0, 500.0, 500.0)


def _trial(seed: int, returns: list[float]) -> dict:
    return {"method": "qpd", "bits": 2, "seed": seed, "mean_return": float(np.mean(returns)), "returns": returns,
            "seeds": list(range(1000, 1000 + len(returns))), "size_bits": 4480, "agreement": 0.9}


def test_a_table_row_pools_every_episode_of_every_seed_and_shows_the_column():
    teacher = {"mean_return": 10.0, "std_return": 1.0, "n_episodes": 4, "size_bits": 2_000_000, "run": "t"}
    trials = [_trial(0, [1.0, 2.0, 3.0, 4.0]), _trial(1, [5.0, 6.0, 7.0, 8.0])]
    (row,) = aggregate(trials, teacher, ("method", "bits"))
    assert row["iqm"] == trim_mean(np.arange(1.0, 9.0), 0.25) == 4.5
    assert row["iqm_ci"][0] <= 4.5 <= row["iqm_ci"][1]
    text = markdown("CartPole-v1", teacher, [row], "make qpd-table", [32, 32])
    assert "| IQM [95 % CI] |" in text and f"| 4.50 [{row['iqm_ci'][0]:.2f}, {row['iqm_ci'][1]:.2f}] |" in text
    old = aggregate([{k: v for k, v in t.items() if k != "returns"} for t in trials], teacher, ("method", "bits"))
    assert "IQM" not in markdown("CartPole-v1", teacher, old, "make qpd-table", [32, 32])  # recorded before returns
