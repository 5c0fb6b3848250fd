"""The emulated accelerator computes what FINN's Python execution of the same design computes."""

from __future__ import annotations

import numpy as np
import pytest

from host.backends.emulator import EmulatedAccelerator, check_exactness
from host.errors import HostError
from host.design.spec import load_spec


def test_emulator_reproduces_finn_on_every_recorded_state(reference):
    spec = load_spec(reference)
    states, expected = np.load(reference / "states.npy"), np.load(reference / "finn_outputs.npy")
    assert len(states) == 400
    np.testing.assert_array_equal(EmulatedAccelerator(spec)(spec.preprocess(states)).reshape(expected.shape), expected)


def test_batch_of_one_equals_the_batch(reference):
    spec = load_spec(reference)
    emulator = EmulatedAccelerator(spec)
    states = spec.preprocess(np.load(reference / "states.npy")[:50])
    together = emulator(states)
    np.testing.assert_array_equal(np.concatenate([emulator(s[None]) for s in states]), together)


def test_ties_go_to_the_lowest_index(discrete_design):
    spec = load_spec(discrete_design)
    emulator = EmulatedAccelerator(spec)
    last = spec.data["layers"][-2]["name"]
    emulator._weights[last] = np.zeros_like(emulator._weights[last])  # every logit 0: an exact tie
    assert (emulator(spec.preprocess(np.load(discrete_design / "states.npy")[:20])) == 0).all()


def test_accumulators_beyond_float32_exactness_are_refused():
    with pytest.raises(HostError, match="INT30"):
        check_exactness({"name": "MVAU_0", "acc_dtype": "INT30"})
