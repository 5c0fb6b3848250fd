"""SAC teachers: the teacher kind is a setting, and distillation, size, PTQ and the numpy teacher
work from either kind."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import FAST_DISTILL
from training.errors import FlowError

ENV = "HalfCheetah-v5"


@pytest.fixture(scope="module")
def sac_teacher(tmp_path_factory):
    """A SAC teacher of 600 steps (100 random first), from a small entry of its own."""
    from training.teacher.train import train_teacher

    root = tmp_path_factory.mktemp("sac")
    entry = root / "sac.yml"
    entry.write_text(f"{ENV}:\n  n_timesteps: 600\n  policy: MlpPolicy\n  learning_starts: 100\n  buffer_size: 5000\n"
                     "  batch_size: 64\n  policy_kwargs:\n    net_arch: [64, 64]\n    activation_fn: relu\n")
    run_dir = root / ENV / "sac-teacher-s0"
    train_teacher(ENV, 0, run_dir=run_dir, hyperparams_path=str(entry), eval_episodes=1, algo="sac")
    return run_dir


def test_the_sac_teacher_acts_in_the_box_and_its_targets_are_the_squashed_gaussian(sac_teacher):
    import torch

    from training.teacher.policy import TeacherPolicy

    teacher = TeacherPolicy.load(sac_teacher, ENV)
    assert teacher.algo == "sac" and not teacher.discrete
    obs = np.random.default_rng(0).normal(size=(32, 17)).astype(np.float32)
    act = teacher.act(obs)
    assert act.shape == (32, 6) and np.abs(act).max() <= 1.0
    t = teacher.targets(obs)
    np.testing.assert_allclose(t["mean"].numpy(), act, atol=1e-6)  # the deterministic action is the mean target
    assert t["log_std"].shape == (32, 6) and torch.isfinite(t["log_std"]).all()
    mu, log_std, _ = teacher.model.policy.actor.get_action_dist_params(torch.as_tensor(obs))
    # delta method: std of tanh(x) at mu is std * (1 - tanh(mu)^2) (the box is [-1, 1] here)
    np.testing.assert_allclose(t["log_std"].numpy(), (log_std + torch.log(1 - torch.tanh(mu) ** 2)).detach().numpy(),
                               rtol=1e-4, atol=1e-4)
    q1, q2 = teacher.model.policy.critic(torch.as_tensor(obs), torch.tanh(mu))
    np.testing.assert_allclose(t["value"].numpy(), torch.minimum(q1, q2).squeeze(-1).detach().numpy(), rtol=1e-6)


def test_size_numpy_teacher_and_ptq_read_the_sac_actor(sac_teacher, tmp_path):
    from host.loop.teacher_numpy import NumpyTeacher
    from hw_build.export import export_teacher_numpy
    from training.qpd.baselines import QuantizedTeacherActor
    from training.students.size import teacher_size
    from training.teacher.policy import TeacherPolicy

    teacher = TeacherPolicy.load(sac_teacher, ENV)
    size = teacher_size(teacher)  # latent_pi (17 -> 64 -> 64) and mu (64 -> 6); log_std is not deployed
    assert size.n_weights == 17 * 64 + 64 * 64 + 64 * 6 and size.n_biases == 64 + 64 + 6
    numpy_teacher = NumpyTeacher(export_teacher_numpy(sac_teacher, ENV, tmp_path / "teacher.npz"))
    obs = np.random.default_rng(1).normal(size=(64, 17)).astype(np.float32)
    np.testing.assert_allclose(numpy_teacher(obs), teacher.act(obs), atol=1e-5)
    actor = QuantizedTeacherActor(teacher, 8)
    actions = actor.policy(-np.ones(6, np.float32), np.ones(6, np.float32))(obs)
    assert actions.shape == (64, 6) and np.abs(actions).max() <= 1.0


def test_qpd_distils_a_sac_teacher(sac_teacher, tmp_path):
    from training.qpd.config import load_qpd_config
    from training.qpd.distill import distill

    cfg = load_qpd_config(env_id=ENV, hidden=[16, 16], weight_bits=4, schedule=[4], updates=300, eval_episodes=1,
                          **{**FAST_DISTILL, "stage_eval_episodes": 1})
    results = distill(cfg, sac_teacher, tmp_path / "qpd", quiet=True)
    assert results["student"] == "2x16-w4a4" and np.isfinite(results["mean_return"])
    assert results["size"]["teacher"]["n_weights"] == 17 * 64 + 64 * 64 + 64 * 6


def test_sac_is_refused_where_it_does_not_apply():
    from training.teacher.train import teacher_config

    with pytest.raises(FlowError, match="has no SAC entry"):
        teacher_config("Pendulum-v1", 0, algo="sac")
    with pytest.raises(FlowError, match="unknown teacher algorithm 'dqn'"):
        teacher_config(ENV, 0, algo="dqn")


def test_an_interrupted_sac_teacher_resumes_with_its_replay_buffer(tmp_path, monkeypatch):
    from training.teacher.train import REPLAY_FILE, TeacherCallback, train_teacher

    entry = tmp_path / "sac.yml"
    entry.write_text(f"{ENV}:\n  n_timesteps: 400\n  policy: MlpPolicy\n  learning_starts: 50\n  buffer_size: 2000\n"
                     "  batch_size: 32\n  policy_kwargs:\n    net_arch: [16]\n")
    run_dir = tmp_path / "run"
    original, loaded = TeacherCallback._on_step, []

    def interrupt_halfway(self):
        if self.num_timesteps >= 200:
            raise KeyboardInterrupt
        return original(self)

    monkeypatch.setattr(TeacherCallback, "_on_step", interrupt_halfway)
    with pytest.raises(KeyboardInterrupt, match="run the same command again to resume"):
        train_teacher(ENV, 0, run_dir=run_dir, hyperparams_path=str(entry), eval_episodes=1, algo="sac")
    assert (run_dir / "checkpoint" / REPLAY_FILE).exists()
    monkeypatch.setattr(TeacherCallback, "_on_step", original)
    from stable_baselines3 import SAC

    load = SAC.load_replay_buffer
    monkeypatch.setattr(SAC, "load_replay_buffer", lambda self, path, **kw: (loaded.append(path), load(self, path, **kw)))
    results = train_teacher(ENV, 0, run_dir=run_dir, hyperparams_path=str(entry), eval_episodes=1, algo="sac")
    assert results["train_timesteps"] == 400 and len(loaded) == 1 and (run_dir / "teacher.zip").exists()
