"""A design's policy as one Python object: ``FpgaPolicy("bitstreams/demo-CartPole-v1")(obs)``.

On the board (PYNQ image, as root) it drives the fabric through the IODMA driver
(:class:`host.backends.driver.FinnZynqDriver` over :class:`~host.backends.driver.PynqBackend`);
anywhere else it runs the bit-exact emulated fabric (:mod:`host.backends.emulated_board`), so
the same script runs on a laptop and on the board::

    from host import FpgaPolicy

    policy = FpgaPolicy("bitstreams/demo-CartPole-v1")      # backend="auto": the board where it is one
    action = policy(obs)                                     # one observation -> one action
    actions = policy(batch)                                  # (n, *obs_shape) -> n actions

Imports nothing the board lacks (numpy and, with ``backend="pynq"``, pynq).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from host.errors import HostError

BACKENDS = ("auto", "pynq", "emulated")
#: Where a Zynq's programmable logic is reachable on a PYNQ image (fpga_manager; xdevcfg on older kernels).
FPGA_DEVICES = (Path("/sys/class/fpga_manager/fpga0"), Path("/dev/xdevcfg"))


def on_board() -> bool:
    """Whether this machine has a Zynq's programmable logic and pynq (a PYNQ image)."""
    import importlib.util

    return any(p.exists() for p in FPGA_DEVICES) and importlib.util.find_spec("pynq") is not None


class FpgaPolicy:
    """The accelerator of a design folder as a policy: observations in, actions out.

    Args:
        design: a design folder (``bitstreams/<name>``) or a design name in ``bitstreams/``.
        backend: ``"pynq"`` (the board's fabric: its ``design.bit`` and root needed), ``"emulated"``
            (the fabric emulated bit-exactly in numpy), or ``"auto"`` (default): ``pynq`` on a PYNQ
            board whose design has its bitstream, else ``emulated``.
        max_batch: the most observations one accelerator call carries (DMA buffers are sized for
            it); a larger batch is sent in several calls.
        timeout_s: how long to wait for the accelerator before :class:`host.backends.driver.AcceleratorTimeout`.

    Raises :class:`host.errors.HostError` (one sentence) for a missing or malformed design, or a
    board that cannot load it.
    """

    def __init__(self, design: str | Path, backend: str = "auto", *, max_batch: int = 64,
                 timeout_s: float = 1.0) -> None:
        from host.cli import load_design, local_accelerator, resolve_design
        from host.design.spec import load_spec

        if backend not in BACKENDS:
            raise HostError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
        if max_batch <= 0:
            raise HostError(f"max_batch must be positive, got {max_batch}")
        if backend == "auto":
            bitfile = load_spec(resolve_design(str(design))).bitfile
            backend = "pynq" if on_board() and bitfile.exists() else "emulated"
        self.spec = load_design(str(design), backend)
        self.backend = backend
        self.max_batch = max_batch
        self._board, self.driver = local_accelerator(self.spec, backend, max_batch, timeout_s)

    @property
    def env_id(self) -> str:
        """The environment the design's policy was trained on."""
        return self.spec.env_id

    @property
    def discrete(self) -> bool:
        """Whether actions are integers (discrete) rather than float vectors."""
        return self.spec.discrete

    @property
    def observation_shape(self) -> tuple[int, ...]:
        """The shape of one observation."""
        return self.spec.obs_shape

    def __call__(self, obs: Any) -> Any:
        """The action for one observation (an ``int`` or a float32 vector), or an array of
        actions for a batch ``(n, *observation_shape)``."""
        x = np.asarray(obs, dtype=np.float32)
        shape = self.spec.obs_shape
        if x.shape == shape or (x.ndim == 1 and x.size == self.spec.obs_dim and len(shape) == 1):
            action = self.driver(x.reshape(1, *shape))[0]
            return int(action) if self.discrete else np.array(action, dtype=np.float32)
        if x.ndim < 1 or x.shape[1:] != shape:
            raise HostError(f"{self.spec.folder.name} takes observations of shape {shape} or batches of them, "
                            f"got an array of shape {x.shape}")
        parts = [np.array(self.driver(x[i:i + self.max_batch])) for i in range(0, len(x), self.max_batch)]
        return np.concatenate(parts) if parts else np.zeros((0,), dtype=np.int64 if self.discrete else np.float32)

    act = __call__

    def __repr__(self) -> str:
        return f"FpgaPolicy({str(self.spec.folder)!r}, backend={self.backend!r}, env_id={self.env_id!r})"
