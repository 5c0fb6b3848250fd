"""pynq's API over the emulated board, so that a driver written for pynq runs unchanged here.

A PYNQ driver needs three things from pynq: ``Overlay`` (its IPs as attributes, each with
``read``/``write``), ``allocate`` (buffers with a ``device_address``, ``flush``,
``invalidate``) and ``pynq.ps.Clocks``. :func:`emulated_pynq` puts modules offering exactly
these, backed by an :class:`~host.backends.emulated_board.EmulatedBackend`, in ``sys.modules`` under
the name ``pynq`` for the duration of a ``with`` block, and takes them out again afterwards
(with the modules that kept a reference to it). It is the same
lowest seam our own driver's backend has, and nothing above it is changed: this is how FINN's
own driver (``finn-plus-driver``'s ``FINNDMAOverlay``) is run against the emulated board in
the tests, and how a user can try a pynq driver before there is a board.
"""

from __future__ import annotations

import contextlib
import sys
import types
from typing import Iterator

import numpy as np

from host.backends.emulated_board import EmulatedBackend


def _make_modules(board: EmulatedBackend) -> dict[str, types.ModuleType]:
    class Overlay:
        """``pynq.Overlay`` for the emulated design: every DMA of the design is an attribute."""

        def __init__(self, bitfile_name: str, download: bool = True, device=None, **_kwargs) -> None:
            self.bitfile_name, self.device = bitfile_name, device
            self.ip_dict = {name: {"type": "xilinx.com:hls:" + name, "phys_addr": 0x4000_0000 + 0x1_0000 * i}
                            for i, name in enumerate([*board.ips, *board.memories])}
            if download:
                board.reset()

        def __getattr__(self, name: str):
            if name in board.ips or name in board.memories:
                return board.ip(name)
            raise AttributeError(f"the emulated overlay has no IP or attribute {name!r}")

        def download(self) -> None:
            board.reset()

    def allocate(shape, dtype=np.uint8, cacheable: bool = True, target=None, **_kwargs) -> np.ndarray:
        return board.allocate((int(shape),) if np.isscalar(shape) else tuple(int(v) for v in shape), dtype)

    class _ClocksMeta(type):
        """pynq's ``Clocks.fclk0_mhz`` is a settable class property; here it sets the board's clock."""

        @property
        def fclk0_mhz(cls) -> float | None:
            return board.clock_mhz

        @fclk0_mhz.setter
        def fclk0_mhz(cls, mhz: float) -> None:
            board.set_clock_mhz(float(mhz))

    class Clocks(metaclass=_ClocksMeta):
        """``pynq.ps.Clocks``: FCLK0 goes to the emulated board (``EmulatedBackend.clock_mhz``)."""

    pynq = types.ModuleType("pynq")
    pynq.Overlay, pynq.allocate, pynq.Clocks = Overlay, allocate, Clocks
    pynq.Bitstream = type("Bitstream", (), {"__init__": lambda self, *a, **k: None, "download": lambda self: board.reset()})
    pynq.__doc__ = "pynq's Overlay/allocate/Clocks over host.backends.emulated_board (host.backends.emulated_pynq)"
    ps = types.ModuleType("pynq.ps")
    ps.Clocks = Clocks
    pynq.ps = ps
    return {"pynq": pynq, "pynq.ps": ps}


def _holds_stand_in(module: types.ModuleType, fakes: dict[str, types.ModuleType]) -> bool:
    """Whether a module kept a reference to the stand-in (``from pynq import Overlay`` and the like)."""
    pynq = fakes["pynq"]
    stand_ins = {id(m) for m in fakes.values()} | {id(pynq.Overlay), id(pynq.allocate), id(pynq.Bitstream),
                                                    id(fakes["pynq.ps"].Clocks)}
    for value in list(vars(module).values()):
        if id(value) in stand_ins or (isinstance(value, type) and issubclass(value, pynq.Overlay)):
            return True
    return False


@contextlib.contextmanager
def emulated_pynq(board: EmulatedBackend) -> Iterator[types.ModuleType]:
    """Within the block, ``import pynq`` gives the emulated board; afterwards everything is as before.

    Modules imported inside the block that kept a reference to the stand-in (a driver that did
    ``from pynq import Overlay``) are dropped from ``sys.modules`` on the way out, so that they
    cannot outlive it; everything else they imported (numpy, qonnx, ...) stays loaded.
    """
    before = set(sys.modules)
    saved = {name: sys.modules.get(name) for name in ("pynq", "pynq.ps")}
    modules = _make_modules(board)
    sys.modules.update(modules)
    try:
        yield modules["pynq"]
    finally:
        for name in sorted(set(sys.modules) - before):
            module = sys.modules.get(name)
            if module is not None and _holds_stand_in(module, modules):
                del sys.modules[name]
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module
