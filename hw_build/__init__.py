"""Hardware stage: QONNX export with its parity check, FINN compilation (estimate / codegen /
bitstream), folding for the control loop, shell fit, deployed bits, architecture cost, the
accelerator spec and the verification ladder. Imports training/ and host/, never flow/."""
