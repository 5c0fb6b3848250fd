"""finn_settings.json, FINN's driver settings made from accel.json (runs on the board too)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from host.design.finn_settings import finn_driver_settings
from host.design.spec import load_spec

DATA = Path(__file__).resolve().parent / "data"
REPO = Path(__file__).resolve().parents[2]


def test_settings_carry_accel_json_shapes_types_and_dma_names():
    spec = load_spec(DATA / "continuous")
    info = finn_driver_settings(spec)["driver_information"]
    io = info["io_shape_dict"]
    assert info["driver_type"] == "FINNDMAOverlay" and info["platform"] == "zynq-iodma"
    assert io["idt"] == [f"DataType['{spec.data['input']['finn_datatype']}']"]
    assert io["odt"] == [f"DataType['{spec.data['output']['finn_datatype']}']"]
    for key, side in (("ishape", "input"), ("oshape", "output")):
        for form in ("normal", "folded", "packed"):
            assert io[f"{key}_{form}"] == [spec.data[side][f"{form}_shape"]]
    assert io["idma_names"] == ["idma0"] and io["odma_names"] == ["odma0"]
    assert io["num_inputs"] == io["num_outputs"] == 1 and io["number_of_external_weights"] == 0


def test_cli_writes_the_file_and_refuses_a_missing_design(tmp_path):
    out = tmp_path / "settings.json"
    ok = subprocess.run([sys.executable, "-m", "host", "finn-settings", "--design", str(DATA / "discrete"), "--out", str(out)],
                        cwd=REPO, capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(out.read_text())["driver_information"]["io_shape_dict"]["idt"] == ["DataType['INT8']"]
    bad = subprocess.run([sys.executable, "-m", "host", "finn-settings", "--design", str(tmp_path / "nothing")],
                         cwd=REPO, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and "not found" in bad.stderr
