"""The control-loop fast path against the general path, bit for bit, and its register traffic."""

from __future__ import annotations

import numpy as np
import pytest

from host.driver import FinnZynqDriver
from host.emulated_board import EmulatedBackend, register_accesses
from host.errors import HostError
from host.spec import load_spec


def test_fast_path_gives_the_general_paths_bytes_and_outputs(reference):
    design = reference
    fast_out = design.name == "discrete"  # the action index; continuous designs return signed accumulators
    spec = load_spec(design)
    states = np.load(design / "states.npy")
    extremes = np.array([np.full(spec.obs_dim, v) for v in (0.0, -0.0, 1e30, -1e30, 0.5, -0.5)], dtype=np.float32)
    fast = FinnZynqDriver(spec, EmulatedBackend(spec), max_batch=40)
    general = FinnZynqDriver(spec, EmulatedBackend(spec), max_batch=40, fast=False)
    assert fast.input_plan is not None and fast.input_plan.boundaries is not None
    assert (fast.output_plan is not None) == fast_out
    assert general.input_plan is None and general.output_plan is None
    for batch in (1, 7, 40):  # 1 and 7: the per-value path (bisection); 40: the vectorised numpy path
        for i in range(0, len(states), batch):
            chunk = states[i:i + batch]
            np.testing.assert_array_equal(fast.execute(chunk), general.execute(chunk))
            np.testing.assert_array_equal(fast.ibuf[:len(chunk)], general.ibuf[:len(chunk)])
    np.testing.assert_array_equal(fast.execute(extremes), general.execute(extremes))
    np.testing.assert_array_equal(fast.ibuf[:6], general.ibuf[:6])


def test_fast_path_refuses_what_the_general_path_refuses(discrete_design):
    spec = load_spec(discrete_design)
    driver = FinnZynqDriver(spec, EmulatedBackend(spec), max_batch=2)
    with pytest.raises(HostError, match="NaN or infinity"):
        driver.execute(np.array([[0.0, np.nan, 0.0, 0.0]], dtype=np.float32))
    with pytest.raises(HostError, match="buffers hold 2"):
        driver.execute(np.zeros((3, spec.obs_dim), dtype=np.float32))


def test_three_register_accesses_per_call_in_the_steady_state(discrete_design):
    spec = load_spec(discrete_design)
    board = EmulatedBackend(spec)
    driver = FinnZynqDriver(spec, board, max_batch=4)
    setup = register_accesses(board)
    assert setup == 4  # both buffers' addresses, low and high word, once
    states = np.load(discrete_design / "states.npy")
    driver.execute(states[:1])
    assert register_accesses(board) - setup == 2 + 3  # the frame counts once, then start, start, poll
    before = register_accesses(board)
    for i in range(1, 101):
        driver.execute(states[i:i + 1])
    assert (register_accesses(board) - before) / 100 == 3
    before = register_accesses(board)
    driver.execute(states[:4])  # another batch size: the counts again
    assert register_accesses(board) - before == 2 + 3


def test_code_boundaries_are_where_the_quantizer_changes_code(reference):
    """Each boundary maps to a higher code than the float32 just below it (the quantizer itself decides)."""
    from host.fast_path import InputPlan

    spec = load_spec(reference)
    plan = InputPlan.for_spec(spec, 1)
    quantizer = spec._quantizer
    for channel, bounds in enumerate(plan.boundaries):
        finite = np.array([b for b in bounds if np.isfinite(b)], dtype=np.float32)
        at, below = (np.zeros((len(finite), spec.obs_dim), dtype=np.float32) for _ in range(2))
        at[:, channel], below[:, channel] = finite, np.nextafter(finite, np.float32(-np.inf))
        assert (quantizer(at)[:, channel] > quantizer(below)[:, channel]).all()
        assert list(bounds) == sorted(bounds)
