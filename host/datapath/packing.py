"""Packing of accelerator inputs and unpacking of its outputs, bit-identical to FINN's driver.

FINN's generated PYNQ driver packs a folded input with
``finnpy_to_packed_bytearray(x, dt, reverse_inner=True, reverse_endian=True)`` and unpacks the
output with ``packed_bytearray_to_finnpy(buf, dt, folded_shape, reverse_inner=True,
reverse_endian=True)``. With both reversals the layout is simple: every row of the innermost
dimension becomes one little-endian integer in which element ``i`` holds bits
``[i*w, (i+1)*w)`` (``w`` = the datatype's bit width), zero-padded at the top to whole bytes.
This module produces and reads that layout with numpy alone (1.x and 2.x), so the board needs
neither finn nor qonnx nor bitstring.

Datatypes are named as FINN names them: ``INT1``..``INT32``, ``UINT1``..``UINT32``
(``UINT1`` is ``BINARY``), ``BIPOLAR``, ``TERNARY``, ``FIXED<w,i>`` and ``FLOAT32``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Literal

import numpy as np

__all__ = [
    "DataType",
    "MAX_BITWIDTH",
    "pack",
    "packed_shape",
    "parse_datatype",
    "unpack",
    "unpack_codes",
    "validate_values",
]

MAX_BITWIDTH = 32

Kind = Literal["int", "bipolar", "ternary", "fixed", "float"]
BytesLike = np.ndarray | bytes | bytearray | memoryview

_FLOAT32_MAX = float(np.finfo(np.float32).max)


@dataclass(frozen=True)
class DataType:
    """A FINN datatype, reduced to what packing needs.

    ``kind`` is ``int`` (INTn, UINTn, BINARY), ``bipolar`` ({-1, +1} stored as one bit,
    0 meaning -1), ``ternary`` ({-1, 0, +1} in two bits), ``fixed`` (FINN's ``FIXED<w,i>``:
    a signed w-bit integer times ``2**-(w-i)``) or ``float`` (IEEE float32).
    """

    name: str
    bitwidth: int
    signed: bool
    kind: Kind
    frac_bits: int = 0

    @property
    def is_integer(self) -> bool:
        """Whether values are integers (as FINN says: fixed point and float are not)."""
        return self.kind in ("int", "bipolar", "ternary")

    @property
    def is_fixed_point(self) -> bool:
        """Whether this is a ``FIXED<w,i>`` type."""
        return self.kind == "fixed"

    @property
    def int_bits(self) -> int:
        """Integer bits, sign included (``i`` of ``FIXED<w,i>``; the bit width otherwise)."""
        return self.bitwidth - self.frac_bits

    @property
    def scale(self) -> float:
        """The value of one step of the stored integer: ``2**-frac_bits`` (1 unless fixed point)."""
        return 2.0 ** -self.frac_bits

    @property
    def min_value(self) -> float:
        """The smallest representable value."""
        if self.kind == "float":
            return -_FLOAT32_MAX
        if self.kind in ("bipolar", "ternary"):
            return -1
        return self.min_code * self.scale if self.kind == "fixed" else self.min_code

    @property
    def max_value(self) -> float:
        """The largest representable value."""
        if self.kind == "float":
            return _FLOAT32_MAX
        if self.kind in ("bipolar", "ternary"):
            return 1
        return self.max_code * self.scale if self.kind == "fixed" else self.max_code

    @property
    def min_code(self) -> int:
        """The smallest stored integer of an int or fixed type (its two's complement range)."""
        return -(1 << (self.bitwidth - 1)) if self.signed else 0

    @property
    def max_code(self) -> int:
        """The largest stored integer of an int or fixed type."""
        return (1 << (self.bitwidth - 1)) - 1 if self.signed else (1 << self.bitwidth) - 1

    def describe(self) -> str:
        """The values this datatype holds, in words (for error messages)."""
        if self.kind == "float":
            return "finite float32 values"
        if self.kind == "bipolar":
            return "-1 or +1"
        if self.kind == "ternary":
            return "-1, 0 or +1"
        if self.kind == "fixed":
            return f"multiples of {self.scale:g} from {self.min_value:g} to {self.max_value:g}"
        return f"integers from {self.min_code} to {self.max_code}"


_INT_NAME = re.compile(r"(U?)INT(\d+)")
_FIXED_NAME = re.compile(r"FIXED<\s*(\d+)\s*,\s*(-?\d+)\s*>")


@cache
def _parse_name(name: str) -> DataType:
    special = {
        "BINARY": DataType("BINARY", 1, False, "int"),
        "BIPOLAR": DataType("BIPOLAR", 1, True, "bipolar"),
        "TERNARY": DataType("TERNARY", 2, True, "ternary"),
        "FLOAT32": DataType("FLOAT32", 32, True, "float"),
    }
    if name in special:
        return special[name]
    match = _INT_NAME.fullmatch(name)
    if match and 1 <= int(match.group(2)) <= MAX_BITWIDTH:
        unsigned, width = match.group(1) == "U", int(match.group(2))
        if unsigned and width == 1:
            return special["BINARY"]  # FINN's canonical name for UINT1
        return DataType(f"{'UINT' if unsigned else 'INT'}{width}", width, not unsigned, "int")
    match = _FIXED_NAME.fullmatch(name)
    if match:
        width, int_bits = int(match.group(1)), int(match.group(2))
        # int_bits >= 1: FINN's unpacking sign-extends the integer part, which needs a sign bit.
        if 2 <= width <= MAX_BITWIDTH and 1 <= int_bits < width:
            return DataType(f"FIXED<{width},{int_bits}>", width, True, "fixed", width - int_bits)
    raise ValueError(
        f"Unknown or unsupported FINN datatype {name!r}: expected INTn or UINTn "
        f"(n = 1..{MAX_BITWIDTH}), BINARY, BIPOLAR, TERNARY, FIXED<w,i> (1 <= i < w <= "
        f"{MAX_BITWIDTH}) or FLOAT32."
    )


def parse_datatype(dtype: DataType | str) -> DataType:
    """Return the :class:`DataType` for a FINN datatype name such as ``"INT4"`` or ``"FIXED<8,4>"``."""
    if isinstance(dtype, DataType):
        return dtype
    if isinstance(dtype, str):
        return _parse_name(dtype.strip())
    raise TypeError(f"A FINN datatype is given by its name (a str), not by a {type(dtype).__name__}.")


def packed_shape(shape: int | Sequence[int], dtype: DataType | str) -> tuple[int, ...]:
    """Shape of the packed uint8 buffer for a folded tensor of ``shape``: the innermost
    dimension becomes ``ceil(shape[-1] * bitwidth / 8)`` bytes."""
    dt = parse_datatype(dtype)
    dims = (int(shape),) if isinstance(shape, (int, np.integer)) else tuple(int(d) for d in shape)
    if not dims:
        dims = (1,)
    return dims[:-1] + (_row_bytes(dims[-1], dt.bitwidth),)


def validate_values(values: np.ndarray, dtype: DataType | str) -> None:
    """Raise ``ValueError`` unless every value is exactly representable in ``dtype``.

    NaN and infinities never are, not even for FLOAT32, where a finite value must also stay
    finite once rounded to float32.
    """
    dt = parse_datatype(dtype)
    _check_representable(np.atleast_1d(_real_array(values, dt)), dt)


def pack(
    values: np.ndarray,
    dtype: DataType | str,
    folded_shape: Sequence[int] | None = None,
    *,
    check: bool = True,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Pack ``values`` into the uint8 layout the accelerator's input DMA reads.

    Bit-identical to FINN's ``finnpy_to_packed_bytearray(values, dt, reverse_inner=True,
    reverse_endian=True)``. The innermost dimension is packed (padded to whole bytes); the
    result is a new C-contiguous array of shape :func:`packed_shape` of the values' shape.

    Args:
        values: the tensor, as floats or integers (a 0-d value packs as a 1-element row).
        dtype: the accelerator input's FINN datatype name, or a :class:`DataType`.
        folded_shape: when given, ``values`` are first reshaped to it (FINN's folded input shape).
        check: refuse values not representable in ``dtype`` (see :func:`validate_values`).
            Unchecked, integer codes keep only their low bits and fractions are truncated.
        out: a uint8 buffer with as many bytes as the result (e.g. a pynq buffer) to write into.

    Returns:
        The packed bytes (``out`` itself when given).
    """
    dt = parse_datatype(dtype)
    arr = _real_array(values, dt)
    if folded_shape is not None:
        arr = arr.reshape(tuple(folded_shape))
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if check:
        _check_representable(arr, dt)
    packed = _pack_rows(arr, dt)
    if out is None:
        return packed
    if out.dtype != np.uint8 or out.size != packed.size:
        raise ValueError(
            f"The output buffer must be uint8 with {packed.size} bytes, got {out.dtype} with {out.size}."
        )
    np.copyto(out, packed.reshape(out.shape))
    return out


def unpack(packed: BytesLike, dtype: DataType | str, shape: int | Sequence[int]) -> np.ndarray:
    """Unpack the accelerator's output bytes into a new float32 tensor of ``shape``.

    Bit-identical to FINN's ``packed_bytearray_to_finnpy(packed, dt, shape, reverse_inner=True,
    reverse_endian=True)``: values come back as float32 (BIPOLAR as -1/+1, FIXED scaled), so
    INT32/UINT32 values beyond 2**24 are rounded as FINN rounds them; :func:`unpack_codes`
    gives the exact integers.

    Args:
        packed: the bytes (any shape, e.g. the pynq output buffer), ``prod(packed_shape(shape))`` of them.
        dtype: the accelerator output's FINN datatype name, or a :class:`DataType`.
        shape: the unpacked (folded) shape; its innermost dimension says where the padding starts.
    """
    dt = parse_datatype(dtype)
    dims, flat = _flat_bytes(packed, dt, shape)
    width = dt.bitwidth
    if dt.kind == "float":
        values = flat.view("<f4")
    elif dt.kind == "int" and width in (8, 16, 32):
        values = flat.view(("<i" if dt.signed else "<u") + str(width // 8))
    else:
        values = _decode(_codes_from_bytes(flat, dims[-1], width), dt)
    return values.astype(np.float32).reshape(dims)  # astype copies: the DMA buffer is reused


def unpack_codes(
    packed: BytesLike, dtype: DataType | str, shape: int | Sequence[int]
) -> np.ndarray:
    """Unpack integer and fixed-point outputs exactly, as an int64 tensor of ``shape``.

    Signed types are sign-extended; BIPOLAR gives -1/+1, TERNARY -1/0/+1; a FIXED value is its
    stored integer (times ``DataType.scale`` for the value). FLOAT32 is refused.
    """
    dt = parse_datatype(dtype)
    if dt.kind == "float":
        raise ValueError("FLOAT32 outputs have no integer codes: use unpack().")
    dims, flat = _flat_bytes(packed, dt, shape)
    codes = _signed(_codes_from_bytes(flat, dims[-1], dt.bitwidth), dt)
    if dt.kind == "bipolar":
        codes = 2 * codes - 1
    return codes.reshape(dims)


def _row_bytes(n: int, width: int) -> int:
    return (n * width + 7) // 8


def _real_array(values: np.ndarray, dt: DataType) -> np.ndarray:
    arr = np.asarray(values)
    kind = arr.dtype.kind
    if kind not in "biuf":
        raise ValueError(f"Cannot pack values of numpy dtype {arr.dtype} as {dt.name}: pass real numbers.")
    if kind == "f" and arr.dtype.itemsize < 4:
        arr = arr.astype(np.float32)  # float16 would overflow when scaled to fixed-point codes
    return arr


def _check_representable(arr: np.ndarray, dt: DataType) -> None:
    """Raise ``ValueError`` naming the first value that ``dt`` cannot represent."""
    if _all_representable(arr, dt):
        return
    index = tuple(int(i) for i in np.argwhere(~_representable(arr, dt))[0])
    value = arr[index].item()
    raise ValueError(f"Value {value!r} at index {index} is not representable as {dt.name} ({dt.describe()}).")


def _all_representable(arr: np.ndarray, dt: DataType) -> bool:
    """Fast whole-array form of :func:`_representable` (a handful of numpy calls)."""
    if dt.kind == "bipolar":
        return not np.count_nonzero(np.abs(arr) != 1)  # NaN != 1 as well
    if dt.kind == "ternary":
        return bool(_representable(arr, dt).all())
    if arr.dtype.kind in "biu" and _container_fits(arr.dtype, dt):
        return True
    if dt.kind == "float":
        if arr.dtype != np.float32:
            with np.errstate(over="ignore"):
                arr = arr.astype(np.float32)
        return np.count_nonzero(np.isfinite(arr)) == arr.size
    codes = arr * float(1 << dt.frac_bits) if dt.kind == "fixed" else arr  # exact: a power of 2
    if codes.dtype.kind == "f" and np.count_nonzero(np.rint(codes) != codes):
        return False  # a fraction or NaN (infinities fail the range test)
    return not np.count_nonzero((codes < dt.min_code) | (codes > dt.max_code))


@cache
def _container_fits(container: np.dtype, dt: DataType) -> bool:
    """Whether every value of an integer numpy dtype is representable in ``dt`` (int8 in INT8)."""
    if dt.kind == "float":
        return True
    if dt.kind != "int":
        return False
    low, high = (0, 1) if container.kind == "b" else (np.iinfo(container).min, np.iinfo(container).max)
    return dt.min_code <= low and high <= dt.max_code


def _representable(arr: np.ndarray, dt: DataType) -> np.ndarray:
    """Elementwise: is the value exactly representable in ``dt``?"""
    with np.errstate(over="ignore", invalid="ignore"):
        if dt.kind == "float":
            if arr.dtype.kind == "f":
                return np.isfinite(arr.astype(np.float32))
            return np.ones(arr.shape, dtype=bool)
        if dt.kind == "bipolar":
            return (arr == 1) | (arr == -1)
        if dt.kind == "ternary":
            return (arr == 1) | (arr == 0) | (arr == -1)
        codes = arr * float(1 << dt.frac_bits) if dt.kind == "fixed" else arr
        ok = (codes >= dt.min_code) & (codes <= dt.max_code)  # False for NaN
        if codes.dtype.kind == "f":
            ok &= np.rint(codes) == codes
        return ok


def _codes(arr: np.ndarray, dt: DataType) -> np.ndarray:
    """The stored integer of each int, bipolar, ternary or fixed value, in an integer array.

    Negative values stay negative: casting to an unsigned container of ``bitwidth`` or more
    bits (modulo 2**bits) gives the two's complement pattern in the low bits.
    """
    if dt.kind == "bipolar":
        return arr > 0  # FINN stores -1 as 0 and +1 as 1
    if dt.kind == "fixed":
        arr = arr * float(1 << dt.frac_bits)
    # Truncation, like FINN's astype(int64); checked values are integers already.
    return arr.astype(np.int64) if arr.dtype.kind == "f" else arr


def _pack_rows(arr: np.ndarray, dt: DataType) -> np.ndarray:
    lead, n, width = arr.shape[:-1], arr.shape[-1], dt.bitwidth
    if dt.kind == "float":
        return arr.astype("<f4", order="C").view(np.uint8).reshape(lead + (4 * n,))
    codes = _codes(arr, dt)
    container = 1 if width <= 8 else 2 if width <= 16 else 4
    code_bytes = codes.astype(f"<u{container}", order="C").view(np.uint8)
    if width == 8 * container:
        return code_bytes.reshape(lead + (n * container,))
    # Bits of each code from its least significant one; keep `width` of them per code, join
    # the rows' codes, and packbits pads the last byte's top bits with zeros, as FINN does.
    bits = np.unpackbits(code_bytes.reshape(lead + (n, container)), axis=-1, bitorder="little")
    return np.packbits(bits[..., :width].reshape(lead + (n * width,)), axis=-1, bitorder="little")


def _flat_bytes(
    packed: BytesLike, dt: DataType, shape: int | Sequence[int]
) -> tuple[tuple[int, ...], np.ndarray]:
    """Check that ``packed`` holds a packed tensor of ``shape``; return the shape and the bytes, 1-D."""
    dims = (int(shape),) if isinstance(shape, (int, np.integer)) else tuple(shape)
    if not dims or dims[-1] < 1:
        raise ValueError(f"The unpacked shape must have an innermost dimension of at least 1, got {dims}.")
    if isinstance(packed, (bytes, bytearray, memoryview)):
        flat = np.frombuffer(packed, dtype=np.uint8)
    else:
        flat = np.asarray(packed)
        if flat.dtype != np.uint8:
            raise ValueError(f"Packed accelerator data must be uint8 bytes, got numpy dtype {flat.dtype}.")
        flat = np.ascontiguousarray(flat).reshape(-1)
    expected = math.prod(dims[:-1]) * _row_bytes(dims[-1], dt.bitwidth)
    if flat.size != expected:
        raise ValueError(
            f"A packed {dt.name} tensor of shape {dims} takes {expected} bytes, got {flat.size}."
        )
    return dims, flat


def _codes_from_bytes(flat: np.ndarray, n: int, width: int) -> np.ndarray:
    """The unsigned ``width``-bit codes, as int64 (rows, n); each row's padding bits are dropped."""
    if width in (8, 16, 32):
        return flat.view(f"<u{width // 8}").astype(np.int64).reshape(-1, n)
    row_bytes = _row_bytes(n, width)
    rows = flat.reshape(-1, row_bytes)
    if row_bytes <= 8:
        # Short rows, as a control loop's outputs are: one 64-bit word per row, then shifts.
        words = np.zeros((rows.shape[0], 8), dtype=np.uint8)
        words[:, :row_bytes] = rows
        # Arithmetic shifts of a signed word leave the masked low bits as logical ones would.
        return (words.view("<i8") >> _word_shifts(n, width)) & ((1 << width) - 1)
    bits = np.unpackbits(rows, axis=-1, bitorder="little")[:, : n * width].reshape(-1, n, width)
    return bits @ _bit_weights(width)


@cache
def _word_shifts(n: int, width: int) -> np.ndarray:
    return np.arange(0, n * width, width, dtype=np.int64)


@cache
def _bit_weights(width: int) -> np.ndarray:
    return np.left_shift(np.int64(1), np.arange(width, dtype=np.int64))


def _signed(codes: np.ndarray, dt: DataType) -> np.ndarray:
    """Sign-extend two's complement codes of signed int and fixed types; TERNARY maps 3 to -1."""
    if dt.kind == "ternary":
        # As FINN does: only the pattern 0b11 is negative (0b10 is no ternary value).
        return np.where(codes == 3, -1, codes)
    if dt.kind in ("int", "fixed") and dt.signed:
        return codes - ((codes >> (dt.bitwidth - 1)) << dt.bitwidth)
    return codes


def _decode(codes: np.ndarray, dt: DataType) -> np.ndarray:
    """Values of unsigned codes, in a container that converts to float32 as FINN's does."""
    if dt.kind == "bipolar":
        return 2 * codes - 1
    codes = _signed(codes, dt)
    if dt.kind == "fixed":
        # FINN converts the integer part to float32 first, then adds the fraction in float64;
        # with more than 24 integer bits that rounds twice, and this rounds the same way.
        int_part = (codes >> dt.frac_bits).astype(np.float32).astype(np.float64)
        return int_part + (codes & ((1 << dt.frac_bits) - 1)) * dt.scale
    return codes
