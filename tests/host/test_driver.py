"""The driver's IODMA protocol against the emulated board: actions, registers, timeouts, NaN."""

from __future__ import annotations

import time

import numpy as np
import pytest

from host.backends.driver import AP_DONE, FCLK0_REFERENCE_MHZ, REG_ADDR, REG_COUNT, REG_CTRL, FinnZynqDriver
from host.backends.emulated_board import EmulatedBackend
from host.backends.emulator import EmulatedAccelerator
from host.errors import AcceleratorTimeout, HostError
from host.design.spec import load_spec


@pytest.mark.parametrize("batch", [1, 4, 16])
def test_driver_actions_equal_the_emulator(reference, batch):
    spec = load_spec(reference)
    states = np.load(reference / "states.npy")[:64]
    driver = FinnZynqDriver(spec, EmulatedBackend(spec), max_batch=batch)
    actions = np.concatenate([driver(states[i:i + batch]) for i in range(0, len(states), batch)])
    np.testing.assert_array_equal(actions, spec.action_from_output(EmulatedAccelerator(spec)(spec.preprocess(states))))


def test_register_protocol(discrete_design):
    spec = load_spec(discrete_design)
    board = EmulatedBackend(spec)
    driver = FinnZynqDriver(spec, board, max_batch=8)
    driver(np.load(discrete_design / "states.npy")[:5])
    odma, idma = board.ip("odma0"), board.ip("idma0")
    assert odma.read(REG_ADDR) == driver.obuf.physical_address and idma.read(REG_ADDR) == driver.ibuf.physical_address
    assert odma.read(REG_COUNT) == 5 == idma.read(REG_COUNT)
    assert odma.read(REG_CTRL) & AP_DONE and board.frames_run == 5
    assert board.clock_mhz == FCLK0_REFERENCE_MHZ == 100.0


@pytest.mark.parametrize("clock_ns", [5.0, 10.0, 8.0])
def test_fclk0_is_the_shells_reference_whatever_the_design_clock(discrete_design, clock_ns):
    """The Zynq shell's Clocking Wizard makes the design clock from a 100 MHz FCLK0: FCLK0 never follows clock_ns."""
    spec = load_spec(discrete_design)
    spec.data["clock_ns"] = clock_ns
    board = EmulatedBackend(spec)
    FinnZynqDriver(spec, board)
    assert board.clock_mhz == 100.0


def test_buffers_are_allocated_once(discrete_design):
    spec = load_spec(discrete_design)
    board = EmulatedBackend(spec)
    driver = FinnZynqDriver(spec, board, max_batch=2)
    for state in np.load(discrete_design / "states.npy")[:10]:
        driver(state[None])
    assert len(board.memory) == 2


def test_a_silent_accelerator_times_out_instead_of_hanging(discrete_design):
    spec = load_spec(discrete_design)
    driver = FinnZynqDriver(spec, EmulatedBackend(spec, hang=True), timeout_s=0.05)
    start = time.perf_counter()
    with pytest.raises(AcceleratorTimeout, match="did not answer within 0.05 s"):
        driver(np.zeros((1, 4), dtype=np.float32))
    assert time.perf_counter() - start < 1.0


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_observations_never_reach_the_fabric(discrete_design, bad):
    spec = load_spec(discrete_design)
    board = EmulatedBackend(spec)
    driver = FinnZynqDriver(spec, board)
    with pytest.raises(HostError, match="NaN or infinity"):
        driver(np.array([[0.0, bad, 0.0, 0.0]], dtype=np.float32))
    assert board.frames_run == 0


def test_more_observations_than_the_buffers_hold(discrete_design):
    spec = load_spec(discrete_design)
    with pytest.raises(HostError, match="buffers hold 2"):
        FinnZynqDriver(spec, EmulatedBackend(spec), max_batch=2)(np.zeros((3, 4), dtype=np.float32))


def test_a_hung_accelerator_is_reset_and_takes_the_next_call(discrete_design):
    spec = load_spec(discrete_design)
    board = EmulatedBackend(spec, hang_calls=1)
    driver = FinnZynqDriver(spec, board, timeout_s=0.05)
    states = np.load(discrete_design / "states.npy")[:3]
    with pytest.raises(AcceleratorTimeout, match="it was reset and takes the next call"):
        driver(states[:1])
    assert board.resets == 1 and driver.resets == 1
    np.testing.assert_array_equal(driver(states[1:2]), spec.action_from_output(EmulatedAccelerator(spec)(spec.preprocess(states[1:2]))))


def test_a_failing_reset_says_to_reload_the_overlay(discrete_design):
    spec = load_spec(discrete_design)
    board = EmulatedBackend(spec, hang=True)

    def broken_reset():
        raise RuntimeError("no bitstream")

    board.reset = broken_reset
    driver = FinnZynqDriver(spec, board, timeout_s=0.02)
    with pytest.raises(AcceleratorTimeout, match="reload the overlay"):
        driver(np.zeros((1, 4), dtype=np.float32))


def test_an_episode_that_hangs_does_not_fail_the_next_ones(discrete_design):
    import gymnasium as gym

    from host.loop.episodes import run_episodes

    spec = load_spec(discrete_design)
    board = EmulatedBackend(spec, hang_calls=1)
    driver = FinnZynqDriver(spec, board, timeout_s=0.05)
    result = run_episodes(driver, lambda: gym.make("CartPole-v1"), [1000, 1001, 1002])
    first, *rest = result.episodes
    assert first.stopped and "accelerator timeout at step 0" in first.stopped and first.length == 0
    assert all(ep.stopped is None and ep.length > 0 for ep in rest) and board.resets == 1
