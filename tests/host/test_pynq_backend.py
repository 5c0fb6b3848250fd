"""The pynq backend: its calls exist in pynq 3.x, and the driver works through it.

Off a board pynq cannot load an overlay ("No Devices Found"), so the driver-through-backend
test stands a stub ``pynq`` module in front of the emulated board; the API test checks the
names the backend uses against the real pynq where it is installed (the board-like env).
"""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest

from host.backends.driver import FinnZynqDriver, PynqBackend
from host.backends.emulated_board import EmulatedBackend
from host.errors import AcceleratorTimeout, HostError
from host.design.spec import load_spec


def test_the_pynq_names_the_backend_uses_exist():
    pynq = pytest.importorskip("pynq")
    assert callable(pynq.Overlay) and callable(pynq.allocate)
    assert isinstance(getattr(type(pynq.Clocks), "fclk0_mhz", None), property)  # a settable class property


def test_driver_through_the_pynq_backend(discrete_design, monkeypatch):
    spec = load_spec(discrete_design)
    board = EmulatedBackend(spec)
    clocks = types.SimpleNamespace(fclk0_mhz=None)

    class Overlay:
        def __init__(self, bitfile):
            self.bitfile, self.downloads = bitfile, 0
            self.idma0, self.odma0 = board.ip("idma0"), board.ip("odma0")

        def download(self):  # pynq reprograms the fabric; the emulated board returns to idle
            self.downloads += 1
            board.reset()

    stub = types.ModuleType("pynq")
    stub.Overlay, stub.Clocks = Overlay, clocks
    stub.allocate = lambda shape, dtype: board.allocate(shape, dtype)
    monkeypatch.setitem(sys.modules, "pynq", stub)
    driver = FinnZynqDriver(spec, PynqBackend("finn-accel.bit"), max_batch=4)
    states = np.load(discrete_design / "states.npy")[:8]
    actions = np.concatenate([driver(states[i:i + 4]) for i in (0, 4)])
    np.testing.assert_array_equal(actions, spec.action_from_output(board.fabric(spec.preprocess(states))))
    assert clocks.fclk0_mhz == pytest.approx(100.0) and board.frames_run == 8
    board.hang_calls, driver.timeout_s = 1, 0.05  # a hung call: the driver reloads the bitstream
    with pytest.raises(AcceleratorTimeout, match="it was reset"):
        driver(states[:1])
    assert driver.backend.overlay.downloads == 1
    np.testing.assert_array_equal(driver(states[:4]), actions[:4])


def test_off_a_board_pynq_says_so_in_one_sentence(discrete_design, monkeypatch):
    stub = types.ModuleType("pynq")

    def no_device(bitfile):
        raise RuntimeError("No Devices Found")

    stub.Overlay = no_device
    monkeypatch.setitem(sys.modules, "pynq", stub)
    with pytest.raises(HostError, match="is this a PYNQ board"):
        PynqBackend("finn-accel.bit")
