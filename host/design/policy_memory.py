"""The word layout of a writable design's memories: a student's weights and thresholds as the 32-bit
words written over AXI-lite, and back.

A writable design (``make estimate WEIGHTS=runtime``) has one AXI-lite memory per layer: an MVAU's
decoupled weight memory (FINN's ``memstream``) and a ``Thresholding_rtl`` layer's threshold
memory. This module lays a layer's integer array out in that memory exactly as FINN's driver step
does (``make_weight_file(..., "decoupled_runtime", ...)`` of ``MVAU`` and ``Thresholding_rtl``,
finn-plus 1.6.1), which is also the ``.dat`` text finn-plus-driver's ``load_runtime_weights``
reads (one 32-bit word a line, 8 lowercase hex digits), and reads words back into the array, so
the emulated board computes with whatever was written (a wrong address or word order gives wrong
weights, not right ones). numpy only: it runs on the board.

MVAU weights ``W`` (``mw × mh``, ONNX's in × out): the memory has ``mh/pe · mw/simd`` lines; line
``l = r · (mw/simd) + k`` holds, for every PE ``p`` and SIMD lane ``s``, the weight of output
``r · pe + p`` and input ``k · simd + s``, PE 0 lane 0 in the least significant bits, each at the
weight datatype's width in two's complement; a line takes the next power of two of 32-bit words,
the least significant word first.

Thresholding thresholds ``T`` (``channels × steps``): per channel fold, ``2^⌈log2 pe⌉`` channel
slots (the last ``2^⌈log2 pe⌉ - pe`` empty), each ``2^⌈log2 steps⌉`` words, one threshold a word
(its datatype's width, two's complement, zero above).
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

import numpy as np

from host.design.schema import datatype_range
from host.errors import HostError


def _bits(dtype: str) -> int:
    return datatype_range(dtype)[0]


def _to_codes(values: np.ndarray, dtype: str) -> np.ndarray:
    """Integers of ``dtype`` as their unsigned two's-complement codes (BIPOLAR: -1 → 0, +1 → 1)."""
    bits, lo, hi = datatype_range(dtype)
    v = np.asarray(values, dtype=np.int64)
    if dtype == "BIPOLAR":
        v = (v + 1) // 2
    elif v.size and (v.min() < lo or v.max() > hi):
        raise HostError(f"values {int(v.min())}..{int(v.max())} do not fit {dtype}")
    return (v & ((1 << bits) - 1)).astype(np.uint64)


def _from_codes(codes: np.ndarray, dtype: str) -> np.ndarray:
    bits, lo, _ = datatype_range(dtype)
    c = np.asarray(codes, dtype=np.int64) & ((1 << bits) - 1)
    if dtype == "BIPOLAR":
        return 2 * c - 1
    if lo < 0:
        c = np.where(c >= 1 << (bits - 1), c - (1 << bits), c)
    return c


def mvau_line_words(layer: dict[str, Any]) -> int:
    """32-bit words a line of an MVAU's weight memory takes (FINN: the next power of two)."""
    width = layer["pe"] * layer["simd"] * _bits(layer["weight_dtype"])
    return max(1, 2 ** math.ceil(math.log2(width / 32)))


def thresholds_steps(layer: dict[str, Any]) -> int:
    """Thresholds per channel of a Thresholding layer (accel.json's ``steps``, or what its output width implies)."""
    return int(layer.get("steps") or (2 ** _bits(layer["output_dtype"]) - 1))


def memory_words(layer: dict[str, Any]) -> int:
    """How many 32-bit words a writable layer's memory holds."""
    if layer["op"] == "MVAU":
        return layer["mh"] // layer["pe"] * (layer["mw"] // layer["simd"]) * mvau_line_words(layer)
    slots = 1 << (layer["pe"] - 1).bit_length()
    return layer["channels"] // layer["pe"] * slots * (1 << max(0, math.ceil(math.log2(thresholds_steps(layer)))))


def _check_fold(layer: dict[str, Any]) -> None:
    if layer["op"] == "MVAU" and (layer["mw"] % layer["simd"] or layer["mh"] % layer["pe"]):
        raise HostError(f"layer {layer['name']}: SIMD {layer['simd']} / PE {layer['pe']} do not divide {layer['mw']} × {layer['mh']}")
    if layer["op"] == "Thresholding" and layer["channels"] % layer["pe"]:
        raise HostError(f"layer {layer['name']}: PE {layer['pe']} does not divide its {layer['channels']} channels")


