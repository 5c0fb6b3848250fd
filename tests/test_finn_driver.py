"""FINN's own PYNQ driver against our emulated board: a second driver, written by others.

``finn-plus-driver``'s ``FINNDMAOverlay`` (pinned in the lock) runs unchanged; only pynq is
replaced, at the seam our own driver's backend has (IP registers and physically addressed
buffers, :mod:`host.backends.emulated_pynq`), and it is configured by the ``finn_settings.json`` that
:mod:`host.design.finn_settings` makes from ``accel.json``. On real states it must give what our
driver gives and what FINN's Python execution gave, and write the same registers.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from host.backends.driver import FinnZynqDriver
from host.backends.emulated_board import EmulatedBackend
from host.backends.emulated_pynq import emulated_pynq
from host.design.finn_settings import write_finn_settings
from host.design.spec import load_spec

DATA = Path(__file__).resolve().parent / "host" / "data"
N_STATES = 400  # every state of the committed reference designs


def finn_overlay(spec, settings_path: Path, batch_size: int):
    """FINN's driver as its command line makes it: the class and kwargs from settings.json."""
    from finn_plus_driver import get_driver_class

    info = json.loads(settings_path.read_text())["driver_information"]
    kwargs = {k: v for k, v in info.items() if k != "driver_type"}
    cls = get_driver_class(info["driver_type"])
    return cls(str(spec.folder / "design.bit"), batch_size=batch_size, runtime_weight_dir=str(settings_path.parent / "none"),
               **kwargs)


def record_writes(board: EmulatedBackend, buffers: dict[int, str]) -> list[tuple[str, int, object]]:
    """Log every register write on the board, buffer addresses named by role."""
    log: list[tuple[str, int, object]] = []
    for ip in board.ips.values():
        write = ip.write

        def logged(offset, value, _ip=ip, _write=write):
            log.append((_ip.name, offset, buffers.get(value, value)))
            _write(offset, value)

        ip.write = logged
    return log


@pytest.mark.parametrize("kind", ["discrete", "continuous"])
def test_finn_driver_matches_ours_and_finn_execution_on_real_states(kind, tmp_path):
    spec = load_spec(DATA / kind)
    states = np.load(DATA / kind / "states.npy")[:N_STATES]
    finn_python = np.load(DATA / kind / "finn_outputs.npy")[:N_STATES].reshape(N_STATES, -1)
    settings = write_finn_settings(spec, tmp_path / "finn_settings.json")
    codes = spec.preprocess(states)  # FINN's driver takes what the accelerator takes

    ours = FinnZynqDriver(spec, EmulatedBackend(spec), max_batch=64)
    mine = np.concatenate([ours.execute(states[i:i + 64]) for i in range(0, N_STATES, 64)])
    board = EmulatedBackend(spec)
    with emulated_pynq(board):
        overlay = finn_overlay(spec, settings, batch_size=1)
        single = np.concatenate([overlay.execute(codes[i:i + 1].reshape(overlay.ishape_normal()))
                                 for i in range(N_STATES)]).reshape(N_STATES, -1)
        overlay.batch_size = 50
        batched = np.concatenate([overlay.execute(codes[i:i + 50].reshape(overlay.ishape_normal()))
                                  for i in range(0, N_STATES, 50)]).reshape(N_STATES, -1)
    np.testing.assert_array_equal(mine, finn_python)
    np.testing.assert_array_equal(single, mine)
    np.testing.assert_array_equal(batched, mine)
    assert board.frames_run == 2 * N_STATES


def test_both_drivers_write_the_same_registers_ours_only_when_they_change(tmp_path):
    spec = load_spec(DATA / "discrete")
    codes = spec.preprocess(np.load(DATA / "discrete" / "states.npy")[:3])
    settings = write_finn_settings(spec, tmp_path / "finn_settings.json")

    finn_board = EmulatedBackend(spec)
    with emulated_pynq(finn_board):
        overlay = finn_overlay(spec, settings, batch_size=1)
        finn_log = record_writes(finn_board, {overlay.ibuf_packed_device[0].device_address: "input buffer",
                                              overlay.obuf_packed_device[0].device_address: "output buffer"})
        for code in codes:
            overlay.execute(code.reshape(overlay.ishape_normal()))
    setup = [("odma0", 0x10, "output buffer"), ("odma0", 0x14, 0), ("idma0", 0x10, "input buffer"), ("idma0", 0x14, 0)]
    counts, starts = [("odma0", 0x1C, 1), ("idma0", 0x1C, 1)], [("odma0", 0x00, 1), ("idma0", 0x00, 1)]
    per_call = [setup[0], setup[1], counts[0], starts[0], setup[2], setup[3], counts[1], starts[1]]
    assert finn_log == per_call * 3  # FINN's driver writes everything on every call

    ours_board = EmulatedBackend(spec)
    buffers: dict = {}
    ours_log = record_writes(ours_board, buffers)
    ours = FinnZynqDriver(spec, ours_board, max_batch=1)
    buffers.update({ours.ibuf.device_address: "input buffer", ours.obuf.device_address: "output buffer"})
    ours_log[:] = [(ip, off, buffers.get(val, val)) for ip, off, val in ours_log]
    for state in np.load(DATA / "discrete" / "states.npy")[:3]:
        ours.execute(state[None])
    # The same registers and values as FINN's driver; the addresses once, the counts once.
    assert ours_log == setup + counts + starts + starts + starts
    assert set(ours_log) == set(finn_log)


