"""The float teacher's forward pass in numpy, from ``teacher.npz`` (written by ``make export``).

This is what a user would run on the board's ARM cores instead of the accelerator: the
comparison puts its latency beside the fabric's.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from host.errors import HostError

_ACTIVATIONS = {"tanh": np.tanh, "relu": lambda x: np.maximum(x, 0.0), "identity": lambda x: x}


def squash_to_box(x: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """A SAC actor's action: its head's output through tanh, rescaled from [-1, 1] to the action box."""
    return low + (np.tanh(x) + 1) / 2 * (high - low)


class NumpyTeacher:
    """Deterministic actions of the teacher's actor MLP for a batch of raw observations."""

    def __init__(self, path: str | Path) -> None:
        try:
            with np.load(path, allow_pickle=False) as npz:
                data = {key: npz[key] for key in npz.files}
        except FileNotFoundError:
            raise HostError(f"{path} does not exist (make export writes it beside the design)") from None
        except (OSError, ValueError, zipfile.BadZipFile) as exc:
            raise HostError(f"{path} is corrupt: {exc}") from None
        n = sum(1 for key in data if key.startswith("w"))
        self.weights = [(data[f"w{i}"].astype(np.float32), data[f"b{i}"].astype(np.float32)) for i in range(n)]
        names = [str(a) for a in data["activations"]] if "activations" in data else \
            [str(data["activation"])] * (n - 1) + ["identity"]
        unknown = sorted(set(names) - set(_ACTIVATIONS))
        if unknown:
            raise HostError(f"{path}: unknown activation {unknown[0]}")
        self.activations = [_ACTIVATIONS[name] for name in names]
        # A MinAtar teacher's convolution (out × in × kh × kw) on channels-last frames, then ReLU.
        self.conv = (data["conv0_w"].astype(np.float32), data["conv0_b"].astype(np.float32),
                     tuple(int(d) for d in data["frame_shape"])) if "conv0_w" in data else None
        self.discrete = bool(data["discrete"])
        self.norm = (data["obs_mean"], data["obs_var"], float(data["obs_clip"]), float(data["obs_eps"])) \
            if "obs_mean" in data else None
        self.low, self.high = data.get("low"), data.get("high")
        self.squash = bool(data["squash"]) if "squash" in data else False  # SAC: tanh, then the action box

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        if self.conv is not None:
            x = self._conv(np.asarray(obs, dtype=np.float32).reshape(len(obs), *self.conv[2]))
        else:
            x = np.asarray(obs, dtype=np.float32).reshape(len(obs), -1)
        if self.norm is not None:
            mean, var, clip, eps = self.norm
            x = np.clip((x - mean) / np.sqrt(var + eps), -clip, clip).astype(np.float32)
        for (w, b), activation in zip(self.weights, self.activations):
            x = activation(x @ w.T + b)
        if self.discrete:
            return np.argmax(x, axis=-1)
        if self.squash:
            return squash_to_box(x, self.low, self.high)
        return np.clip(x, self.low, self.high)

    def _conv(self, frames: np.ndarray) -> np.ndarray:
        """Valid 2-D convolution + ReLU of ``(n, h, w, c)`` frames, flattened channels first (as PyTorch)."""
        weight, bias, _ = self.conv
        out_c, in_c, kh, kw = weight.shape
        n, h, w, _ = frames.shape
        oh, ow = h - kh + 1, w - kw + 1
        windows = np.empty((n, oh, ow, kh, kw, in_c), dtype=np.float32)
        for i in range(kh):
            for j in range(kw):
                windows[:, :, :, i, j, :] = frames[:, i:i + oh, j:j + ow, :]
        kernel = weight.transpose(2, 3, 1, 0).reshape(kh * kw * in_c, out_c)
        maps = np.maximum(windows.reshape(n, oh * ow, -1) @ kernel + bias, 0.0)  # (n, pixels, out_c)
        return maps.transpose(0, 2, 1).reshape(n, -1)
