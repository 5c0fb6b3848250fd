"""The baselines: PTQ of the teacher, QAT PPO on the student architecture, PTQ of a float student."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from training.qpd.baselines import QuantizedTeacherActor, QuantStudentPolicy, ptq_teacher, qat_ppo
from training.students.student import calibrate
from training.teacher.policy import TeacherPolicy


def test_quantized_teacher_at_8_bits_tracks_the_float_teacher(cartpole_teacher):
    teacher = TeacherPolicy.load(cartpole_teacher)
    states = np.random.default_rng(0).normal(scale=0.5, size=(2000, 4)).astype(np.float32)
    actor = calibrate(QuantizedTeacherActor(teacher, 8), states)
    agree = (actor.policy()(states) == teacher.act(states)).mean()
    assert agree > 0.97
    coarse = calibrate(QuantizedTeacherActor(teacher, 2), states)
    assert (coarse.policy()(states) == teacher.act(states)).mean() < agree


def test_ptq_teacher_record(cartpole_teacher):
    record = ptq_teacher(TeacherPolicy.load(cartpole_teacher), "CartPole-v1", 8, 0, 3, calib_states=2000)
    assert len(record["returns"]) == 3 and record["size_bits"] == (4 * 64 + 64 * 64 + 64 * 2) * 8 + (64 + 64 + 2) * 32


def test_qat_ppo_trains_the_quantized_student_in_sb3():
    student, record = qat_ppo("CartPole-v1", 4, [8, 8], 0, 2, steps=512)
    assert record["train_timesteps"] == 512 and len(record["returns"]) == 2
    assert student.spec.weight_bits == 4 and student.spec.hidden == (8, 8)
    ints = student.trunk[0].quant_weight().value / student.trunk[0].quant_weight().scale
    assert torch.allclose(ints, ints.round(), atol=1e-4)


def test_qat_ppo_checkpoints_and_resumes_in_its_run_folder(tmp_path, capsys):
    from training.teacher.train import CHECKPOINT_DIR

    _, first = qat_ppo("CartPole-v1", 4, [8], 0, 2, steps=512, run_dir=tmp_path)
    assert '"timesteps": 512' in (tmp_path / CHECKPOINT_DIR / "state.json").read_text()
    _, again = qat_ppo("CartPole-v1", 4, [8], 0, 2, steps=512, run_dir=tmp_path)  # nothing left to train
    assert "resuming QAT PPO" in capsys.readouterr().out and again["returns"] == first["returns"]
    qat_ppo("CartPole-v1", 3, [8], 0, 2, steps=512, run_dir=tmp_path)  # other settings: the checkpoint is not theirs
    assert "resuming" not in capsys.readouterr().out


def test_fast_rollouts_train_the_same_frame_student_bit_for_bit(monkeypatch, tmp_path):
    """Rollouts under Brevitas's inference mode (weights cached while they cannot change) give the same
    actions, so PPO trains the same pixel student as with a requantization at every call, checkpoints
    taken during rollouts included."""
    students = []
    for fast in (True, False):
        monkeypatch.setattr(QuantStudentPolicy, "fast_rollouts", fast)
        student, record = qat_ppo("MinAtar/Breakout-v1", 2, [16], 0, 1, steps=4096, run_dir=tmp_path / str(fast))
        students.append((student.state_dict(), record["returns"]))
    (fast_state, fast_returns), (slow_state, slow_returns) = students
    assert fast_state.keys() == slow_state.keys() and fast_returns == slow_returns
    assert all(torch.equal(fast_state[k], slow_state[k]) for k in fast_state)


@pytest.mark.parametrize("env_id, bits, hidden", [("CartPole-v1", 3, [8]), ("Pendulum-v1", 2, [16, 16])])
def test_fast_rollouts_train_the_same_flat_student_bit_for_bit(monkeypatch, env_id, bits, hidden):
    """A flat student's rollouts through FrozenStudent (weights and scales read once per rollout)
    train the same student as Brevitas's per-call requantization: discrete and Gaussian actions."""
    students = []
    for fast in (True, False):
        monkeypatch.setattr(QuantStudentPolicy, "fast_rollouts", fast)
        student, record = qat_ppo(env_id, bits, hidden, 0, 1, steps=2048)
        students.append((student.state_dict(), record["returns"]))
    (fast_state, fast_returns), (slow_state, slow_returns) = students
    assert fast_state.keys() == slow_state.keys() and fast_returns == slow_returns
    assert all(torch.equal(fast_state[k], slow_state[k]) for k in fast_state)


