"""Discrete designs without LabelSelect (``IMPL=rtl``): the fabric returns the integer logits and the host
takes their argmax, ties to the lowest index as FINN's LabelSelect. Made from the committed CartPole
reference design by dropping its LabelSelect layer (the same weights), so both must give the same actions;
runs in the board-like environment too (numpy 1.x, Python 3.10)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from host import FpgaPolicy
from host.datapath import packing
from host.design.spec import load_spec
from host.errors import HostError

DATA = Path(__file__).resolve().parent / "data"
REPO = Path(__file__).resolve().parents[2]


def host_argmax_copy(folder: Path, edit=None) -> Path:
    """The discrete reference design as FINN builds it with IMPL=rtl: its last MVAU's logits are the output."""
    shutil.copytree(DATA / "discrete", folder)
    accel = json.loads((folder / "accel.json").read_text())
    assert accel["layers"][-1]["op"] == "LabelSelect"
    accel["layers"] = accel["layers"][:-1]
    last = accel["layers"][-1]
    folded = [1, last["mh"] // last["pe"], last["pe"]]
    packed = packing.pack(np.zeros(folded), packing.parse_datatype(last["output_dtype"])).shape
    accel["output"] = {"finn_datatype": last["output_dtype"], "normal_shape": [1, last["mh"]],
                       "folded_shape": folded, "packed_shape": list(packed)}
    accel["action"].update(argmax_in_hardware=False, output="the integer logits; the host takes their argmax")
    accel["deployed"]["layers"] = [d for d in accel["deployed"]["layers"] if d["op"] != "LabelSelect"]
    if edit is not None:
        edit(accel)
    (folder / "accel.json").write_text(json.dumps(accel))
    return folder


def test_host_argmax_gives_labelselects_actions_through_the_driver(tmp_path):
    folder = host_argmax_copy(tmp_path / "rtl")
    spec, reference = load_spec(folder), load_spec(DATA / "discrete")
    assert spec.argmax_on_host and not reference.argmax_on_host
    states = np.load(DATA / "discrete" / "states.npy")
    expected = reference.action_from_output(np.load(DATA / "discrete" / "finn_outputs.npy").reshape(len(states), -1))
    policy = FpgaPolicy(folder, backend="emulated", max_batch=16)  # packing, DMA buffers, unpacking: the board's path
    np.testing.assert_array_equal(policy(states), expected)
    assert all(policy(states[i]) == expected[i] for i in (0, 1, len(states) - 1))


def test_host_argmax_breaks_exact_ties_to_the_lowest_index(tmp_path):
    spec = load_spec(host_argmax_copy(tmp_path / "rtl"))
    logits = np.array([[3, 3], [1, 2], [-1, -5], [-7, -7], [0, 0]])
    np.testing.assert_array_equal(spec.action_from_output(logits), [0, 1, 0, 0, 0])


def test_a_logits_head_of_the_wrong_size_is_refused_in_one_sentence(tmp_path):
    def three_actions(accel):
        accel["action"]["n"] = 3

    with pytest.raises(HostError, match="gives 2 values for action.n 3"):
        load_spec(host_argmax_copy(tmp_path / "bad", three_actions))


def test_compare_end_to_end_on_a_host_argmax_design(tmp_path):
    folder = host_argmax_copy(tmp_path / "rtl")
    proc = subprocess.run([sys.executable, "-m", "host", "compare", "--design", str(folder), "--episodes", "2",
                           "--out", str(tmp_path / "out")], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    rep = json.loads((tmp_path / "out" / "compare.json").read_text())
    ref = rep["software"]["integer reference (numpy)"]
    assert ref["step_agreement"] == 1.0 and ref["identical_returns"] == 2