def test_the_pynq_stand_in_leaves_nothing_behind(tmp_path):
    spec = load_spec(DATA / "discrete")
    with emulated_pynq(EmulatedBackend(spec)) as pynq:
        from finn_plus_driver.overlays.dma import FINNDMAOverlay  # noqa: F401

        assert sys.modules["pynq"] is pynq
    assert "finn_plus_driver.overlays.dma" not in sys.modules
    assert sys.modules.get("pynq") is not pynq


def test_fclk0_is_the_reference_of_finn_plus_zynq_shell_and_driver():
    """Our driver's FCLK0 is the constant finn-plus's Zynq shell is built around: read it from the
    shell's Vivado template and from finn-plus-driver's source, so that a FINN update that changes
    it fails here instead of on the board."""
    import importlib.util
    import re

    from finn.transformation.fpgadataflow.templates import custom_zynq_shell_template as shell

    from host.backends.driver import FCLK0_REFERENCE_MHZ

    zynq7000 = re.findall(r"CONFIG\.PCW_FPGA0_PERIPHERAL_FREQMHZ \{([0-9.]+)\}", shell)
    assert [float(v) for v in zynq7000] == [FCLK0_REFERENCE_MHZ]
    # FCLK0 is the Clocking Wizard's reference, and the wizard makes the design clock (FREQ_MHZ)
    assert "connect_bd_net [get_bd_pins zynq_ps/FCLK_CLK0] [get_bd_pins clk_wiz_0/clk_in1]" in shell
    assert "CONFIG.CLKOUT1_REQUESTED_OUT_FREQ $FREQ_MHZ" in shell and "set FREQ_MHZ %s" in shell
    dma = Path(importlib.util.find_spec("finn_plus_driver").submodule_search_locations[0]) / "overlays" / "dma.py"
    assert [float(v) for v in re.findall(r"Clocks\.fclk0_mhz = ([0-9.]+)", dma.read_text())] == [FCLK0_REFERENCE_MHZ]


def test_start_up_matches_finn_dma_overlay_clock_included(tmp_path):
    """Both drivers, at a design clock of 5 ns: FCLK0 at the shell's 100 MHz before any DMA register
    is written, then the buffers' addresses, counts and ap_start (FINN's driver downloads the
    bitstream first, which the board already has for ours)."""
    spec = load_spec(DATA / "discrete")
    spec.data["clock_ns"] = 5.0
    code = spec.preprocess(np.load(DATA / "discrete" / "states.npy")[:1])
    settings = write_finn_settings(spec, tmp_path / "finn_settings.json")
    assert json.loads(settings.read_text())["driver_information"]["fclk_mhz"] == 200.0  # FINN's field: the design clock

    def traced(board: EmulatedBackend) -> list:
        events: list = []
        set_clock, reset = board.set_clock_mhz, board.reset
        board.set_clock_mhz = lambda mhz: (events.append(("fclk0_mhz", mhz)), set_clock(mhz))[-1]
        board.reset = lambda: (events.append(("download",)), reset())[-1]
        for ip in board.ips.values():
            ip.write = (lambda write, name: lambda off, val: (events.append((name, off)), write(off, val))[-1])(ip.write, ip.name)
        return events

    finn_board = EmulatedBackend(spec)
    finn_events = traced(finn_board)
    with emulated_pynq(finn_board):
        overlay = finn_overlay(spec, settings, batch_size=1)
        finn_out = overlay.execute(code.reshape(overlay.ishape_normal()))
    ours_board = EmulatedBackend(spec)
    ours_events = traced(ours_board)
    ours_out = FinnZynqDriver(spec, ours_board).execute(np.load(DATA / "discrete" / "states.npy")[:1])
    assert finn_events[:2] == [("download",), ("fclk0_mhz", 100.0)]
    assert ours_events[0] == ("fclk0_mhz", 100.0) and finn_board.clock_mhz == ours_board.clock_mhz == 100.0
    assert [e for e in ours_events[1:] if e[0] != "fclk0_mhz"] == ours_events[1:]  # the clock is set once, first
    assert set(ours_events[1:]) == set(finn_events[2:])  # the same registers
    np.testing.assert_array_equal(np.asarray(finn_out).reshape(1, -1), ours_out)
