"""QAT PPO rollouts: the student's policy call requantizing at each call against rollout mode.

QAT PPO (the expensive row of the tables) spent most of its rollouts in Brevitas's per-call
quantizer Python. :meth:`training.qpd.baselines.QuantStudentPolicy.rollout_mode` reads the
quantized weights and scales once while a rollout runs: Brevitas's inference mode for a frame
student, :class:`training.students.frozen.FrozenStudent` for a flat one. Measured here in the
same run: one policy call on a rollout's batch, as PPO makes it (actions, values,
log-probabilities), each way, for Breakout's default ``c8-1x16`` student on 8 frames (its
``n_envs``) and HalfCheetah's ``2x32`` student on one state, at 8 and 2 bits; and a short QAT
PPO run each way per environment. And one evaluation step of a flat student (HalfCheetah's
2x32, one state): ``QuantStudent.act`` through Brevitas against
:class:`training.qpd.distill.StudentPolicy`, which reads the weights and scales once per
evaluation the same way.

    python bench/bench_qat_rollout.py [--steps 8192] [--out bench/results/qat_rollout.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench_codesign import per_call_us  # noqa: E402  (this folder is on the path when run as a script)

#: (environment, student hidden widths, convolution channels, batch of one policy call, label)
CASES = [("MinAtar/Breakout-v1", [16], [8], 8, "c8-1x16"), ("HalfCheetah-v5", [32, 32], [], 1, "2x32")]


def policy_call_us(env_id: str, hidden: list[int], conv: list[int], batch: int, bits: int) -> tuple[float, float]:
    """µs per policy call on ``batch`` observations: requantizing at each call, then in rollout mode."""
    from stable_baselines3.common.utils import ConstantSchedule

    from training.envs import env_info, make_env
    from training.qpd.baselines import QuantStudentPolicy, policy_student_spec
    from training.qpd.config import QPDConfig
    from training.qpd.distill import student_spec_for

    info = env_info(env_id)
    flat = [] if conv else [0.0] * info.obs_dim
    spec = student_spec_for(info, QPDConfig(env_id=env_id, hidden=hidden, weight_bits=bits, conv=conv), flat,
                            [1.0] * len(flat))
    env = make_env(env_id)
    policy = QuantStudentPolicy(env.observation_space, env.action_space, ConstantSchedule(1e-3),
                                student_spec=policy_student_spec(spec), critic_arch=None if conv else [64, 64])
    policy.set_training_mode(False)
    rng = np.random.default_rng(0)
    shape = (batch, *env.observation_space.shape)
    obs = torch.tensor(rng.random(shape) < 0.2 if conv else rng.normal(size=shape), dtype=torch.float32)
    with torch.no_grad():
        slow = per_call_us(lambda: policy(obs), repeats=3, number=300)
        with policy.rollout_mode():
            fast = per_call_us(lambda: policy(obs), repeats=3, number=300)
    return slow, fast


def evaluation_call_us(bits: int) -> tuple[float, float]:
    """µs per evaluation step of HalfCheetah's 2x32 student on one state: Brevitas, then StudentPolicy."""
    from training.envs import env_info
    from training.qpd.config import QPDConfig
    from training.qpd.distill import StudentPolicy, student_spec_for
    from training.students.student import QuantStudent

    info = env_info("HalfCheetah-v5")
    spec = student_spec_for(info, QPDConfig(env_id="HalfCheetah-v5", hidden=[32, 32], weight_bits=bits),
                            [0.0] * info.obs_dim, [1.0] * info.obs_dim)
    student = QuantStudent(spec).eval()
    obs = np.random.default_rng(0).normal(size=(1, info.obs_dim)).astype(np.float32)
    policy = StudentPolicy(student)
    return per_call_us(lambda: student.act(obs), repeats=3, number=300), per_call_us(lambda: policy(obs), repeats=3, number=300)


def qat_run_s(env_id: str, hidden: list[int], conv: list[int], steps: int, fast: bool) -> float:
    """Seconds of a short QAT PPO run (w2, seed 0, one evaluation episode)."""
    from training.qpd.baselines import QuantStudentPolicy, qat_ppo

    QuantStudentPolicy.fast_rollouts = fast
    t0 = time.perf_counter()
    qat_ppo(env_id, 2, hidden, 0, 1, steps=steps, conv=conv or None)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=8192, help="steps of each short QAT PPO run (0: skip them)")
    parser.add_argument("--out", default=str(REPO / "bench" / "results" / "qat_rollout.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    result: dict = {"machine": platform.processor() or platform.machine(), "torch_threads": 1}
    print("| measure | per-call requantization | rollout mode | ratio |\n| --- | ---: | ---: | ---: |")
    for env_id, hidden, conv, batch, label in CASES:
        for bits in (8, 2):
            slow, fast = policy_call_us(env_id, hidden, conv, batch, bits)
            result[f"{env_id} {label} w{bits} policy_call_us"] = {"requantize": slow, "rollout_mode": fast,
                                                                  "ratio": slow / fast}
            print(f"| {env_id} {label} w{bits}a{bits}: one policy call on {batch} observation(s) | {slow:.0f} µs "
                  f"| {fast:.0f} µs | {slow / fast:.1f} |")
        if args.steps:
            slow, fast = qat_run_s(env_id, hidden, conv, args.steps, False), qat_run_s(env_id, hidden, conv, args.steps, True)
            result[f"{env_id} qat_ppo_run_s"] = {"steps": args.steps, "requantize": slow, "rollout_mode": fast,
                                                 "ratio": slow / fast}
            print(f"| {env_id} QAT PPO w2, {args.steps:,} steps (incl. one evaluation episode) | {slow:.1f} s "
                  f"| {fast:.1f} s | {slow / fast:.2f} |")
    for bits in (8, 2):
        slow, fast = evaluation_call_us(bits)
        result[f"HalfCheetah-v5 2x32 w{bits} evaluation_step_us"] = {"brevitas": slow, "student_policy": fast,
                                                                     "ratio": slow / fast}
        print(f"| HalfCheetah-v5 2x32 w{bits}a{bits}: one evaluation step (Brevitas / StudentPolicy) | {slow:.0f} µs "
              f"| {fast:.0f} µs | {slow / fast:.1f} |")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
