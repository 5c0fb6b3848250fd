"""MinAtar teachers: the MinAtar paper's CNN on binary frames, trained and evaluated like the others."""

from __future__ import annotations

import json

import numpy as np
from training.envs import MINATAR_TIME_LIMIT, env_info, make_env
from training.students.size import teacher_size
from training.teacher.config import supported_envs
from training.teacher.policy import TeacherPolicy
from training.teacher.train import train_teacher

GAMES = ("Asterix", "Breakout", "Freeway", "Seaquest", "SpaceInvaders")


def test_every_minatar_game_has_an_entry_and_a_time_limit():
    assert {f"MinAtar/{g}-v1" for g in GAMES} <= set(supported_envs())
    env = make_env("MinAtar/Breakout-v1")
    obs, _ = env.reset(seed=0)
    assert obs.shape == (10, 10, 4) and obs.dtype == bool and env.spec.max_episode_steps == MINATAR_TIME_LIMIT
    env.close()


def test_a_short_minatar_teacher_trains_and_its_size_counts_the_convolution(tmp_path):
    run_dir = tmp_path / "MinAtar" / "Breakout-v1" / "teacher"
    results = train_teacher("MinAtar/Breakout-v1", 0, run_dir=run_dir, steps=4096, eval_episodes=3)
    assert results["train_timesteps"] == 4096 and len(results["returns"]) == 3
    teacher = TeacherPolicy.load(run_dir, "MinAtar/Breakout-v1")
    assert not (run_dir / "obs_normalizer.npz").exists()  # binary frames as they are
    frames = np.zeros((5, 10, 10, 4), dtype=bool)
    assert teacher.act(frames).shape == (5,) and isinstance(teacher.act(frames[0]), int)
    size = teacher_size(teacher)
    # conv 4->16 (3x3), linear 1024->128, action head 128->3
    assert size.n_weights == 16 * 4 * 9 + 16 * 8 * 8 * 128 + 128 * 3
    assert json.loads((run_dir / "results.json").read_text())["returns"] == results["returns"]


def test_minatar_frames_are_described_as_binary_frames():
    info = env_info("MinAtar/Breakout-v1")
    assert info.pixels and info.binary_obs and info.obs_shape == (10, 10, 4) and info.obs_dim == 400
    flat = env_info("CartPole-v1")
    assert not flat.pixels and flat.obs_shape == (4,) and not flat.binary_obs
