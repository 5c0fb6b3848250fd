"""Regenerate the reference designs in tests/host/data/ (workstation environment, from the repo root).

    .venv/bin/python tests/host/make_reference.py bitstreams/<discrete design> bitstreams/<continuous design>

Each reference keeps what the board-side tests need: accel.json, weights.npz, teacher.npz, 400
states from real episodes (states.npy) and FINN's Python execution of the hardware-layer graph
on their input codes (finn_outputs.npy), so the host's emulator is checked against FINN even where FINN
cannot be installed. A design that takes frames goes to ``pixels/`` (its frames stored as booleans,
and without teacher.npz: the CNN teacher's numpy forward pass is tested on the workstation).
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np

from host.design.spec import load_spec
from hw_build.execution import execute_batch
from hw_build.export import episode_states
from hw_build.finn_env import prepare_finn
from training.qpd.distill import STUDENT_FILE, StudentPolicy, load_student

DATA = Path(__file__).parent / "data"


def main(designs: list[str]) -> None:
    prepare_finn()
    for folder in map(Path, designs):
        export = json.loads((folder / "export.json").read_text())
        spec = load_spec(folder)
        kind = "pixels" if spec.pixels else export["action"]
        target = DATA / kind
        if target.exists():
            shutil.rmtree(target)
        target.mkdir(parents=True)
        for name in ("accel.json", "weights.npz", "teacher.npz", "export.json"):
            if (folder / name).exists() and not (spec.pixels and name == "teacher.npz"):
                shutil.copy(folder / name, target / name)
        student, _ = load_student(Path(export["run"]) / STUDENT_FILE)
        states = episode_states(export["env_id"], StudentPolicy(student), 400, seed_base=60_000_000)
        np.save(target / "states.npy", states.astype(bool) if spec.pixels else states)
        codes = spec.preprocess(states)  # integer-input designs: the host's input quantizer
        np.save(target / "finn_outputs.npy", execute_batch(folder / "intermediate_models" / "step_convert_to_hw.onnx", codes))
        print(f"{folder} -> {target}")


if __name__ == "__main__":
    main(sys.argv[1:])
