"""What the Zynq build adds around the dataflow partition, for the fit check.

FINN's estimate reports cover the compute layers only. A PYNQ-Z2 bitstream also holds:

- the data-width converters and stream FIFOs FINN inserts between layers: estimated here by
  FINN itself, on a copy of the compiled graph (``InsertDWC``, ``InsertFIFO`` with shallow
  FIFOs, ``SpecializeLayers``), without Vivado;
- the shell proper: two IODMAs (HLS AXI masters, input and output), the AXI interconnect
  of their memory ports into the PS's HP port and of the AXI-lite control, and the reset
  block. FINN gives no estimate for these (``IODMA_hls`` reports none), so they count as a
  stated allowance, :data:`SHELL_ALLOWANCE`, deliberately generous: it is not a measurement,
  and a synthesis report (``make bitstream``) replaces it.
"""

from __future__ import annotations

from typing import Any

#: Allowance for the IODMAs, interconnect and reset around the dataflow partition (not a FINN
#: estimate, not measured here): two HLS AXI-master DMAs at ~1,000 LUT and 2 BRAM_18K each,
#: ~2,000 LUT of AXI interconnect/SmartConnect; no DSP.
SHELL_ALLOWANCE = {"LUT": 4_000.0, "BRAM_18K": 4.0, "DSP": 0.0}
_GLUE_OPS = ("StreamingFIFO", "StreamingDataWidthConverter")


def glue_estimate(model_path: str, part: str) -> dict[str, float]:
    """FINN's estimate of the FIFOs and width converters a Zynq build inserts into a compiled graph."""
    from finn.transformation.fpgadataflow.insert_dwc import InsertDWC
    from finn.transformation.fpgadataflow.insert_fifo import InsertFIFO
    from finn.transformation.fpgadataflow.specialize_layers import SpecializeLayers
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.custom_op.registry import getCustomOp
    from qonnx.transformation.general import GiveUniqueNodeNames

    model = ModelWrapper(model_path)
    for transform in (InsertDWC(), InsertFIFO(create_shallow_fifos=True)):
        model = model.transform(transform).transform(GiveUniqueNodeNames()).transform(SpecializeLayers(part))
    total = {"LUT": 0.0, "BRAM_18K": 0.0, "DSP": 0.0}
    for node in model.graph.node:
        if node.op_type.split("_")[0] in _GLUE_OPS:
            est = getCustomOp(node).node_res_estimation(part)
            for key in total:
                total[key] += float(est.get(key, 0))
    return total


def with_shell(dataflow: dict[str, float], glue: dict[str, float]) -> dict[str, Any]:
    """Totals of the dataflow partition, FINN's glue estimate and the shell allowance, per resource."""
    keys = ("LUT", "BRAM_18K", "DSP")
    total = {k: float(dataflow.get(k, 0)) + glue.get(k, 0.0) + SHELL_ALLOWANCE[k] for k in keys}
    return {"dataflow": {k: float(dataflow.get(k, 0)) for k in keys}, "fifos_and_dwcs": glue,
            "shell_allowance": dict(SHELL_ALLOWANCE), "total": total}
