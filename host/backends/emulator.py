"""The accelerator in numpy integer arithmetic: what the fabric computes, bit for bit.

Each layer follows FINN's own Python execution of the same hardware layer (and so the HLS/RTL
it generates): ``ConvolutionInputGenerator`` cuts the channels-last frame into the windows of
the convolution, row by row, each window ordered (kernel row, kernel column, channel) with the
channel fastest, as FINN's sliding-window generator streams them; ``Thresholding`` counts the thresholds its input reaches (``x >= t``) and adds
``ActVal``; ``MVAU`` multiplies integers and thresholds the accumulators the same way (or
returns them when it has no activation); ``LabelSelect`` returns the index of the largest
input, the lowest index among exact ties (ONNX TopK's rule, which FINN's LabelSelect follows).
Accumulators are int64 here; FINN's Python execution uses float32, which is exact for the
accumulator widths FINN assigns (≤ 24 bits); :func:`check_exactness` refuses wider ones.
"""

from __future__ import annotations

import numpy as np

from host.errors import HostError
from host.design.spec import AccelSpec

_FLOAT32_EXACT_BITS = 24


def _threshold(values: np.ndarray, thresholds: np.ndarray, act_val: int, bipolar_out: bool) -> np.ndarray:
    """``count(values >= thresholds)`` per channel, then scale/bias as FINN's MultiThreshold."""
    counts = (values[..., None] >= thresholds[None, :, :]).sum(axis=-1, dtype=np.int64)
    if bipolar_out:
        return 2 * counts - 1
    return counts + act_val


def _bits(dtype: str) -> int:
    digits = "".join(ch for ch in dtype if ch.isdigit())
    return int(digits) if digits else 1


class EmulatedAccelerator:
    """Runs a design's hardware layers on a batch of float32 observations.

    Call it with ``(n, obs_dim)`` observations; it returns the accelerator's outputs, one
    row per observation (action indices, or the integer accumulators of a continuous head).
    Inside, a batch is ``(n, pixels, values)``: one row per output pixel of a convolution's
    feature map (channels last), one row in all for a dense layer, whose input is the
    flattened channels-last map (FINN folds the flatten's order into that layer's weights).
    """

    def __init__(self, spec: AccelSpec) -> None:
        self.spec = spec
        self.layers = spec.data["layers"]
        for layer in self.layers:
            if layer["op"] == "MVAU":
                check_exactness(layer)
        self._weights = {
            layer["name"]: spec.arrays[layer["weights"]].astype(np.int64) for layer in self.layers if layer["op"] == "MVAU"
        }
        # Converted once: the input Thresholding compares float32 observations with float32
        # thresholds, as FINN does; MVAU thresholds compare with exact integer accumulators.
        self._thresholds = {
            layer["name"]: spec.arrays[layer["thresholds"]].astype(np.float32 if layer["op"] == "Thresholding" else np.float64)
            for layer in self.layers if layer.get("thresholds")
        }

    def load(self, layer: dict, array: np.ndarray) -> None:
        """Compute with another weight matrix (MVAU) or threshold bank (Thresholding) in ``layer``:
        what a writable design's memory holds after the host wrote it (``host.design.policy_package``)."""
        if layer["op"] == "MVAU":
            self._weights[layer["name"]] = np.asarray(array).astype(np.int64)
        else:
            self._thresholds[layer["name"]] = np.asarray(array).astype(
                np.float32 if layer["op"] == "Thresholding" and layer["input_dtype"] == "FLOAT32" else np.float64)

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        n = len(obs)
        x = np.asarray(obs, dtype=np.float32).reshape(n, 1, -1)
        for layer in self.layers:
            name, op = layer["name"], layer["op"]
            if op == "ConvolutionInputGenerator":
                x = sliding_windows(x.reshape(n, *layer["ifm_dim"], layer["channels"]), layer)
            elif op == "Thresholding":
                x = _threshold(x, self._thresholds[name], layer["act_val"], layer["output_dtype"] == "BIPOLAR")
            elif op == "MVAU":
                x = self._mvau(layer, x)
            elif op == "LabelSelect":
                if layer["k"] != 1:
                    raise HostError(f"LabelSelect with K={layer['k']} is not supported by the emulator (K=1 is)")
                x = np.argmax(x, axis=-1)[..., None]  # numpy returns the first maximum: the lowest index
            else:  # spec loading already refused unknown layers
                raise HostError(f"unknown layer {op}")
        return x.reshape(n, -1)

    def _mvau(self, layer: dict, x: np.ndarray) -> np.ndarray:
        w = self._weights[layer["name"]]
        x = x.reshape(len(x), -1, layer["mw"])  # a flattened feature map becomes one row
        if layer["binary_xnor"] or (layer["input_dtype"] == "BIPOLAR" and layer["weight_dtype"] == "BIPOLAR"):
            xb = x if layer["binary_xnor"] else (x + 1) // 2
            wb = w if layer["binary_xnor"] else (w + 1) // 2
            acc = xb @ wb + (1 - xb) @ (1 - wb)  # xnor-popcount: how many bits agree
        else:
            acc = x.astype(np.int64) @ w
        if layer["no_activation"]:
            return acc
        return _threshold(acc, self._thresholds[layer["name"]], layer["act_val"], layer["output_dtype"] == "BIPOLAR")


def sliding_windows(frames: np.ndarray, layer: dict) -> np.ndarray:
    """The convolution's windows of channels-last ``frames`` ``(n, h, w, c)``: ``(n, oh * ow, kh * kw * c)``,
    windows row by row, each (kernel row, kernel column, channel) with the channel fastest."""
    if layer["depthwise"]:
        raise HostError(f"layer {layer['name']} is a depthwise sliding window, which the emulator does not implement")
    (kh, kw), (sh, sw), (dh, dw) = layer["kernel"], layer["stride"], layer["dilation"]
    oh, ow = layer["ofm_dim"]
    n, c = len(frames), frames.shape[-1]
    out = np.empty((n, oh, ow, kh, kw, c), dtype=frames.dtype)
    for i in range(kh):
        for j in range(kw):
            out[:, :, :, i, j, :] = frames[:, i * dh: i * dh + sh * (oh - 1) + 1: sh, j * dw: j * dw + sw * (ow - 1) + 1: sw, :]
    return out.reshape(n, oh * ow, kh * kw * c)


def check_exactness(layer: dict) -> None:
    """Refuse an MVAU whose accumulator FINN's float32 Python execution could not hold exactly."""
    if _bits(layer["acc_dtype"]) > _FLOAT32_EXACT_BITS:
        raise HostError(f"layer {layer['name']} accumulates in {layer['acc_dtype']}, wider than the "
                        f"{_FLOAT32_EXACT_BITS} bits where the emulator is proven against FINN's Python execution")
