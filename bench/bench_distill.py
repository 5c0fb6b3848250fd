"""Distillation speed: wall time per 10k student updates, and QPD's total time against the teacher's training.

Both measured in the same run on the same machine (one torch thread each, as the flow runs
them). Usage: ``.venv/bin/python bench/bench_distill.py [--out bench/results/distill.json]``.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def updates_per_second(n_updates: int = 1000) -> float:
    """Adam updates per second on the default 2x32 w2a2 CartPole student (batch 256, teacher labels included)."""
    from training.qpd.loss import LossConfig, distillation_loss
    from training.students.student import QuantStudent, StudentSpec

    torch.manual_seed(0)
    student = QuantStudent(StudentSpec(4, 2, True, (32, 32), 2, 2))
    teacher = torch.nn.Sequential(torch.nn.Linear(4, 256), torch.nn.Tanh(), torch.nn.Linear(256, 256), torch.nn.Tanh(),
                                  torch.nn.Linear(256, 2))
    opt = torch.optim.Adam(student.parameters(), lr=1e-3)
    data = np.random.default_rng(0).normal(size=(50_000, 4)).astype(np.float32)
    student.train()

    def step(i: int) -> None:
        obs = torch.as_tensor(data[(i * 256) % 49_000:(i * 256) % 49_000 + 256])
        with torch.no_grad():
            targets = {"logits": teacher(obs), "value": torch.zeros(256)}
        out, value = student(obs)
        loss, _ = distillation_loss(out, value, targets, LossConfig(), discrete=True)
        opt.zero_grad()
        loss.backward()
        opt.step()

    for i in range(150):  # past the quantizers' statistics collection
        step(i)
    start = time.perf_counter()
    for i in range(n_updates):
        step(i)
    return n_updates / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="bench/results/distill.json")
    parser.add_argument("--skip-full", action="store_true", help="only the updates/s figure")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rate = updates_per_second()
    result = {"machine": platform.processor() or platform.machine(), "torch_threads": 1,
              "student_updates_per_s": rate, "seconds_per_10k_updates": 10_000 / rate}
    print(f"| measure | value |\n| --- | ---: |\n| student updates per second (2x32 w2a2, batch 256) | {rate:.0f} |\n"
          f"| seconds per 10k updates | {10_000 / rate:.1f} |")
    if not args.skip_full:
        from training.qpd.distill import distill
        from training.qpd.config import load_qpd_config
        from training.teacher.train import train_teacher

        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            train_teacher("CartPole-v1", 0, run_dir=Path(tmp) / "teacher", eval_episodes=10)
            teacher_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            distill(load_qpd_config(env_id="CartPole-v1", eval_episodes=10), Path(tmp) / "teacher", Path(tmp) / "qpd",
                    quiet=True)
            qpd_s = time.perf_counter() - t0
        result.update(teacher_train_s=teacher_s, qpd_total_s=qpd_s, qpd_over_teacher=qpd_s / teacher_s)
        print(f"| CartPole-v1 teacher training (100k steps, incl. 10-episode eval) | {teacher_s:.0f} s |\n"
              f"| CartPole-v1 QPD, default config (8000 updates, 5 stages, incl. 10-episode eval) | {qpd_s:.0f} s |\n"
              f"| QPD time / teacher time | {qpd_s / teacher_s:.2f} |")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
