"""Board-side program (its folders: README.md): FINN IODMA driver, input quantizer, packing,
emulated accelerator, environment loop and hw/sw comparison, the board's own set-up (``board``).
The base of the layout: imports nothing of ours, and nothing the PYNQ-Z2 image cannot install
(Python 3.10, numpy 1.x, pynq 3.x)."""
