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


class NumpyTeacher:
    """Deterministic actions of the teacher's actor MLP for a batch of raw observations."""

    def __init__(self, path: str | Path) -> None:
        try:
            with np.load(path) as npz:
                data = {key: npz[key] for key in npz.files}
        except FileNotFoundError:
            raise HostError(f"{path} does not exist (make export writes it beside the design)") from None
        except (OSError, ValueError, zipfile.BadZipFile) as exc:
            raise HostError(f"{path} is corrupt: {exc}") from None
        n = sum(1 for key in data if key.startswith("w"))
        self.weights = [(data[f"w{i}"].astype(np.float32), data[f"b{i}"].astype(np.float32)) for i in range(n)]
        activation = str(data["activation"])
        if activation not in _ACTIVATIONS:
            raise HostError(f"{path}: unknown activation {activation}")
        self.activation = _ACTIVATIONS[activation]
        self.discrete = bool(data["discrete"])
        self.norm = (data["obs_mean"], data["obs_var"], float(data["obs_clip"]), float(data["obs_eps"])) \
            if "obs_mean" in data else None
        self.low, self.high = data.get("low"), data.get("high")

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        x = np.asarray(obs, dtype=np.float32).reshape(len(obs), -1)
        if self.norm is not None:
            mean, var, clip, eps = self.norm
            x = np.clip((x - mean) / np.sqrt(var + eps), -clip, clip).astype(np.float32)
        for i, (w, b) in enumerate(self.weights):
            x = x @ w.T + b
            if i < len(self.weights) - 1:
                x = self.activation(x)
        if self.discrete:
            return np.argmax(x, axis=-1)
        return np.clip(x, self.low, self.high)
