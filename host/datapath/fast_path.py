"""The control loop's steady state: per call only what must happen.

The general :func:`host.datapath.packing.pack` / :func:`~host.datapath.packing.unpack` handle every FINN
datatype and shape, and re-derive the layout on every call. A control loop sends the same
shapes every step, so what does not change is computed once here, when the driver is made:

- :class:`InputPlan` — for inputs of whole bytes (the default INT8 codes of the host's input
  quantizer, or UINT8): the packed layout is then a fixed permutation of the codes' bytes, found
  once by packing one-hot probes with the general packer; each call quantizes into preallocated
  float32 scratch (the same float32 operations, in the same order, as
  :class:`host.datapath.quantizer.InputQuantizer`) and writes the permuted bytes straight into the DMA
  buffer.
- :class:`BinaryFramePlan` — for binary frames (MinAtar's): where each of a frame's values lands
  in the packed stream (which byte, which bit) is found once by packing one-hot probes with the
  general packer. Where each byte holds consecutive values, lowest first (FINN's layout for a
  stream word of at most 8 bits: a cell's channels), a call is one small matrix product of the
  frame's bytes with the place values; otherwise it gathers the values into stream order and
  packs eight bits a byte with ``np.packbits``; either way straight into the DMA buffer.
- :class:`OutputPlan` — for outputs of one unsigned element of at most 8 bits a frame (the
  action index LabelSelect returns): the output is the masked first byte of each frame.

Designs outside these cases use the general path; ``tests/host/test_fast_path.py`` checks the
fast path bit for bit against it on real observations.
"""

from __future__ import annotations

import math
import struct
from bisect import bisect_right
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from host.datapath import packing
from host.errors import HostError
from host.datapath.quantizer import NONFINITE, InputQuantizer


