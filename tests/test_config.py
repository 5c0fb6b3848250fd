"""Hyperparameter loading and validation."""

from __future__ import annotations

import pytest
from stable_baselines3.common.utils import LinearSchedule

from training.teacher.config import load_hyperparams, parse_net_arch, ppo_kwargs, supported_envs
from training.errors import FlowError

REQUIRED = ["CartPole-v1", "Acrobot-v1", "LunarLander-v3", "MountainCar-v0", "Pendulum-v1"]


def test_supported_envs_cover_the_required_ones():
    assert set(REQUIRED) <= set(supported_envs())


@pytest.mark.parametrize("env_id", REQUIRED)
def test_every_entry_is_valid_and_teachers_are_2x256(env_id):
    hp = load_hyperparams(env_id)
    kwargs = ppo_kwargs(env_id, hp)
    assert kwargs["policy_kwargs"]["net_arch"] == {"pi": [256, 256], "vf": [256, 256]}
    assert hp["n_timesteps"] > 0


def test_linear_schedule_strings_become_sb3_schedules():
    kwargs = ppo_kwargs("CartPole-v1", load_hyperparams("CartPole-v1"))
    lr = kwargs["learning_rate"]
    assert isinstance(lr, LinearSchedule)
    assert lr(1.0) == pytest.approx(0.001) and lr(0.5) == pytest.approx(0.0005) and lr(0.0) == 0.0


def test_unknown_env_lists_the_supported_ones():
    with pytest.raises(FlowError, match="not supported; supported: CartPole-v1"):
        load_hyperparams("Ant-v5")


@pytest.mark.parametrize(
    "text, message",
    [
        ("CartPole-v1: {n_timesteps: 1000, warp_drive: 1}", "unknown hyperparameter"),
        ("CartPole-v1: {n_envs: 2}", "must set n_timesteps"),
        ("CartPole-v1: {n_timesteps: 100, learning_rate: fast}", "learning_rate must be"),
        ("CartPole-v1: {n_timesteps: 100, policy_kwargs: {activation_fn: gelu}}", "activation_fn"),
        ("CartPole-v1: [1, 2", "not valid YAML"),
        ("- just a list", "must map environment ids"),
    ],
)
def test_bad_hyperparameter_files_are_refused(tmp_path, text, message):
    path = tmp_path / "hp.yml"
    path.write_text(text)
    with pytest.raises(FlowError, match=message):
        load_hyperparams("CartPole-v1", path)


def test_missing_hyperparameter_file(tmp_path):
    with pytest.raises(FlowError, match="does not exist"):
        load_hyperparams("CartPole-v1", tmp_path / "nope.yml")


def test_parse_net_arch():
    assert parse_net_arch("64,64") == [64, 64]
    for bad in ("", "a,b", "0,4"):
        with pytest.raises(FlowError):
            parse_net_arch(bad)


@pytest.mark.parametrize("text, expected", [
    ("CartPole-v1: {n_timesteps: 1e5, learning_rate: 1e-3}", {"n_timesteps": 100000, "learning_rate": 0.001}),
    ("CartPole-v1: {n_timesteps: '3e5', n_steps: 32.0, gamma: 1}", {"n_timesteps": 300000, "n_steps": 32, "gamma": 1.0}),
    ("CartPole-v1: {n_timesteps: 1000, clip_range: lin_2e-1}", {"n_timesteps": 1000, "clip_range": "lin_2e-1"}),
])
def test_yaml_numbers_in_any_notation_become_the_fields_type(tmp_path, text, expected):
    """PyYAML (YAML 1.1) reads 1e-3 as the string '1e-3': the schema makes it the float it means."""
    path = tmp_path / "hp.yml"
    path.write_text(text)
    hp = load_hyperparams("CartPole-v1", path)
    assert hp == expected
    assert all(type(hp[k]) is type(v) for k, v in expected.items())


@pytest.mark.parametrize("text, algo, message", [
    ("CartPole-v1: {n_timesteps: 1000, gamma: 1.5}", "ppo", r"^CartPole-v1: gamma should be less than or equal to 1, got 1.5 \(allowed: 0 <= gamma <= 1\)$"),
    ("CartPole-v1: {n_timesteps: 1000.5}", "ppo", r"^CartPole-v1: n_timesteps should be a valid integer"),
    ("CartPole-v1: {n_timesteps: 1000, learning_rate: -1e-3}", "ppo", r"^CartPole-v1: learning_rate must be a number > 0"),
    ("CartPole-v1: {n_timesteps: 1000, n_epochs: many}", "ppo", r"^CartPole-v1: n_epochs should be a valid integer.*'many' \(allowed: 0 < n_epochs\)$"),
    ("CartPole-v1: {n_timesteps: 1000, normalize: {norm_obs: maybe}}", "ppo", r"normalize.norm_obs should be a valid boolean"),
    ("CartPole-v1: {n_timesteps: 1000, tau: 2}", "sac", r"^CartPole-v1: tau should be less than or equal to 1.*\(allowed: 0 < tau <= 1\)$"),
    ("CartPole-v1: {n_timesteps: 1000, n_steps: 8}", "sac", r"^CartPole-v1: unknown hyperparameter n_steps$"),
])
def test_a_wrong_type_or_value_is_one_sentence_naming_the_field_and_its_range(tmp_path, text, algo, message):
    path = tmp_path / "hp.yml"
    path.write_text(text)
    with pytest.raises(FlowError, match=message) as caught:
        load_hyperparams("CartPole-v1", path, algo)
    assert "\n" not in str(caught.value)
