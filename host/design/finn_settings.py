"""FINN's driver settings (``finn_settings.json``) for a design, made from its ``accel.json``.

finn-plus generates a PYNQ driver with every bitstream (``finn-plus-driver``'s
``FINNDMAOverlay``), configured by the ``driver_information`` of a ``settings.json`` that
FINN's ``MakePYNQDriver`` writes from the compiled graph (``finn.util.basic.get_driver_shapes``).
A user who prefers FINN's driver to ours on the board needs that file; FINN writes it only in
the full Vivado build. Everything it holds is already in ``accel.json`` (datatypes, normal /
folded / packed shapes, IODMA names, clock), so it is made here, with the standard library,
and runs on the board as well.

The accelerator's input is what ``accel.json``'s ``input.finn_datatype`` says: for the
default integer-input designs, the codes of the host's input quantizer
(:meth:`host.design.spec.AccelSpec.preprocess`), which FINN's driver does not compute.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from host.atomic import write_text
from host.design.spec import AccelSpec

#: Beside accel.json; FINN's own deployment package calls its copy ``driver/settings.json``.
SETTINGS_FILE = "finn_settings.json"


def _shape(shape: list[int]) -> list[int]:
    return [int(v) for v in shape]


def finn_driver_settings(spec: AccelSpec) -> dict[str, Any]:
    """``settings.json`` content for FINN's ``FINNDMAOverlay`` on this design (Zynq IODMA shell)."""
    data = spec.data
    io_in, io_out = data["input"], data["output"]
    io_shape_dict = {
        "idt": [f"DataType['{io_in['finn_datatype']}']"],
        "odt": [f"DataType['{io_out['finn_datatype']}']"],
        "ishape_normal": [_shape(io_in["normal_shape"])],
        "oshape_normal": [_shape(io_out["normal_shape"])],
        "ishape_folded": [_shape(io_in["folded_shape"])],
        "oshape_folded": [_shape(io_out["folded_shape"])],
        "ishape_packed": [_shape(io_in["packed_shape"])],
        "oshape_packed": [_shape(io_out["packed_shape"])],
        "idma_names": [data["dma"]["input"]],
        "odma_names": [data["dma"]["output"]],
        "num_inputs": 1,
        "num_outputs": 1,
        "number_of_external_weights": 0,  # every weight of these designs is in the fabric's own memory
        "external_weights_input_shapes": {},
    }
    # external_weights: a flag, as FINN's MakePYNQDriver writes it (finn-plus-driver keeps its own list of them)
    info: dict[str, Any] = {"driver_type": "FINNDMAOverlay", "io_shape_dict": io_shape_dict, "external_weights": False,
                            "runtime_weights": data.get("runtime_weights") is not None, "platform": "zynq-iodma"}
    if data.get("clock_ns"):
        info["fclk_mhz"] = 1000.0 / float(data["clock_ns"])
    return {"driver_information": info,
            "experiment_information": {"made_by": "host.design.finn_settings from accel.json", "design": data.get("design")}}


def write_finn_settings(spec: AccelSpec, out: Path | None = None) -> Path:
    """Write the design's ``finn_settings.json`` (default: beside its ``accel.json``); return its path."""
    path = out or spec.folder / SETTINGS_FILE
    return write_text(path, json.dumps(finn_driver_settings(spec), indent=2) + "\n")
