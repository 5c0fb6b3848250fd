"""The student's input quantizer, run on the host: float observation in, the accelerator's integer out.

The fabric takes integers (accel.json ``input.transform.kind == "quantize"``): the float
arithmetic that turns an observation into the student's input code runs here, on the ARM,
in exactly the order and precision the Brevitas student runs it (float32 throughout)::

    x = (obs - shift) * scale                 # the student's fixed per-channel affine
    y = x / quant_scale + zero_point          # brevitas IntQuant.to_int
    q = clip(round_half_even(y), min_int, max_int)

``round_half_even`` is ``torch.round`` (Brevitas's ``RoundSte``) and ``np.rint`` alike, so a
value exactly on a rounding boundary, and −0.0, give the code the student computes. NaN and
infinity are refused: they have no code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from host.errors import HostError

ROUNDING = "half to even (torch.round, np.rint)"
NONFINITE = "an observation holds NaN or infinity; it is not sent to the accelerator"


def finite_float32(obs: np.ndarray) -> np.ndarray:
    """``obs`` as float32; NaN and infinity are refused (they have no input code and are never sent)."""
    x = np.asarray(obs, dtype=np.float32)
    if not np.isfinite(x).all():
        raise HostError(NONFINITE)
    return x


@dataclass(frozen=True)
class InputQuantizer:
    """Float observations to the accelerator's integer input codes (see the module docstring)."""

    shift: np.ndarray
    scale: np.ndarray
    quant_scale: np.float32
    zero_point: np.float32
    min_int: int
    max_int: int

    @classmethod
    def from_transform(cls, transform: dict[str, Any]) -> "InputQuantizer":
        """Build from accel.json's ``input.transform`` (kind ``quantize``)."""
        try:
            return cls(shift=np.asarray(transform["shift"], dtype=np.float32),
                       scale=np.asarray(transform["scale"], dtype=np.float32),
                       quant_scale=np.float32(transform["quant_scale"]), zero_point=np.float32(transform["zero_point"]),
                       min_int=int(transform["min_int"]), max_int=int(transform["max_int"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise HostError(f"accel.json's input transform is incomplete or malformed ({exc!r})") from None

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        """Integer codes (int32) of a batch ``(n, obs_dim)`` of observations; refuses NaN/inf."""
        x = finite_float32(obs)
        y = (x - self.shift) * self.scale / self.quant_scale + self.zero_point
        return np.clip(np.rint(y), self.min_int, self.max_int).astype(np.int32)


NOT_BINARY = "a binary frame holds a value other than 0 or 1; it is not sent to the accelerator"


def binary_frames(obs: np.ndarray) -> np.ndarray:
    """A batch of binary frames as their codes (uint8 0/1); any other value (NaN included) is refused."""
    x = np.asarray(obs)
    if x.dtype == np.bool_:
        return x.astype(np.uint8)
    codes = x.astype(np.uint8, copy=False) if np.issubdtype(x.dtype, np.integer) else None
    if codes is None or not np.array_equal(codes, x):
        codes = np.asarray(x, dtype=np.float64)
        if not ((codes == 0) | (codes == 1)).all():
            raise HostError(NOT_BINARY)
        return codes.astype(np.uint8)
    if codes.max(initial=0) > 1:
        raise HostError(NOT_BINARY)
    return codes
