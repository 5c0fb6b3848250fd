"""The emulated backend: a stand-in for the board at the lowest seam only.

It provides what pynq provides on the board — IP register files and physically addressed
buffers — and behind them an emulated fabric: when the input DMA is started, it reads the
packed frames at the address and count written to its registers, unpacks them as the
accelerator's input stream would carry them, runs :class:`~host.backends.emulator.EmulatedAccelerator`,
packs the outputs into the buffer at the output DMA's address, and raises ``ap_done``. The
driver above it is the board's driver, unchanged.

``hang=True`` makes the fabric never finish, ``hang_calls=k`` makes only the next ``k`` calls
hang (to test the driver's timeout and its recovery); ``reset()`` is what reprogramming the
fabric does on a board: every DMA idle again, nothing in flight.
"""

from __future__ import annotations

import types

import numpy as np

from host.datapath import packing
from host.backends.driver import AP_DONE, AP_IDLE, AP_START, REG_ADDR, REG_ADDR_HI, REG_COUNT, REG_CTRL
from host.backends.emulator import EmulatedAccelerator
from host.errors import HostError
from host.design.spec import AccelSpec


class EmulatedBuffer(np.ndarray):
    """A numpy array with a (fake) physical address, like ``pynq.buffer.PynqBuffer``."""

    physical_address: int = 0

    @property
    def device_address(self) -> int:
        """pynq 3's name for the physical address (FINN's driver uses it)."""
        return self.physical_address

    def flush(self) -> None:
        """Nothing to flush: there is no cache between us and the emulated fabric."""

    def invalidate(self) -> None:
        """Nothing to invalidate."""


class RegisterArray:
    """pynq's ``MMIO.array`` of an emulated IP: 32-bit words indexed by ``offset // 4``."""

    def __init__(self, ip: "EmulatedIP") -> None:
        self.ip = ip

    def __getitem__(self, index: int) -> int:
        return self.ip.read(int(index) * 4)

    def __setitem__(self, index: int, value: int) -> None:
        self.ip.write(int(index) * 4, int(value))


class EmulatedIP:
    """An AXI-lite register file; writing ``ap_start`` to the input DMA runs the fabric.

    ``reads`` and ``writes`` count every access (through ``read``/``write`` or the
    ``mmio.array`` view pynq offers on the board), for the register-traffic figures.
    """

    def __init__(self, name: str, board: "EmulatedBackend") -> None:
        self.name, self.board = name, board
        self.regs: dict[int, int] = {REG_CTRL: AP_IDLE}
        self.reads = self.writes = 0
        self.mmio = types.SimpleNamespace(array=RegisterArray(self))

    def read(self, offset: int) -> int:
        """Read a register."""
        self.reads += 1
        return self.regs.get(offset, 0)

    def write(self, offset: int, value: int) -> None:
        """Write a register; ``ap_start`` starts this DMA."""
        self.writes += 1
        if offset == REG_CTRL and value & AP_START:
            self.regs[REG_CTRL] = 0  # running: neither idle nor done
            self.board.started(self.name)
        else:
            self.regs[offset] = int(value)


class EmulatedBackend:
    """IPs, buffers and the emulated fabric for one design."""

    def __init__(self, spec: AccelSpec, hang: bool = False, hang_calls: int = 0) -> None:
        self.spec, self.hang, self.hang_calls = spec, hang, hang_calls
        self.resets = 0
        self.fabric = EmulatedAccelerator(spec)
        self.ips = {name: EmulatedIP(name, self) for name in (spec.data["dma"]["input"], spec.data["dma"]["output"])}
        self.memory: dict[int, EmulatedBuffer] = {}
        self._next_address = 0x1000_0000
        self.clock_mhz: float | None = None
        self.frames_run = 0

    def ip(self, name: str) -> EmulatedIP:
        """The IP ``name``."""
        if name not in self.ips:
            raise HostError(f"the emulated design has no IP named {name}")
        return self.ips[name]

    def allocate(self, shape: tuple[int, ...], dtype) -> EmulatedBuffer:
        """A zeroed buffer at a fresh address."""
        buf = np.zeros(shape, dtype=dtype).view(EmulatedBuffer)
        buf.physical_address = self._next_address
        self.memory[self._next_address] = buf
        self._next_address += (buf.nbytes + 0xFFF) & ~0xFFF
        return buf

    def set_clock_mhz(self, mhz: float) -> None:
        """Record the clock (the emulation has no time base)."""
        self.clock_mhz = mhz

    def reset(self) -> None:
        """Return every DMA to idle, with its registers cleared, as reprogramming the fabric does."""
        for ip in self.ips.values():
            ip.regs = {REG_CTRL: AP_IDLE}
        self.resets += 1

    def _buffer_at(self, ip: EmulatedIP) -> EmulatedBuffer:
        """The buffer a DMA's 64-bit address registers (0x10 low word, 0x14 high word) point at."""
        address = ip.regs.get(REG_ADDR, 0) | ip.regs.get(REG_ADDR_HI, 0) << 32
        if address not in self.memory:
            raise HostError(f"DMA address {address:#x} is not an allocated buffer")
        return self.memory[address]

    def started(self, name: str) -> None:
        """A DMA was started; the input DMA's start runs the frames through the fabric."""
        data = self.spec.data
        if name != data["dma"]["input"] or self.hang:
            return
        if self.hang_calls > 0:
            self.hang_calls -= 1
            return
        idma, odma = self.ips[data["dma"]["input"]], self.ips[data["dma"]["output"]]
        count = idma.regs.get(REG_COUNT, 0)  # the fabric's own view: not counted as the host's accesses
        if odma.regs.get(REG_CTRL) != 0 or odma.regs.get(REG_COUNT, 0) != count:
            raise HostError("emulated fabric: the output DMA must be started first with the same frame count")
        io_in, io_out = data["input"], data["output"]
        frames = self._buffer_at(idma)[:count]
        obs = packing.unpack(frames, io_in["finn_datatype"], (count, *io_in["folded_shape"][1:]))
        out = self.fabric(obs.reshape(count, -1))
        target = self._buffer_at(odma)[:count]
        packing.pack(out.reshape(count, *io_out["folded_shape"][1:]), io_out["finn_datatype"], out=target)
        self.frames_run += count
        idma.regs[REG_CTRL] = AP_DONE | AP_IDLE
        odma.regs[REG_CTRL] = AP_DONE | AP_IDLE


def register_accesses(board: EmulatedBackend) -> int:
    """Every register read and write the host made on the board so far."""
    return sum(ip.reads + ip.writes for ip in board.ips.values())
