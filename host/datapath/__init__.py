"""The words that cross the fabric's boundary: the input quantizer (float observation → the
accelerator's integers), FINN-exact packing and unpacking, and the control loop's steady-state
fast path of both."""
