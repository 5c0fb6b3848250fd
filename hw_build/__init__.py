"""Hardware side of the flow: QONNX export, FINN compilation, accelerator spec."""
