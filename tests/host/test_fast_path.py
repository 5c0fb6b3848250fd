"""The control-loop fast path against the general path, bit for bit, and its register traffic."""

from __future__ import annotations

import numpy as np
import pytest

from host.backends.driver import FinnZynqDriver
from host.backends.emulated_board import EmulatedBackend, register_accesses
from host.errors import HostError
from host.design.spec import load_spec


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
    from host.datapath.fast_path import InputPlan

    spec = load_spec(reference)
    plan = InputPlan.for_spec(spec, 1)
    quantizer = spec._quantizer
    for channel, bounds in enumerate(plan.boundaries):
        finite = np.array([b for b in bounds if np.isfinite(b)], dtype=np.float32)
        at, below = (np.zeros((len(finite), spec.obs_dim), dtype=np.float32) for _ in range(2))
        at[:, channel], below[:, channel] = finite, np.nextafter(finite, np.float32(-np.inf))
        assert (quantizer(at)[:, channel] > quantizer(below)[:, channel]).all()
        assert list(bounds) == sorted(bounds)


def test_one_observation_writer_takes_only_what_it_can_write_exactly(discrete_design):
    """The straight-line writer: the general path's bytes for one float32 observation; anything
    else (another dtype, size or layout) is left to the other paths, which give the same outputs."""
    spec = load_spec(discrete_design)
    fast = FinnZynqDriver(spec, EmulatedBackend(spec), max_batch=2)
    general = FinnZynqDriver(spec, EmulatedBackend(spec), max_batch=2, fast=False)
    write_one = fast.input_plan.write_one
    assert write_one is not None
    states = np.load(discrete_design / "states.npy")
    rng = np.random.default_rng(0)
    probes = np.concatenate([states, rng.normal(scale=3.0, size=(400, spec.obs_dim)).astype(np.float32),
                             np.array([[0.0, -0.0, 1e30, -1e30]], dtype=np.float32)])
    for row in probes:
        obs = row[None]
        assert write_one(obs) is True
        written = fast.ibuf.copy()
        general.execute(obs)
        np.testing.assert_array_equal(written, general.ibuf)
    same_bytes_as_float64 = np.zeros((1, spec.obs_dim // 2), dtype=np.float64)  # 16 bytes, not float32
    for other in (states[:1].astype(np.float64), same_bytes_as_float64, states[:2], states[:1, :3], list(states[0])):
        assert write_one(other) is False
    strided = np.repeat(states[:1], 2, axis=1)[:, ::2]  # one observation, not C-contiguous
    assert write_one(strided) is False
    np.testing.assert_array_equal(fast.execute(strided), general.execute(strided))
    with pytest.raises(HostError, match="NaN or infinity"):
        write_one(np.array([[0.0, 0.0, np.inf, 0.0]], dtype=np.float32))


def test_one_frames_action_is_a_shared_read_only_array(discrete_design):
    spec = load_spec(discrete_design)
    driver = FinnZynqDriver(spec, EmulatedBackend(spec), max_batch=2)
    states = np.load(discrete_design / "states.npy")
    out = driver.execute(states[:1])
    assert out.shape == (1, 1) and out.dtype == np.float32 and not out.flags.writeable
    with pytest.raises(ValueError):
        out[0, 0] = 1.0
    assert driver.execute(states[1:3]).flags.writeable  # batches get a new array
