"""QAT PPO rollouts: the pixel student's policy call with and without Brevitas's inference mode.

QAT PPO (the expensive row of the MinAtar tables) spends most of its rollouts in Brevitas's
per-call quantizer Python. :meth:`training.qpd.baselines.QuantStudentPolicy.rollout_mode`
caches the quantized weights while a rollout runs. Measured here in the same run: one policy
call on a rollout's batch (8 Breakout frames, the ``ppo.yml`` entry's ``n_envs``), as PPO makes
it (actions, values, log-probabilities), per-call requantization against the cached mode, for the
default ``c8-1x16`` student at 8 and 2 bits; and a short QAT PPO run each way.

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

ENV_ID = "MinAtar/Breakout-v1"


def policy_call_us(bits: int) -> tuple[float, float]:
    """µs per policy call on 8 frames: requantizing at each call, then in rollout mode."""
    from stable_baselines3.common.utils import ConstantSchedule

    from training.envs import env_info, make_env
    from training.qpd.baselines import QuantStudentPolicy, policy_student_spec
    from training.qpd.config import QPDConfig
    from training.qpd.distill import student_spec_for

    info = env_info(ENV_ID)
    spec = student_spec_for(info, QPDConfig(env_id=ENV_ID, hidden=[16], weight_bits=bits, conv=[8]), [], [])
    env = make_env(ENV_ID)
    policy = QuantStudentPolicy(env.observation_space, env.action_space, ConstantSchedule(1e-3),
                                student_spec=policy_student_spec(spec), critic_arch=None)
    policy.set_training_mode(False)
    frames = torch.tensor(np.random.default_rng(0).random((8, *env.observation_space.shape)) < 0.2, dtype=torch.float32)
    with torch.no_grad():
        slow = per_call_us(lambda: policy(frames), repeats=3, number=300)
        with policy.rollout_mode():
            fast = per_call_us(lambda: policy(frames), repeats=3, number=300)
    return slow, fast


def qat_run_s(steps: int, fast: bool) -> float:
    """Seconds of a short QAT PPO run (w2, seed 0, one evaluation episode)."""
    from training.qpd.baselines import QuantStudentPolicy, qat_ppo

    QuantStudentPolicy.fast_rollouts = fast
    t0 = time.perf_counter()
    qat_ppo(ENV_ID, 2, [16], 0, 1, steps=steps)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=8192, help="steps of each short QAT PPO run (0: skip them)")
    parser.add_argument("--out", default=str(REPO / "bench" / "results" / "qat_rollout.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    result: dict = {"machine": platform.processor() or platform.machine(), "torch_threads": 1, "env_id": ENV_ID}
    print("| measure | per-call requantization | rollout mode | ratio |\n| --- | ---: | ---: | ---: |")
    for bits in (8, 2):
        slow, fast = policy_call_us(bits)
        result[f"w{bits}_policy_call_us"] = {"requantize": slow, "rollout_mode": fast, "ratio": slow / fast}
        print(f"| c8-1x16 w{bits}a{bits}: one policy call on 8 frames | {slow:.0f} µs | {fast:.0f} µs | {slow / fast:.1f} |")
    if args.steps:
        slow, fast = qat_run_s(args.steps, False), qat_run_s(args.steps, True)
        result["qat_ppo_run_s"] = {"steps": args.steps, "requantize": slow, "rollout_mode": fast, "ratio": slow / fast}
        print(f"| QAT PPO w2, {args.steps:,} steps (incl. one evaluation episode) | {slow:.1f} s | {fast:.1f} s "
              f"| {slow / fast:.2f} |")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
