"""A design folder as the host reads it: ``accel.json`` and ``weights.npz`` (``spec``), and the
driver settings FINN's generated PYNQ driver would take (``finn_settings``)."""
