"""accel.json checks: format version, hashes tying it to weights and bitstream, environment fit."""

from __future__ import annotations

import json
import shutil

import gymnasium as gym
import pytest

from host.errors import HostError
from host.design.spec import check_env_fits, load_spec


@pytest.fixture
def copy(discrete_design, tmp_path):
    target = tmp_path / "design"
    shutil.copytree(discrete_design, target)
    return target


def _edit(folder, **changes):
    data = json.loads((folder / "accel.json").read_text())
    for key, value in changes.items():
        data[key] = value
    (folder / "accel.json").write_text(json.dumps(data))


def test_reference_loads(copy):
    spec = load_spec(copy)
    assert spec.discrete and spec.obs_dim == 4 and spec.env_id == "CartPole-v1"


def test_other_format_version(copy):
    _edit(copy, format_version=1)
    with pytest.raises(HostError, match="format_version 1; this host reads version 2: re-run make estimate"):
        load_spec(copy)


def test_weights_of_another_build(copy):
    (copy / "weights.npz").write_bytes((copy / "weights.npz").read_bytes() + b"\0")
    with pytest.raises(HostError, match="does not match"):
        load_spec(copy)


def test_bitstream_of_another_build(copy):
    (copy / "finn-accel.bit").write_bytes(b"some other bitstream")
    with pytest.raises(HostError, match="finn-accel.bit does not match"):
        load_spec(copy)


def test_missing_bitstream_when_the_board_needs_it(copy):
    with pytest.raises(HostError, match="has no finn-accel.bit"):
        load_spec(copy, require_bitstream=True)


def test_not_a_design_folder(tmp_path):
    with pytest.raises(HostError, match="not a design folder"):
        load_spec(tmp_path)


def test_environment_of_another_shape(copy):
    spec = load_spec(copy)
    env = gym.make("Acrobot-v1")
    with pytest.raises(HostError, match=r"observations have shape \(6,\)"):
        check_env_fits(spec, env.observation_space, env.action_space)
    env = gym.make("CartPole-v1")
    check_env_fits(spec, env.observation_space, env.action_space)
