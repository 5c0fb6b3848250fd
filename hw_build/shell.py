"""What the Zynq build adds around the dataflow partition, for the fit check.

FINN's estimate reports cover the compute layers only. A PYNQ-Z2 bitstream also holds:

- the data-width converters and stream FIFOs FINN inserts between layers: estimated here by
  FINN itself, on a copy of the compiled graph (``InsertDWC``, ``InsertFIFO`` with shallow
  FIFOs, ``SpecializeLayers``), without Vivado;
- the shell proper (finn-plus's ``custom_zynq_shell_template``): a SmartConnect joining the two
  IODMAs' AXI masters into the PS's HP0 port, an AXI Interconnect fanning the PS's GP0 out to
  their AXI-lite controls, the reset block, the Clocking Wizard, and the two IODMAs (HLS AXI
  masters). FINN gives no estimate for these (``IODMA_hls`` reports none), so they count as a
  stated allowance, :data:`SHELL_ALLOWANCE`, taken from published figures (:data:`SHELL_SOURCES`):
  on the Zynq-7000 the AXI side of a small DMA design measured 7,000+ LUT with a SmartConnect and
  3,000+ with an AXI Interconnect (ovpanait/zynq-aes#2), and one SmartConnect to a single HP port
  910 LUT (analogdevicesinc/hdl#1054, Vivado 2023.1). FINN's shell uses a SmartConnect, so the
  allowance takes the upper end of that range. Block RAM: Vitis HLS buffers an m_axi port's bursts
  in a FIFO of ``num_outstanding`` × ``max_burst_length`` words (UG1399, "Controlling AXI4 Burst
  Behavior"; bursts of 16 by default): with 16 outstanding 16-beat bursts of the shell's 64-bit
  port that is 16 Kib, one BRAM_18K per IODMA. The IODMAs' own logic has no published figure and is
  not counted separately. Vivado's synthesis report
  (``make bitstream``) replaces all of this.
"""

from __future__ import annotations

from typing import Any

#: Allowance for the Zynq shell around the dataflow partition: published figures, not a FINN estimate
#: and not measured here (see the module docstring and :data:`SHELL_SOURCES`).
SHELL_ALLOWANCE = {"LUT": 7_000.0, "BRAM_18K": 2.0, "DSP": 0.0}
#: Where each figure of :data:`SHELL_ALLOWANCE` comes from (written into estimate.json).
SHELL_SOURCES = {
    "LUT": "upper end of the AXI interconnect of a small Zynq-7000 DMA design: 7,000+ LUT with SmartConnect, "
           "3,000+ with AXI Interconnect (github.com/ovpanait/zynq-aes/issues/2); one SmartConnect to a single "
           "HP port: 910 LUT (github.com/analogdevicesinc/hdl/pull/1054); FINN's shell uses a SmartConnect",
    "BRAM_18K": "one m_axi burst buffer per IODMA: Vitis HLS buffers num_outstanding x max_burst_length words "
                "(UG1399, Controlling AXI4 Burst Behavior; bursts of 16 by default); 16 outstanding x 16 x 64 bit = 16 Kib",
    "DSP": "no arithmetic in the shell",
}
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
            "shell_allowance": dict(SHELL_ALLOWANCE), "shell_allowance_sources": dict(SHELL_SOURCES), "total": total}
