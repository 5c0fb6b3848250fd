"""``from host import FpgaPolicy``: a design's accelerator as a policy, emulated off the board.

Checked on the committed reference designs against FINN's own execution of their hardware
graphs (``finn_outputs.npy``), one observation at a time and in batches larger than the DMA
buffers; runs in the board-like environment too (numpy 1.x, Python 3.10, no torch).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from host import FpgaPolicy
from host.design.spec import load_spec
from host.errors import HostError

DATA = Path(__file__).resolve().parent / "data"


@pytest.mark.parametrize("kind", ["discrete", "continuous", "pixels"])
def test_fpga_policy_gives_finns_actions_one_at_a_time_and_in_batches(kind):
    spec = load_spec(DATA / kind)
    states = np.load(DATA / kind / "states.npy")
    expected = spec.action_from_output(np.load(DATA / kind / "finn_outputs.npy").reshape(len(states), -1))
    policy = FpgaPolicy(DATA / kind, max_batch=16)
    assert policy.backend == "emulated" and policy.env_id == spec.env_id  # auto: no board here
    batch = policy(states)  # 400 states: 25 calls of 16
    np.testing.assert_array_equal(batch, expected)
    for i in (0, 1, len(states) - 1):
        action = policy(states[i])
        if spec.discrete:
            assert isinstance(action, int) and action == expected[i]
        else:
            np.testing.assert_array_equal(action, expected[i])


def test_fpga_policy_refuses_bad_input_in_one_sentence(tmp_path):
    with pytest.raises(HostError, match="not found"):
        FpgaPolicy(tmp_path / "nowhere")
    with pytest.raises(HostError, match="backend must be one of auto, pynq, emulated"):
        FpgaPolicy(DATA / "discrete", backend="fpga")
    policy = FpgaPolicy(DATA / "discrete", backend="emulated")
    with pytest.raises(HostError, match=r"takes observations of shape \(4,\)"):
        policy(np.zeros((3, 5)))


def test_the_pynq_backend_off_a_board_is_one_sentence():
    with pytest.raises(HostError):
        FpgaPolicy(DATA / "discrete", backend="pynq")  # no design.bit here (and no board)
