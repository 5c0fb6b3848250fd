"""A lean driver for FINN's Zynq shell: the IODMA protocol over pynq buffers and registers.

It speaks the protocol of FINN's generated PYNQ driver with the least register traffic: buffers
are allocated once and their physical addresses written once (0x10 low word, 0x14 high word);
an input is quantized and packed straight into the input buffer (:mod:`host.datapath.fast_path`, or the
general :mod:`host.datapath.packing`); the frame count (0x1C) is written when it changes; the output DMA
then the input DMA get ``ap_start`` (0x00); the driver polls ``ap_done`` (bit 1 of the output
DMA's 0x00) and reads the output buffer — three register accesses a call in the steady state. A frame is one observation, so a batch of ``k`` environments'
observations is one call with count ``k`` (the dataflow pipeline streams them back to back).

The same driver runs on a board (:class:`PynqBackend`: ``pynq.Overlay``, ``pynq.allocate``)
and anywhere else (:class:`host.backends.emulated_board.EmulatedBackend`): only the backend, the
lowest seam of register access and physical buffers, differs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from host.datapath import packing
from host.errors import AcceleratorTimeout, HostError
from host.datapath.fast_path import BinaryFramePlan, InputPlan, OutputPlan
from host.design.spec import AccelSpec

REG_CTRL, REG_ADDR, REG_ADDR_HI, REG_COUNT = 0x00, 0x10, 0x14, 0x1C
AP_START, AP_DONE, AP_IDLE = 0x1, 0x2, 0x4
#: The PS clock FCLK0 the Zynq shell expects, whatever the design's clock: finn-plus's shell
#: (``custom_zynq_shell_template``: ``PCW_FPGA0_PERIPHERAL_FREQMHZ {100}``) feeds FCLK0 to a
#: Clocking Wizard as its reference, and the wizard makes the design's clock (1000 / clock_ns
#: MHz, rounded down to whole MHz) from it; finn-plus-driver sets the same 100 MHz. Setting FCLK0
#: to the design's clock instead would scale the wizard's output by the same factor.
FCLK0_REFERENCE_MHZ = 100.0


class Registers(Protocol):
    """An IP's AXI-lite registers (pynq's ``DefaultIP`` / ``MMIO`` have this interface)."""

    def read(self, offset: int) -> int: ...
    def write(self, offset: int, value: int) -> None: ...


class Backend(Protocol):
    """What the driver needs from a board: IPs by name, DMA-able buffers, the clock."""

    def ip(self, name: str) -> Registers: ...
    def allocate(self, shape: tuple[int, ...], dtype) -> np.ndarray: ...
    def set_clock_mhz(self, mhz: float) -> None: ...  # FCLK0, the shell's clock reference
    def reset(self) -> None: ...


class PynqBackend:
    """The real board: a pynq ``Overlay`` of the design's bitstream (imports pynq lazily)."""

    def __init__(self, bitfile: str) -> None:
        try:
            import pynq
        except ImportError:
            raise HostError("pynq is not installed here: the pynq backend runs on the board "
                            "(use --backend emulated elsewhere)") from None
        self._pynq = pynq
        try:
            self.overlay = pynq.Overlay(str(bitfile))
        except RuntimeError as exc:  # pynq says "No Devices Found" off a board
            raise HostError(f"cannot load {bitfile} with pynq ({exc}): is this a PYNQ board?") from None

    def reset(self) -> None:
        """Bring a hung accelerator back: reprogram the fabric with the same bitstream.

        FINN's IODMAs are HLS blocks with ``ap_ctrl_hs`` control, which has no soft reset: a
        DMA that never raises ``ap_done`` stays busy until the programmable logic is reset,
        which reloading the bitstream does (the ARM-side buffers survive it).
        """
        self.overlay.download()

    def ip(self, name: str) -> Registers:
        """The IP block ``name`` of the overlay, through its MMIO array view where pynq has one."""
        try:
            ip = getattr(self.overlay, name)
        except AttributeError:
            raise HostError(f"the bitstream has no IP named {name} (accel.json's dma names)") from None
        array = getattr(getattr(ip, "mmio", None), "array", None)
        return MmioArrayRegisters(array) if array is not None else ip

    def allocate(self, shape: tuple[int, ...], dtype) -> np.ndarray:
        """A physically contiguous buffer (``pynq.allocate``)."""
        return self._pynq.allocate(shape=shape, dtype=dtype)

    def set_clock_mhz(self, mhz: float) -> None:
        """Set the PS clock FCLK0 (the Zynq shell's reference, :data:`FCLK0_REFERENCE_MHZ`)."""
        self._pynq.Clocks.fclk0_mhz = mhz


