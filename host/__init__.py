"""Board-side program (its folders: README.md): FINN IODMA driver, input quantizer, packing,
emulated accelerator, environment loop and hw/sw comparison, the board's own set-up (``board``).
The base of the layout: imports nothing of ours, and nothing the PYNQ-Z2 image cannot install
(Python 3.10, numpy 1.x, pynq 3.x).

``from host import FpgaPolicy``: a design's accelerator as a policy (:mod:`host.policy`)."""

__all__ = ["FpgaPolicy"]


def __getattr__(name: str):
    if name == "FpgaPolicy":  # imported on first use: ``python -m host`` starts without numpy's import
        from host.policy import FpgaPolicy

        return FpgaPolicy
    raise AttributeError(f"module 'host' has no attribute {name!r}")