@pytest.mark.parametrize("bits", [8, 2, 1])
def test_frozen_student_is_brevitas_eval_forward_bit_for_bit(bits):
    from training.envs import env_info
    from training.errors import FlowError
    from training.qpd.config import QPDConfig
    from training.qpd.distill import student_spec_for
    from training.students.frozen import FrozenStudent
    from training.students.student import COLLECT_STATS_STEPS, QuantStudent

    info = env_info("HalfCheetah-v5")
    states = torch.as_tensor(np.random.default_rng(bits).normal(scale=3.0, size=(2048, info.obs_dim)), dtype=torch.float32)
    spec = student_spec_for(info, QPDConfig(env_id="HalfCheetah-v5", hidden=[32, 32], weight_bits=bits),
                            states.mean(0).tolist(), (1 / states.std(0)).tolist())
    torch.manual_seed(0)
    student = QuantStudent(spec)
    with pytest.raises(FlowError, match="eval mode"):
        FrozenStudent(student.train())
    optimiser = torch.optim.Adam(student.parameters(), 1e-2)
    # Eval-mode scales come from the statistics buffer until COLLECT_STATS_STEPS training calls, then
    # from the learned value: the frozen copy must match at each of these points.
    train_steps_after = {"fresh": COLLECT_STATS_STEPS // 2, "collecting statistics": COLLECT_STATS_STEPS, "trained": 0}
    for stage, steps in train_steps_after.items():
        student.eval()
        frozen = FrozenStudent(student)
        with torch.no_grad():
            h = frozen.features(states)
            assert torch.equal(h, student.features(states).value), stage
            assert torch.equal(frozen.actor(h), student.actor(states)), stage
        assert np.array_equal(frozen.act(states.numpy()), student.act(states.numpy())), stage
        student.train()
        for batch in states[:steps * 16].split(16):
            out, value = student(batch)
            loss = (out - 1).pow(2).mean() + value.pow(2).mean()
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()


@pytest.mark.parametrize("bits", [8, 2])
def test_student_policy_acts_as_brevitas_does_ties_included(bits):
    """StudentPolicy's frozen copy takes the integer accumulators' argmax, as QuantStudent.act does."""
    from training.envs import env_info
    from training.qpd.config import QPDConfig
    from training.qpd.distill import StudentPolicy, student_spec_for
    from training.students.student import QuantStudent

    info = env_info("Acrobot-v1")
    states = np.random.default_rng(bits).normal(size=(4096, info.obs_dim)).astype(np.float32)
    spec = student_spec_for(info, QPDConfig(env_id="Acrobot-v1", hidden=[8, 8], weight_bits=bits),
                            [0.0] * info.obs_dim, [1.0] * info.obs_dim)
    torch.manual_seed(bits)
    student = QuantStudent(spec).eval()
    policy = StudentPolicy(student)
    assert np.array_equal(policy(states), student.act(states))
    assert policy._frozen is not None
    with torch.no_grad():
        accumulators = student.integer_logits(torch.as_tensor(states)).numpy()
    ties = (accumulators == accumulators.max(1, keepdims=True)).sum(1) > 1
    assert bits == 8 or ties.any()  # 2-bit accumulators tie often: the tie rule is exercised


def test_rollout_mode_caches_frame_students_in_brevitas_and_flat_ones_in_a_frozen_copy():
    import gymnasium as gym
    from stable_baselines3.common.utils import ConstantSchedule

    from training.envs import make_env

    def exported(policy) -> bool:
        return any(getattr(m, "export_mode", False) for m in policy.student.modules())

    frames = make_env("MinAtar/Breakout-v1").observation_space
    spec = {"obs_dim": 400, "n_out": 3, "discrete": True, "hidden": [16], "weight_bits": 2, "act_bits": 2,
            "conv": [8], "obs_shape": list(frames.shape), "binary_input": True}
    pixel = QuantStudentPolicy(frames, gym.spaces.Discrete(3), ConstantSchedule(1e-3), student_spec=spec, critic_arch=None)
    flat = QuantStudentPolicy(gym.make("CartPole-v1").observation_space, gym.spaces.Discrete(2), ConstantSchedule(1e-3),
                              student_spec={"obs_dim": 4, "n_out": 2, "discrete": True, "hidden": [8], "weight_bits": 2,
                                            "act_bits": 2}, critic_arch=[16])
    for policy, obs, cached in ((pixel, torch.zeros(8, *frames.shape), True), (flat, torch.zeros(8, 4), False)):
        policy.set_training_mode(False)
        with torch.no_grad(), policy.rollout_mode():
            policy(obs)
            assert exported(policy) == cached
            assert (policy._frozen is not None) == (not cached)  # a flat student is frozen by FrozenStudent instead
        assert not exported(policy) and policy._frozen is None


@pytest.mark.parametrize("critic_arch", [None, [16, 16]])
def test_quant_student_policy_gives_sb3_what_it_needs(critic_arch):
    import gymnasium as gym
    from stable_baselines3.common.utils import ConstantSchedule

    env = gym.make("CartPole-v1")
    spec = {"obs_dim": 4, "n_out": 2, "discrete": True, "hidden": [8], "weight_bits": 3, "act_bits": 3}
    policy = QuantStudentPolicy(env.observation_space, env.action_space, ConstantSchedule(1e-3), student_spec=spec,
                                critic_arch=critic_arch)
    obs = torch.zeros(5, 4)
    actions, values, logp = policy(obs)
    assert actions.shape == (5,) and values.shape == (5, 1) and logp.shape == (5,)
    v, lp, ent = policy.evaluate_actions(obs, actions)
    assert v.shape == (5, 1) and lp.shape == (5,) and ent.shape == (5,)
    assert {id(p) for p in policy.optimizer.param_groups[0]["params"]} == {id(p) for p in policy.parameters()}
    if critic_arch is not None:  # the value comes from the separate float critic, not the student's head
        (v * 0 + v).sum().backward()
        assert all(p.grad is None for p in policy.student.parameters())
        assert all(p.grad is not None for p in policy.critic.parameters())
