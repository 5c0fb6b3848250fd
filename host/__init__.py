"""Board-side program: FINN IODMA driver, emulated accelerator, environment loop and hw/sw comparison."""
