"""Brevitas students: the quantized actor-critic MLP and its quantizers (``student``), and the
size accounting of students and teachers in parameter bits (``size``)."""
