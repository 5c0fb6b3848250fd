"""Make tests/host/data/writable/: a writable design, a second student's policy package for it, real
states, and FINN's Python execution of each student's own hardware-layer graph on them.

Run from the repository root after ``make estimate DESIGN=<d> WEIGHTS=runtime`` and
``make load-policy DESIGN=<d> RUN=<another student's run>``::

    python tests/host/make_writable_reference.py <design> <policy name>
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np


def main(design: str, policy: str) -> None:
    from host.design.policy_package import load_package
    from host.design.spec import load_spec
    from hw_build.execution import execute_batch
    from hw_build.export import episode_states
    from hw_build.load_policy import _work_dir
    from training.qpd.distill import StudentPolicy, load_student

    src = Path("bitstreams") / design
    out = Path(__file__).resolve().parent / "data" / "writable"
    shutil.rmtree(out, ignore_errors=True)
    (out / "design").mkdir(parents=True)
    for name in ("accel.json", "weights.npz"):
        shutil.copyfile(src / name, out / "design" / name)
    shutil.copytree(src / "policies" / policy, out / "policy", ignore=shutil.ignore_patterns("export.json", "teacher.npz"))
    spec = load_spec(src)
    package = load_package(src / "policies" / policy, spec)
    import json

    run = Path(json.loads((src / "policies" / policy / "export.json").read_text())["run"])
    student, _ = load_student(run / "student.pt")
    states = episode_states(spec.env_id, StudentPolicy(student), 300).astype(np.float32)
    np.save(out / "states.npy", states)
    graph = "intermediate_models/step_convert_to_hw.onnx"
    np.save(out / "policy_finn_outputs.npy", execute_batch(_work_dir(design, policy) / graph, package.spec.preprocess(states)))
    np.save(out / "design_finn_outputs.npy", execute_batch(src / graph, spec.preprocess(states)))


if __name__ == "__main__":
    main(*sys.argv[1:3])
