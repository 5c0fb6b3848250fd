"""The distillation config: the precision schedule, the budget split, and bad configs."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.conftest import run_cli
from training.errors import FlowError
from training.qpd.config import load_qpd_config


def test_default_schedule_walks_down_to_the_target():
    cfg = load_qpd_config()
    assert cfg.stages() == [(8, 8), (6, 6), (4, 4), (3, 3), (2, 2)]
    assert cfg.run_name() == "qpd-2x32-w2a2-s0"


def test_one_bit_weights_keep_two_bit_activations():
    cfg = load_qpd_config(weight_bits=1)
    assert cfg.act_bits == 2 and cfg.stages()[-2:] == [(2, 2), (1, 2)] and cfg.run_name() == "qpd-2x32-w1a2-s0"


def test_activation_bits_never_go_below_their_target():
    assert load_qpd_config(weight_bits=2, act_bits=4).stages()[-2:] == [(3, 4), (2, 4)]


def test_activation_bits_below_the_weights_are_the_last_stages():
    """w8a4 trains 4-bit activations (it trained w8a8 under the w8a4 name before); w4a2 ends at a2."""
    assert load_qpd_config(weight_bits=8, act_bits=4).stages() == [(8, 4)]
    assert load_qpd_config(weight_bits=4, act_bits=2).stages() == [(8, 8), (6, 6), (4, 2)]


def test_direct_is_one_stage_at_the_target_and_float_one_float_stage():
    assert load_qpd_config(method="direct", weight_bits=3).stages() == [(3, 3)]
    assert load_qpd_config(method="float").stages() == [(None, None)]


def test_explicit_schedule_may_start_in_float():
    assert load_qpd_config(schedule=["float", 8, 4, 2]).stages() == [(None, None), (8, 8), (4, 4), (2, 2)]


def test_every_method_gets_the_same_budget():
    for kwargs in ({}, {"method": "direct"}, {"schedule": [4, 2]}, {"weight_bits": 8}):
        counts = load_qpd_config(updates=6000, **kwargs).stage_updates()
        assert sum(counts) == 6000
    assert load_qpd_config(updates=6000, schedule=[4, 2], final_stage_share=0.4).stage_updates() == [3600, 2400]
    assert load_qpd_config(updates=6000, schedule=[8, 6, 4, 2], final_stage_share=0.7).stage_updates() == [600] * 3 + [4200]


def test_same_computation_ignores_unused_settings_only():
    from training.qpd.config import same_computation

    direct = load_qpd_config(method="direct")
    assert same_computation({**direct.to_dict(), "final_stage_share": 0.123}, direct)  # one stage: unused
    qpd = load_qpd_config()
    assert same_computation(qpd.to_dict(), qpd)
    assert not same_computation({**qpd.to_dict(), "final_stage_share": 0.123}, qpd)
    assert not same_computation({**qpd.to_dict(), "lr": 0.5}, qpd)
    assert not same_computation(None, qpd)


def test_yaml_file_then_overrides(tmp_path):
    path = tmp_path / "qpd.yml"
    path.write_text("weight_bits: 3\nupdates: 4000\nloss: {temperature: 2.0}\n")
    cfg = load_qpd_config(path, updates=5000)
    assert (cfg.weight_bits, cfg.updates, cfg.loss.temperature) == (3, 5000, 2.0)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"schedule": [2, 4]}, "high to low"),
        ({"schedule": [8, 4]}, "end at the target"),
        ({"schedule": [8, "float", 2]}, "first stage"),
        ({"schedule": [8, 17, 2]}, "integers from 1 to 8, got 17"),
        ({"weight_bits": 9}, "from 1 to 8"),
        ({"weight_bits": 0}, "from 1 to 8"),
        ({"act_bits": 1}, "act_bits must be an integer from 2 to 8"),
        ({"updates": 300}, "at least 200"),
        ({"method": "magic"}, "method must be"),
        ({"hidden": [0]}, "positive"),
        ({"mix_end": 1.5}, "mix_start and mix_end"),
        ({"frobnicate": True}, "unknown distillation setting"),
        ({"loss": {"temprature": 1}}, "unknown loss setting"),
    ],
)
def test_bad_configs_are_refused(kwargs, message):
    with pytest.raises(FlowError, match=message):
        load_qpd_config(**kwargs)


def test_bad_config_file(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text("- 1\n- 2\n")
    with pytest.raises(FlowError, match="mapping"):
        load_qpd_config(bad)
    with pytest.raises(FlowError, match="does not exist"):
        load_qpd_config(tmp_path / "missing.yml")


def test_cli_refuses_a_bad_config_in_one_sentence():
    proc = run_cli("training", "distill", "--env", "CartPole-v1", "--bits", "2", "--schedule", "2,4", "--teacher", "/nonexistent")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().startswith("error: schedule must go strictly from high to low")


@pytest.mark.parametrize("recipe", sorted((Path(__file__).parents[1] / "training/qpd/recipes").glob("*.yaml")),
                         ids=lambda p: p.stem)
def test_every_committed_recipe_is_a_valid_config(recipe):
    """The recipes the docs and result pages name load as they are (pixel settings on a pixel env)."""
    settings = yaml.safe_load(recipe.read_text())
    env = "MinAtar/SpaceInvaders-v1" if {"conv", "kernel", "stride"} & settings.keys() else "HalfCheetah-v5"
    cfg = load_qpd_config(recipe, env_id=env)
    for key, value in settings.items():
        if not isinstance(value, dict):
            assert getattr(cfg, key) == value, key
