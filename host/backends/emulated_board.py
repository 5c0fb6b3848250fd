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

A writable design (``accel.json``'s ``runtime_weights``) also has one AXI-lite memory per
writable layer (:class:`EmulatedMemory`, under the IP names of FINN's block design), holding the
bitstream's student at first and after every ``reset()``. The fabric computes with what the
memories hold, read back out of FINN's word layout (:mod:`host.design.policy_memory`): a word at
a wrong address or in a wrong order gives wrong weights. An MVAU's decoupled weight memory streams
through FIFOs, so the first run after its memory was written still computes with the old weights
(FINN's drivers run one flushing inference after writing).
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


class _MemoryView:
    """``mmio.array`` of an emulated memory: 32-bit words by index or slice; writes mark the memory written."""

    def __init__(self, memory: "EmulatedMemory") -> None:
        self.memory = memory

    def __getitem__(self, index):
        self.memory.reads += 1
        value = self.memory.words[index]
        return int(value) if np.isscalar(value) else np.array(value)

    def __setitem__(self, index, value) -> None:
        self.memory.writes += 1
        self.memory.words[index] = value
        self.memory.written = True

    def __len__(self) -> int:
        return len(self.memory.words)


class EmulatedMemory:
    """A writable layer's AXI-lite memory: ``read``/``write`` of one 32-bit word at a byte offset, and
    pynq's ``mmio`` (``array``, ``write_mm``, ``read``/``write``) as finn-plus-driver uses it."""

    def __init__(self, name: str, layer: dict, initial: np.ndarray) -> None:
        self.name, self.layer = name, layer
        self.initial = np.asarray(initial, dtype=np.uint32).copy()
        self.words = self.initial.copy()
        self.written = False
        self.reads = self.writes = 0
        self.mmio = types.SimpleNamespace(array=_MemoryView(self), write_mm=self.write_mm, read=self.read,
                                          write=self.write)

    def _index(self, offset: int) -> int:
        if offset % 4 or not 0 <= offset < 4 * len(self.words):
            raise HostError(f"AXI-lite access at {offset:#x} outside {self.name}'s {4 * len(self.words)} bytes "
                            f"(the memory of {self.layer['name']})")
        return offset // 4

    def read(self, offset: int) -> int:
        """Read the word at byte ``offset``."""
        self.reads += 1
        return int(self.words[self._index(offset)])

    def write(self, offset: int, value) -> None:
        """Write the word at byte ``offset`` (pynq also takes bytes here: several words)."""
        if isinstance(value, (bytes, bytearray)):
            self.write_mm(offset, value)
            return
        self.writes += 1
        self.words[self._index(offset)] = int(value) & 0xFFFF_FFFF
        self.written = True

    def write_mm(self, offset: int, data: bytes) -> None:
        """Write whole words from ``offset`` (pynq's ``MMIO.write_mm``)."""
        values = np.frombuffer(bytes(data), dtype="<u4")
        start = self._index(offset)
        if start + len(values) > len(self.words):
            raise HostError(f"{len(values)} words at {offset:#x} run past the end of {self.name}")
        self.writes += 1
        self.words[start:start + len(values)] = values
        self.written = True

    def reset(self) -> None:
        """Back to the bitstream's contents, as reprogramming the fabric does."""
        self.words = self.initial.copy()
        self.written = False


class EmulatedBackend:
    """IPs, buffers and the emulated fabric for one design."""

    def __init__(self, spec: AccelSpec, hang: bool = False, hang_calls: int = 0) -> None:
        from host.design.policy_memory import layer_words

        self.spec, self.hang, self.hang_calls = spec, hang, hang_calls
        self.resets = 0
        self.fabric = EmulatedAccelerator(spec)
        self.ips = {name: EmulatedIP(name, self) for name in (spec.data["dma"]["input"], spec.data["dma"]["output"])}
        layers = {layer["name"]: layer for layer in spec.data["layers"]}
        self.memories = {m["ip"]: EmulatedMemory(m["ip"], layers[m["layer"]], layer_words(layers[m["layer"]], spec.arrays))
                         for m in (spec.data.get("runtime_weights") or {}).get("memories", [])}
        self._pending: list[tuple[dict, np.ndarray]] = []  # MVAU weights that take effect after the next run
        self.memory: dict[int, EmulatedBuffer] = {}
        self._next_address = 0x1000_0000
        self.clock_mhz: float | None = None
        self.frames_run = 0

    def ip(self, name: str):
        """The IP ``name`` (a DMA, or a writable layer's memory)."""
        if name in self.memories:
            return self.memories[name]
        if name not in self.ips:
            raise HostError(f"the emulated design has no IP named {name}")
        return self.ips[name]

    def _load_memories(self) -> None:
        """Before a run: layers compute with what their memories hold; an MVAU just written still has
        its old weights in its stream FIFOs for this one run."""
        from host.design.policy_memory import layer_array

        for memory in self.memories.values():
            if not memory.written:
                continue
            memory.written = False
            layer = memory.layer
            if layer["op"] == "MVAU":
                self._pending.append((layer, layer_array(layer, memory.words)))
            else:
                self.fabric.load(layer, layer_array(layer, memory.words))

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
        if self.memories:
            from host.design.policy_memory import layer_array

            for memory in self.memories.values():
                memory.reset()
                self.fabric.load(memory.layer, layer_array(memory.layer, memory.words))
            self._pending = []
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
        if self.memories:
            self._load_memories()
        frames = self._buffer_at(idma)[:count]
        obs = packing.unpack(frames, io_in["finn_datatype"], (count, *io_in["folded_shape"][1:]))
        out = self.fabric(obs.reshape(count, -1))
        target = self._buffer_at(odma)[:count]
        packing.pack(out.reshape(count, *io_out["folded_shape"][1:]), io_out["finn_datatype"], out=target)
        for layer, weights in self._pending:  # the stream FIFOs now hold the new weights
            self.fabric.load(layer, weights)
        self._pending = []
        self.frames_run += count
        idma.regs[REG_CTRL] = AP_DONE | AP_IDLE
        odma.regs[REG_CTRL] = AP_DONE | AP_IDLE


def register_accesses(board: EmulatedBackend) -> int:
    """Every register read and write the host made on the board so far."""
    return sum(ip.reads + ip.writes for ip in board.ips.values())
