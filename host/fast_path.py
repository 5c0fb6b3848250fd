"""The control loop's steady state: per call only what must happen.

The general :func:`host.packing.pack` / :func:`~host.packing.unpack` handle every FINN
datatype and shape, and re-derive the layout on every call. A control loop sends the same
shapes every step, so what does not change is computed once here, when the driver is made:

- :class:`InputPlan` — for inputs of whole bytes (the default INT8 codes of the host's input
  quantizer, or UINT8): the packed layout is then a fixed permutation of the codes' bytes, found
  once by packing one-hot probes with the general packer; each call quantizes into preallocated
  float32 scratch (the same float32 operations, in the same order, as
  :class:`host.quantizer.InputQuantizer`) and writes the permuted bytes straight into the DMA
  buffer.
- :class:`OutputPlan` — for outputs of one unsigned element of at most 8 bits a frame (the
  action index LabelSelect returns): the output is the masked first byte of each frame.

Designs outside these cases use the general path; ``tests/host/test_fast_path.py`` checks the
fast path bit for bit against it on real observations.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from host import packing
from host.errors import HostError
from host.quantizer import InputQuantizer


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
        return plan

    def write(self, obs: np.ndarray, buf: np.ndarray) -> int:
        """Quantize a batch ``(n, obs_dim)`` into the DMA buffer ``buf``; return ``n``."""
        x = np.asarray(obs, dtype=np.float32)
        if x.ndim == 1:
            x = x[None]
        n = x.shape[0]
        if n > self.max_batch:
            raise HostError(f"{n} observations in one call, but the driver's buffers hold {self.max_batch}")
        if not np.isfinite(x).all():
            raise HostError("an observation holds NaN or infinity; it is not sent to the accelerator")
        q, y = self.quantizer, self._scratch[:n]
        np.subtract(x, q.shift, out=y)  # the quantizer's float32 operations, in its order
        np.multiply(y, q.scale, out=y)
        np.divide(y, q.quant_scale, out=y)
        np.add(y, q.zero_point, out=y)
        np.rint(y, out=y)
        np.clip(y, q.min_int, q.max_int, out=y)
        buf.reshape(buf.shape[0], -1)[:n] = y[:, self.perm].astype(self.code_dtype).view(np.uint8)
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

    def read(self, buf: np.ndarray, n: int) -> np.ndarray:
        """The outputs ``(n, 1)`` of the first ``n`` frames (as the general unpack gives them)."""
        return (buf.reshape(buf.shape[0], -1)[:n, :1] & self.mask).astype(np.float32)