def mvau_words(weights: np.ndarray, layer: dict[str, Any]) -> np.ndarray:
    """An MVAU's weight matrix (``mw × mh``) as the words of its writable memory (see the module docstring)."""
    _check_fold(layer)
    mw, mh, pe, simd = layer["mw"], layer["mh"], layer["pe"], layer["simd"]
    w = np.asarray(weights)
    if w.shape != (mw, mh):
        raise HostError(f"layer {layer['name']} takes {mw} × {mh} weights, got an array of shape {w.shape}")
    bits = _bits(layer["weight_dtype"])
    codes = _to_codes(w.T, layer["weight_dtype"])  # (mh, mw): FINN's (out, in)
    # [r, p, k, s] = weight of output r*pe + p and input k*simd + s; line l = r*(mw/simd) + k
    lanes = codes.reshape(mh // pe, pe, mw // simd, simd).transpose(0, 2, 1, 3).reshape(-1, pe * simd)
    per_line = mvau_line_words(layer)
    out = np.zeros((len(lanes), per_line), dtype=np.uint32)
    shifts = [i * bits for i in range(pe * simd)]
    for line, row in enumerate(lanes):
        value = 0
        for shift, code in zip(shifts, row.tolist()):
            value |= int(code) << shift
        for word in range(per_line):
            out[line, word] = (value >> (32 * word)) & 0xFFFF_FFFF
    return out.reshape(-1)


def mvau_weights(words: np.ndarray, layer: dict[str, Any]) -> np.ndarray:
    """The weight matrix (``mw × mh``) an MVAU's writable memory holds: :func:`mvau_words` read back."""
    _check_fold(layer)
    mw, mh, pe, simd = layer["mw"], layer["mh"], layer["pe"], layer["simd"]
    bits, per_line = _bits(layer["weight_dtype"]), mvau_line_words(layer)
    words = np.asarray(words, dtype=np.uint64).reshape(-1, per_line)
    codes = np.zeros((len(words), pe * simd), dtype=np.int64)
    mask = (1 << bits) - 1
    for line, row in enumerate(words.tolist()):
        value = 0
        for word, part in enumerate(row):
            value |= int(part) << (32 * word)
        for lane in range(pe * simd):
            codes[line, lane] = (value >> (lane * bits)) & mask
    w = codes.reshape(mh // pe, mw // simd, pe, simd).transpose(0, 2, 1, 3).reshape(mh, mw)
    return _from_codes(w, layer["weight_dtype"]).T


def _threshold_layout(layer: dict[str, Any]) -> tuple[int, int, int]:
    steps = thresholds_steps(layer)
    return steps, 1 << max(0, math.ceil(math.log2(steps))), 1 << (layer["pe"] - 1).bit_length()


def threshold_words(thresholds: np.ndarray, layer: dict[str, Any]) -> np.ndarray:
    """A Thresholding layer's thresholds (``channels × steps``; one row stands for every channel) as
    the words of its writable memory (see the module docstring)."""
    _check_fold(layer)
    channels, pe = layer["channels"], layer["pe"]
    steps, width, slots = _threshold_layout(layer)
    t = np.asarray(thresholds)
    if t.ndim != 2 or t.shape[1] != steps or t.shape[0] not in (1, channels):
        raise HostError(f"layer {layer['name']} takes {channels} × {steps} thresholds, got an array of shape {t.shape}")
    if not np.array_equal(t, np.round(t)):
        raise HostError(f"layer {layer['name']}: a writable threshold memory holds integers, the thresholds are not")
    t = np.broadcast_to(t, (channels, steps))
    codes = _to_codes(t, layer["threshold_dtype"])
    out = np.zeros((channels // pe, slots, width), dtype=np.uint32)
    out[:, :pe, :steps] = codes.reshape(channels // pe, pe, steps)
    return out.reshape(-1)


def layer_thresholds(words: np.ndarray, layer: dict[str, Any]) -> np.ndarray:
    """The thresholds (``channels × steps``) a Thresholding layer's writable memory holds."""
    _check_fold(layer)
    channels, pe = layer["channels"], layer["pe"]
    steps, width, slots = _threshold_layout(layer)
    codes = np.asarray(words, dtype=np.int64).reshape(channels // pe, slots, width)[:, :pe, :steps]
    return _from_codes(codes.reshape(channels, steps), layer["threshold_dtype"])


def layer_words(layer: dict[str, Any], arrays: dict[str, np.ndarray]) -> np.ndarray:
    """A writable layer's memory words from a design's or a student's arrays (weights.npz keys)."""
    if layer["op"] == "MVAU":
        return mvau_words(arrays[layer["weights"]], layer)
    if layer["op"] == "Thresholding":
        return threshold_words(arrays[layer["thresholds"]], layer)
    raise HostError(f"layer {layer['name']} ({layer['op']}) has no writable memory")


def layer_array(layer: dict[str, Any], words: np.ndarray) -> np.ndarray:
    """A writable layer's array (weights or thresholds) from its memory words."""
    return mvau_weights(words, layer) if layer["op"] == "MVAU" else layer_thresholds(words, layer)


def dat_text(words: np.ndarray) -> str:
    """Words as FINN's runtime-weights ``.dat`` text: one 32-bit word a line, 8 lowercase hex digits."""
    return "".join(f"{int(w):08x}\n" for w in np.asarray(words, dtype=np.uint32))


def parse_dat(text: str) -> np.ndarray:
    """A ``.dat`` file's words (as finn-plus-driver reads it: whitespace-separated hex)."""
    try:
        values = [int(token, 16) for token in text.split()]
    except ValueError:
        raise HostError("a runtime-weights .dat file holds something other than hex words") from None
    if any(v >> 32 for v in values):
        raise HostError("a runtime-weights .dat file holds a value wider than 32 bits")
    return np.asarray(values, dtype=np.uint32)


def words_sha256(memories: list[tuple[str, np.ndarray]]) -> str:
    """The policy hash: SHA-256 over each memory's name and its words (little-endian uint32), in order."""
    digest = hashlib.sha256()
    for name, words in memories:
        digest.update(name.encode() + b"\0")
        digest.update(np.asarray(words, dtype="<u4").tobytes())
    return digest.hexdigest()