@dataclass
class InputPlan:
    """Quantize and pack a batch of observations straight into the input DMA buffer."""

    quantizer: InputQuantizer
    perm: np.ndarray  # packed byte j of a frame holds element perm[j]
    code_dtype: type  # np.int8 or np.uint8
    max_batch: int

    @classmethod
    def for_spec(cls, spec, max_batch: int) -> "InputPlan | None":
        """The plan for a design, or None where the general path is needed."""
        io_in = spec.data["input"]
        dt = packing.parse_datatype(io_in["finn_datatype"])
        quantizer = getattr(spec, "_quantizer", None)
        if quantizer is None or dt.kind != "int" or dt.bitwidth != 8:
            return None
        folded = tuple(io_in["folded_shape"][1:])
        k = int(np.prod(folded))
        if tuple(io_in["packed_shape"][1:]) != (*folded[:-1], folded[-1]) or k != spec.obs_dim:
            return None  # not one byte per element in the same shape
        perm = np.full(k, -1, dtype=np.intp)
        for i in range(k):
            probe = np.zeros(k)
            probe[i] = 1
            (byte,) = np.flatnonzero(packing.pack(probe.reshape(1, *folded), dt).reshape(-1))
            perm[byte] = i
        plan = cls(quantizer, perm, np.int8 if dt.signed else np.uint8, max_batch)
        plan._scratch = np.empty((max_batch, k), dtype=np.float32)
        if (np.asarray(quantizer.scale) > 0).all() and float(quantizer.quant_scale) > 0:
            plan.boundaries = [code_boundaries(quantizer, j) for j in range(k)]
            plan._order = [int(i) for i in perm]
            # code = min_int + the number of boundaries at or below the value; its stored byte:
            plan._byte_of = [(quantizer.min_int + c) & 0xFF for c in range(quantizer.max_int - quantizer.min_int + 1)]
        return plan

    write_one = None  # made by bind() where the design allows: one observation, straight into the buffer

    boundaries: list[list[float]] | None = None  # per channel: the least float32 giving each code
    SCALAR_LIMIT = 64  # up to this many values a call goes through the per-value path

    def write_scalar(self, obs: np.ndarray, buf: np.ndarray) -> int:
        """:meth:`write` for a small batch: each code found by bisection in its channel's
        boundaries (Python's C ``bisect``; a handful of values costs less than numpy's calls)."""
        if type(obs) is not np.ndarray or obs.dtype != np.float32:
            obs = np.asarray(obs, dtype=np.float32)
        values = obs.ravel().tolist()
        k = len(self._order)
        n = len(values) // k
        if n * k != len(values):
            raise HostError(f"observations of {len(values)} values in all: the design takes {k} per observation")
        if n > self.max_batch:
            raise HostError(f"{n} observations in one call, but the driver's buffers hold {self.max_batch}")
        if not math.isfinite(sum(values)):  # float32 values: their sum cannot overflow a double
            raise HostError(NONFINITE)
        bounds, order, byte_of = self.boundaries, self._order, self._byte_of
        view = self._view if self._view is not None and self._view_of is buf else memoryview(buf).cast("B")
        if n == 1:  # the control loop's call
            for byte, j in enumerate(order):
                view[byte] = byte_of[bisect_right(bounds[j], values[j])]
            return 1
        byte = 0
        for base in range(0, n * k, k):
            for j in order:  # packed byte by packed byte
                view[byte] = byte_of[bisect_right(bounds[j], values[base + j])]
                byte += 1
        return n

    _view = None
    _view_of = None

    def bind(self, buf: np.ndarray) -> None:
        """Keep a byte view of the driver's input buffer (it lives as long as the driver), and
        make :attr:`write_one` for it where the per-value path applies."""
        self._view, self._view_of = memoryview(buf).cast("B"), buf
        if self.boundaries is not None and len(self._order) <= self.SCALAR_LIMIT:
            self.write_one = one_observation_writer(self.boundaries, self._order, self._byte_of, self._view)

    def write(self, obs: np.ndarray, buf: np.ndarray) -> int:
        """Quantize a batch ``(n, obs_dim)`` (or one observation) into the DMA buffer ``buf``; return ``n``."""
        x = np.asarray(obs, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != len(self.perm):
            if x.size % len(self.perm):
                raise HostError(f"observations of {x.size} values in all: the design takes {len(self.perm)} per observation")
            x = x.reshape(-1, len(self.perm))
        n = x.shape[0]
        if n > self.max_batch:
            raise HostError(f"{n} observations in one call, but the driver's buffers hold {self.max_batch}")
        if not np.isfinite(x).all():
            raise HostError(NONFINITE)
        q, y = self.quantizer, self._scratch[:n]
        np.subtract(x, q.shift, out=y)  # the quantizer's float32 operations, in its order
        np.multiply(y, q.scale, out=y)
        np.divide(y, q.quant_scale, out=y)
        np.add(y, q.zero_point, out=y)
        np.rint(y, out=y)
        np.clip(y, q.min_int, q.max_int, out=y)
        buf.reshape(buf.shape[0], -1)[:n] = y[:, self.perm].astype(self.code_dtype).view(np.uint8)
        return n


class BinaryFramePlan:
    """Check and pack a batch of binary frames straight into the input DMA buffer.

    Each value of a frame is 0 or 1 and takes ``value_bits`` bits in the stream (the datatype of
    ``accel.json``'s input: ``UINT2``, see :data:`hw_build.export.BINARY_FRAME_DATATYPE`, or
    ``BINARY``); only the lowest of them can be set.
    """

    boundaries = None  # no per-value quantization: the driver's batch path takes every call
    write_one = None

    def __init__(self, spec, source: np.ndarray, max_batch: int, value_bits: int = 1) -> None:
        self.spec, self.source, self.max_batch = spec, source, max_batch
        self.n_bytes = len(source) // 8
        k = spec.obs_dim
        per = k // self.n_bytes if k % self.n_bytes == 0 else 0
        expected = np.full((self.n_bytes, 8), k, dtype=np.intp)
        fits = 0 < per and per * value_bits <= 8
        if fits:
            expected[:, :per * value_bits:value_bits] = np.arange(k).reshape(self.n_bytes, per)
        # consecutive values a byte, lowest first: bytes = values (n, bytes, per) @ (1, 2**b, 2**2b, ...)
        self.weights = (np.uint8(1) << (value_bits * np.arange(per)).astype(np.uint8)) \
            if fits and np.array_equal(source.reshape(self.n_bytes, 8), expected) else None

    @classmethod
    def for_spec(cls, spec, max_batch: int) -> "BinaryFramePlan | None":
        """The plan for a design that takes binary frames, or None."""
        io_in = spec.data["input"]
        if spec.input_transform.get("kind") != "binary":
            return None
        dtype = packing.parse_datatype(io_in["finn_datatype"])
        folded = tuple(io_in["folded_shape"][1:])
        k = int(np.prod(folded))
        n_bytes = int(np.prod(io_in["packed_shape"][1:]))
        source = np.full(n_bytes * 8, k, dtype=np.intp)  # index k: a padding bit, always 0
        for i in range(k):
            probe = np.zeros(k)
            probe[i] = 1
            packed = packing.pack(probe.reshape(1, *folded), io_in["finn_datatype"]).reshape(-1)
            (byte,) = np.flatnonzero(packed)
            source[8 * byte + int(packed[byte]).bit_length() - 1] = i
        return cls(spec, source, max_batch, dtype.bitwidth)

    def bind(self, buf: np.ndarray) -> None:
        """Nothing to keep: every call writes through numpy."""

    def write(self, obs: np.ndarray, buf: np.ndarray) -> int:
        """Refuse frames of another shape or with values other than 0/1; pack the rest into ``buf``; return ``n``."""
        from host.datapath.quantizer import binary_frames

        rows = self.spec.rows(obs)
        n = len(rows)
        if n > self.max_batch:
            raise HostError(f"{n} observations in one call, but the driver's buffers hold {self.max_batch}")
        if self.weights is not None:
            codes = rows.view(np.uint8) if rows.dtype == np.bool_ else binary_frames(rows)
            np.matmul(codes.reshape(n, self.n_bytes, -1), self.weights, out=buf.reshape(buf.shape[0], -1)[:n])
            return n
        bits = np.zeros((n, rows.shape[1] + 1), dtype=np.uint8)
        bits[:, :-1] = binary_frames(rows)
        bits = bits[:, self.source].reshape(n, self.n_bytes, 8)
        buf.reshape(buf.shape[0], -1)[:n] = np.packbits(bits, axis=-1, bitorder="little").reshape(n, self.n_bytes)
        return n


@dataclass
class OutputPlan:
    """Read one unsigned element of at most 8 bits a frame from the output DMA buffer."""

    mask: int

    @classmethod
    def for_spec(cls, spec) -> "OutputPlan | None":
        """The plan for a design, or None where the general path is needed."""
        io_out = spec.data["output"]
        dt = packing.parse_datatype(io_out["finn_datatype"])
        if dt.kind != "int" or dt.signed or dt.bitwidth > 8 or int(np.prod(io_out["folded_shape"][1:])) != 1:
            return None
        return cls((1 << dt.bitwidth) - 1)

    _view = None
    _view_of = None
    _stride = 1

    def bind(self, buf: np.ndarray) -> None:
        """Keep a byte view of the driver's output buffer (it lives as long as the driver)."""
        self._view, self._view_of, self._stride = memoryview(buf).cast("B"), buf, buf.size // buf.shape[0]
        self._out = np.empty((buf.shape[0], 1), dtype=np.float32)
        # One frame's output is one of at most 256 values: each is made once as a read-only
        # (1, 1) array and handed out for every call that returns it (no array made per call).
        self.single = []
        for byte in range(256):
            value = np.full((1, 1), byte & self.mask, dtype=np.float32)
            value.flags.writeable = False
            self.single.append(value)

    single: list[np.ndarray] | None = None  # by the first frame's byte: the output (1, 1), shared and read-only

    def read(self, buf: np.ndarray, n: int) -> np.ndarray:
        """The outputs ``(n, 1)`` of the first ``n`` frames (as the general unpack gives them), a new array."""
        if self._view_of is buf and n <= 16:  # a few frames: read the bytes, skip most of numpy's calls
            view, stride, mask, out = self._view, self._stride, self.mask, self._out
            for i in range(n):
                out[i, 0] = view[i * stride] & mask
            return out[:n].copy()
        return (buf.reshape(buf.shape[0], -1)[:n, :1] & self.mask).astype(np.float32)


FLOAT32 = np.dtype(np.float32)  # native byte order; builtin dtypes are singletons, so `is` tells


def one_observation_writer(boundaries: list[list[float]], order: list[int], byte_of: list[int],
                           view: memoryview) -> Callable[[Any], bool]:
    """A function that quantizes one observation straight into ``view``, the input buffer's bytes.

    It takes a C-contiguous native float32 array of the design's size (anything else: it
    returns False and writes nothing, and the caller takes another path), refuses NaN and
    infinity (:class:`HostError`), and writes what :meth:`InputPlan.write_scalar` writes for one
    observation: each value's code found by a C ``bisect`` in its channel's boundaries, its byte
    put at its packed position. It is made once per design as straight-line code (the way
    ``dataclasses`` and ``namedtuple`` make their methods), because in a control loop the call
    runs with cold caches after ``env.step`` and the fabric's wait, where each builtin called
    and each loop turn costs a few hundred nanoseconds (bench_host_loop: 2.1 µs against 3.9 µs for
    the loop in ``write_scalar``). The source holds only integers of the design, no outside text.
    """
    k = len(order)
    namespace: dict[str, Any] = {"unpack": struct.Struct(f"={k}f").unpack, "view": view, "bisect": bisect_right,
                                 "byte_of": byte_of, "FLOAT32": FLOAT32, "HostError": HostError,
                                 "NONFINITE": NONFINITE, "struct_error": struct.error}
    values = ", ".join(f"v{i}" for i in range(k))
    lines = ["def write_one(obs):",
             "    try:",
             "        if obs.dtype is not FLOAT32:",
             "            return False",
             f"        {values}, = unpack(obs)  # exactly the design's size, or struct_error",
             "    except (AttributeError, TypeError, ValueError, struct_error):  # not an array of it, or not contiguous",
             "        return False",
             f"    total = {' + '.join(f'v{i}' for i in range(k))}  # float32 values: no overflow in a double",
             "    if total - total:  # NaN exactly when a value is NaN or infinite",
             "        raise HostError(NONFINITE)"]
    for byte, element in enumerate(order):
        namespace[f"bounds{byte}"] = boundaries[element]
        lines.append(f"    view[{byte}] = byte_of[bisect(bounds{byte}, v{element})]")
    lines.append("    return True")
    exec(compile("\n".join(lines) + "\n", f"<one_observation_writer k={k}>", "exec"), namespace)  # noqa: S102
    return namespace["write_one"]


def _ordered(bits: np.ndarray) -> np.ndarray:
    """float32 bit patterns (as int64) to integers in the order of the floats they encode."""
    return np.where(bits < 0x8000_0000, bits + 0x8000_0000, 0xFFFF_FFFF - bits)


def _unordered(keys: np.ndarray) -> np.ndarray:
    return np.where(keys >= 0x8000_0000, keys - 0x8000_0000, 0xFFFF_FFFF - keys).astype(np.uint32)


def code_boundaries(quantizer: InputQuantizer, channel: int) -> list[float]:
    """The least finite float32 that the quantizer maps to each code above its minimum, for one channel.

    The quantizer is monotone in its input (a positive scale and quantization step, then
    rounding and clipping), so ``code(x) = min_int + #(boundaries <= x)``; each boundary is
    found by bisection over the ordered float32 values, evaluating the quantizer itself, so
    the per-value path is bit-exact by construction (and tested against it).
    """
    codes = np.arange(quantizer.min_int + 1, quantizer.max_int + 1)

    def code_of(keys: np.ndarray) -> np.ndarray:
        x = _unordered(keys).view(np.float32)
        obs = np.zeros((len(x), len(np.atleast_1d(quantizer.shift))), dtype=np.float32)
        obs[:, channel] = x
        with np.errstate(over="ignore"):  # the probes reach float32's extremes on purpose
            return quantizer(obs)[:, channel]

    finite_max = float(np.finfo(np.float32).max)
    lo = np.full(len(codes), int(_ordered(np.array([np.float32(-finite_max).view(np.uint32)], dtype=np.int64))[0]))
    hi = np.full(len(codes), int(_ordered(np.array([np.float32(finite_max).view(np.uint32)], dtype=np.int64))[0]))
    # Invariant: code(lo) < c <= code(hi) for codes reachable at all; unreachable codes end at +max.
    reach_low = code_of(lo) >= codes
    while (hi - lo > 1).any():
        mid = (lo + hi) // 2
        above = code_of(mid) >= codes
        hi = np.where(above, mid, hi)
        lo = np.where(above, lo, mid)
    bounds = _unordered(hi).view(np.float32).astype(np.float64)
    bounds[reach_low] = -np.inf  # codes the quantizer gives even to the lowest finite value
    unreachable = code_of(hi) < codes
    bounds[unreachable] = np.inf
    return bounds.tolist()
