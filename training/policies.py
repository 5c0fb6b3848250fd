"""Loading whatever policy a run folder holds, for evaluation."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from training.errors import FlowError
from training.runs import check_run_env, read_run_config


def load_policy(run_dir: str | Path, env_id: str | None = None) -> tuple[Callable, dict[str, Any]]:
    """Return ``(policy, config)`` for a run folder; the policy maps one observation to one action."""
    config = read_run_config(run_dir)
    check_run_env(run_dir, config, env_id)
    if config["kind"] == "teacher":
        from training.teacher.policy import TeacherPolicy

        return TeacherPolicy.load(run_dir, env_id), config
    if config["kind"] == "student":
        from training.qpd.distill import STUDENT_FILE, StudentPolicy, load_student
        from training.envs import env_info

        student, _ = load_student(Path(run_dir) / STUDENT_FILE)
        info = env_info(config["env_id"])
        if student.spec.obs_shape != info.obs_shape or student.spec.n_out != info.n_actions:
            raise FlowError(f"student in {run_dir} does not match the spaces of {config['env_id']}")
        return StudentPolicy(student, info.action_low, info.action_high), config
    raise FlowError(f"{run_dir} holds a '{config['kind']}' run, which this version cannot evaluate")