class MmioArrayRegisters:
    """Registers through pynq's ``MMIO.array``, the IP's address space as 32-bit words: one index
    per access, where ``ip.read``/``ip.write`` go through pynq's argument checks and method
    layers on every call (the same registers; only the cost differs)."""

    def __init__(self, array) -> None:
        self.array = array

    def read(self, offset: int) -> int:
        """Read the 32-bit register at byte ``offset``."""
        return int(self.array[offset >> 2])

    def write(self, offset: int, value: int) -> None:
        """Write the 32-bit register at byte ``offset``."""
        self.array[offset >> 2] = value


@dataclass
class CallTimes:
    """Seconds spent in each part of one accelerator call."""

    check: float = 0.0
    pack: float = 0.0
    accel: float = 0.0
    unpack: float = 0.0

    @property
    def total(self) -> float:
        """The whole call."""
        return self.check + self.pack + self.accel + self.unpack


@dataclass
class FinnZynqDriver:
    """Drives one accelerator through FINN's Zynq IODMA protocol.

    Args:
        spec: the design's accel spec.
        backend: a board or the emulated one.
        max_batch: the most observations one call may carry (buffers are sized for it).
        timeout_s: how long to wait for ``ap_done`` before :class:`AcceleratorTimeout`.
        fast: the control-loop fast path (:mod:`host.datapath.fast_path`) where the design allows it;
            ``False`` keeps the general packing for every call (the reference it is tested against).
    """

    spec: AccelSpec
    backend: Backend
    max_batch: int = 1
    timeout_s: float = 1.0
    fast: bool = True
    last_times: CallTimes = field(default_factory=CallTimes)

    def __post_init__(self) -> None:
        io_in, io_out = self.spec.data["input"], self.spec.data["output"]
        self.in_dtype, self.out_dtype = io_in["finn_datatype"], io_out["finn_datatype"]
        self.in_folded = tuple(io_in["folded_shape"][1:])
        self.out_folded = tuple(io_out["folded_shape"][1:])
        self.in_packed = tuple(io_in["packed_shape"][1:])
        self.out_packed = tuple(io_out["packed_shape"][1:])
        self.ibuf = self.backend.allocate((self.max_batch, *self.in_packed), np.uint8)
        self.obuf = self.backend.allocate((self.max_batch, *self.out_packed), np.uint8)
        self.resets = 0
        self.calls = 0
        #: Called after a recovery (reprogramming resets a writable design's memories: the policy is written again).
        self.on_recover: list = []
        self._plan()
        # pynq buffers need their cache flushed / invalidated around a DMA; bound once.
        self._flush, self._invalidate = getattr(self.ibuf, "flush", None), getattr(self.obuf, "invalidate", None)
        self._connect()

    def _plan(self) -> None:
        """What does not change between calls, computed once (host/datapath/fast_path.py); designs
        outside its cases use the general packing."""
        self.input_plan = (InputPlan.for_spec(self.spec, self.max_batch)
                           or BinaryFramePlan.for_spec(self.spec, self.max_batch)) if self.fast else None
        self.output_plan = OutputPlan.for_spec(self.spec) if self.fast else None
        for plan, buf in ((self.input_plan, self.ibuf), (self.output_plan, self.obuf)):
            if plan is not None:
                plan.bind(buf)
        self._write_one = self.input_plan.write_one if self.input_plan is not None else None
        self._single_outputs = self.output_plan.single if self.output_plan is not None else None
        self._output_byte = memoryview(self.obuf).cast("B")

    def use_spec(self, spec: AccelSpec) -> None:
        """Compute with ``spec`` from now on: the same design with another student's policy package
        loaded (its input quantizer and arrays); the buffers and the DMAs stay as they are."""
        for key in ("input", "output"):
            for shape in ("folded_shape", "packed_shape"):
                if spec.data[key][shape] != self.spec.data[key][shape]:
                    raise HostError(f"the new spec's {key} {shape} differs from the design's: not the same design")
        self.spec = spec
        self._plan()

    def _connect(self) -> None:
        """Reach the DMAs and write what stays the same between calls: the buffers' addresses.

        FINN's IODMA keeps its AXI-lite registers between runs, so a call then only writes
        the frame count when it changes and ``ap_start``, and polls ``ap_done``.
        """
        self.idma = self.backend.ip(self.spec.data["dma"]["input"])
        self.odma = self.backend.ip(self.spec.data["dma"]["output"])
        self.backend.set_clock_mhz(FCLK0_REFERENCE_MHZ)  # the shell's reference; its wizard makes the design clock
        for dma, buf in ((self.odma, self.obuf), (self.idma, self.ibuf)):
            address = _address(buf)
            dma.write(REG_ADDR, address & 0xFFFF_FFFF)
            dma.write(REG_ADDR_HI, address >> 32)  # 0 on the Zynq-7000; FINN's IODMA has a 64-bit pointer
        self._count = None

    def recover(self) -> None:
        """Reset a hung accelerator (see the backend's ``reset``) so that the next call works."""
        self.backend.reset()
        self._connect()
        self.resets += 1
        for again in self.on_recover:
            again()

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        """Actions for a batch of observations ``(n, obs_dim)``, ``n <= max_batch``."""
        return self.spec.action_from_output(self.execute(obs))

    def execute(self, obs: np.ndarray) -> np.ndarray:
        """The accelerator's raw outputs for a batch of observations (timed into ``last_times``).

        Designs with a single-byte action return, for one observation, a shared read-only array.
        """
        t0 = t1 = time.perf_counter()
        plan = self.input_plan
        if self._write_one is not None and self._write_one(obs):  # the control loop's call: one observation
            n = 1
        elif plan is not None:  # the fast path: checks, quantizes and packs in one go
            size = obs.size if type(obs) is np.ndarray else np.size(obs)
            if plan.boundaries is not None and size <= plan.SCALAR_LIMIT:
                n = plan.write_scalar(obs, self.ibuf)
            else:
                n = plan.write(obs, self.ibuf)
        else:
            obs = self.spec.rows(obs)
            n = len(obs)
            if n > self.max_batch:
                raise HostError(f"{n} observations in one call, but the driver's buffers hold {self.max_batch}")
            t1 = time.perf_counter()
            x = self.spec.preprocess(obs)  # refuses NaN/inf; integer designs: the host's input quantizer
            packing.pack(x.reshape(n, *self.in_folded), self.in_dtype, out=self.ibuf[:n], check=False)
        if self._flush is not None:
            self._flush()
        t2 = time.perf_counter()
        self._run(n)
        t3 = time.perf_counter()
        if self._invalidate is not None:
            self._invalidate()
        if n == 1 and self._single_outputs is not None:  # the control loop's call: one shared read-only array
            out = self._single_outputs[self._output_byte[0]]
        elif self.output_plan is not None:
            out = self.output_plan.read(self.obuf, n)
        else:
            out = packing.unpack(self.obuf[:n], self.out_dtype, (n, *self.out_folded)).reshape(n, -1)
        t4 = time.perf_counter()
        self.last_times = CallTimes(t1 - t0, t2 - t1, t3 - t2, t4 - t3)
        self.calls += 1
        return out

    def _run(self, n: int) -> None:
        """Start both DMAs (the output one first, as FINN's driver does) and wait for ``ap_done``.

        Steady state: two writes (``ap_start``) and one read per call when the accelerator has
        finished by the first poll; the frame counts are written only when ``n`` changes.
        """
        if n != self._count:
            self.odma.write(REG_COUNT, n)
            self.idma.write(REG_COUNT, n)
            self._count = n
        self.odma.write(REG_CTRL, AP_START)
        self.idma.write(REG_CTRL, AP_START)
        if self.odma.read(REG_CTRL) & AP_DONE:
            return
        deadline = time.perf_counter() + self.timeout_s
        while not self.odma.read(REG_CTRL) & AP_DONE:
            if time.perf_counter() > deadline:
                self._timed_out()

    def _timed_out(self) -> None:
        what = f"the accelerator did not answer within {self.timeout_s:g} s (output DMA never reported done)"
        try:
            self.recover()
        except Exception as exc:  # noqa: BLE001  (any failure to reset is reported the same way)
            raise AcceleratorTimeout(f"{what}, and resetting it failed ({exc}): reload the overlay "
                                     "(restart the command) before the next call") from None
        raise AcceleratorTimeout(f"{what}; it was reset and takes the next call")


def _address(buf) -> int:
    for attr in ("device_address", "physical_address"):
        if hasattr(buf, attr):
            return int(getattr(buf, attr))
    raise HostError("buffer has no physical address")


def _sync(buf, method: str) -> None:
    fn = getattr(buf, method, None)
    if fn is not None:
        fn()
