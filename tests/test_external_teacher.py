"""A user's own teacher: a stable-baselines3 .zip (with VecNormalize beside it) or a zoo log folder."""

from __future__ import annotations

import pickle
import shutil

import numpy as np
import pytest
import yaml

from tests.conftest import FAST_DISTILL
from training.cli import main as training_cli
from training.errors import FlowError
from training.teacher.policy import TeacherPolicy, teacher_env_id


@pytest.fixture(scope="module")
def sb3_ppo(tmp_path_factory):
    """A CartPole PPO trained for a few seconds with VecNormalize, saved as a user would:
    ``ppo-CartPole-v1.zip`` and ``vecnormalize.pkl`` in one folder."""
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecNormalize

    folder = tmp_path_factory.mktemp("user-teacher")
    venv = VecNormalize(make_vec_env("CartPole-v1", n_envs=4, seed=0), norm_reward=False)
    model = PPO("MlpPolicy", venv, n_steps=128, batch_size=128, n_epochs=2, seed=0,
                policy_kwargs={"net_arch": [32, 32]}, device="cpu")
    model.learn(4096)
    model.save(folder / "ppo-CartPole-v1.zip")
    venv.save(folder / "vecnormalize.pkl")
    return folder / "ppo-CartPole-v1.zip", venv


@pytest.fixture(scope="module")
def sb3_sac(tmp_path_factory):
    """A Pendulum SAC of a few hundred steps, saved under a name that says nothing of its environment."""
    from stable_baselines3 import SAC

    path = tmp_path_factory.mktemp("user-sac") / "model.zip"
    model = SAC("MlpPolicy", "Pendulum-v1", learning_starts=50, batch_size=32, seed=0,
                policy_kwargs={"net_arch": [16, 16]}, device="cpu")
    model.learn(200)
    model.save(path)
    return path


def test_an_sb3_zip_loads_with_its_vecnormalize_and_acts_as_sb3_does(sb3_ppo):
    path, venv = sb3_ppo
    teacher = TeacherPolicy.load(path)
    assert teacher.env_id == "CartPole-v1" and teacher.algo == "ppo" and teacher.discrete
    np.testing.assert_array_equal(teacher.normalizer.mean, venv.obs_rms.mean)
    obs = np.random.default_rng(0).normal(size=(64, 4)).astype(np.float32)
    sb3_actions, _ = teacher.model.predict(venv.normalize_obs(obs), deterministic=True)
    np.testing.assert_array_equal(teacher.act(obs), sb3_actions)
    assert teacher_env_id(path) == "CartPole-v1"


def test_a_zoo_log_folder_loads(sb3_ppo, tmp_path):
    """rl-baselines3-zoo's layout: logs/ppo/CartPole-v1_1/{CartPole-v1.zip, CartPole-v1/{vecnormalize.pkl,args.yml}}."""
    path, venv = sb3_ppo
    exp = tmp_path / "logs" / "ppo" / "CartPole-v1_1"
    (exp / "CartPole-v1").mkdir(parents=True)
    shutil.copy(path, exp / "CartPole-v1.zip")
    shutil.copy(path.parent / "vecnormalize.pkl", exp / "CartPole-v1" / "vecnormalize.pkl")
    # the zoo dumps an OrderedDict: a python/object tag that safe_load refuses and we read as a mapping
    from collections import OrderedDict

    (exp / "CartPole-v1" / "args.yml").write_text(yaml.dump(OrderedDict([("algo", "ppo"), ("env", "CartPole-v1")])))
    teacher = TeacherPolicy.load(exp)
    assert teacher.env_id == "CartPole-v1" and teacher.normalizer is not None
    np.testing.assert_array_equal(teacher.normalizer.var, venv.obs_rms.var)


def test_make_distill_teacher_zip_distils_on_the_zips_environment(sb3_ppo, tmp_path, capsys):
    """make distill TEACHER=<zip> without ENV: the environment comes from the zip's name."""
    import json

    fast = tmp_path / "fast.yml"
    fast.write_text(yaml.safe_dump(FAST_DISTILL))
    run = tmp_path / "run"
    assert training_cli(["distill", "--teacher", str(sb3_ppo[0]), "--config", str(fast), "--updates", "400",
                         "--schedule", "2", "--width", "16", "--episodes", "2", "--run-dir", str(run)]) == 0
    results = json.loads((run / "results.json").read_text())
    assert results["env_id"] == "CartPole-v1" and results["n_episodes"] == 2
    assert "teacher n/a" in capsys.readouterr().out  # no evaluation record beside a user's zip


@pytest.mark.parametrize("args, message", [
    (["--env", "Acrobot-v1"], "was trained on CartPole-v1, not on Acrobot-v1"),
])
def test_a_teacher_for_another_environment_is_refused_in_one_sentence(sb3_ppo, args, message, tmp_path, capsys):
    assert training_cli(["distill", "--teacher", str(sb3_ppo[0]), *args, "--run-dir", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_a_teacher_with_another_kind_of_actions_is_refused(sb3_sac, tmp_path, capsys):
    assert training_cli(["distill", "--teacher", str(sb3_sac), "--env", "CartPole-v1", "--run-dir", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "has continuous actions" in err and "CartPole-v1 takes discrete ones" in err
    assert training_cli(["distill", "--teacher", str(sb3_sac), "--run-dir", str(tmp_path / "r")]) == 2
    assert "give it with ENV=<id>" in capsys.readouterr().err
    sac = TeacherPolicy.load(sb3_sac, "Pendulum-v1")
    assert sac.algo == "sac" and sac.normalizer is None


def test_other_files_are_refused_in_one_sentence(tmp_path, sb3_ppo):
    from stable_baselines3 import A2C

    a2c = tmp_path / "a2c-CartPole-v1.zip"
    A2C("MlpPolicy", "CartPole-v1", n_steps=8, device="cpu").save(a2c)
    with pytest.raises(FlowError, match="is neither a PPO nor a SAC model; a teacher must be PPO or SAC"):
        TeacherPolicy.load(a2c)
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"not a zip")
    with pytest.raises(FlowError, match="is not a stable-baselines3 model"):
        TeacherPolicy.load(junk, "CartPole-v1")
    wrong = tmp_path / "w"
    wrong.mkdir()
    shutil.copy(sb3_ppo[0], wrong / "ppo-CartPole-v1.zip")
    (wrong / "vecnormalize.pkl").write_bytes(pickle.dumps({"not": "a VecNormalize"}))
    with pytest.raises(FlowError, match="not stable-baselines3's VecNormalize"):
        TeacherPolicy.load(wrong / "ppo-CartPole-v1.zip")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FlowError, match="is not a run folder of this project nor an rl-baselines3-zoo"):
        TeacherPolicy.load(tmp_path / "empty")
