"""A rehearsal of the board path without a board: the deploy folder, a clean Python 3.10 venv
holding only what the PYNQ-Z2 image has (numpy 1.26, pynq 3.1.2 and its dependencies, no
gymnasium), ``make board-setup`` there with no network, then the board's comparison in it on the
emulated backend — the only difference from the board being the backend."""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from flow.deploy import HOST_LOCK, build_deploy_folder
from host.board import BOARD_PACKAGES

ROOT = Path(__file__).resolve().parents[1]
DESIGN = ROOT / "tests" / "host" / "data" / "discrete"
NOT_ON_THE_IMAGE = {p.lower() for p in BOARD_PACKAGES} - {"typing_extensions"} | {"pytest", "iniconfig", "pluggy"}
NO_NETWORK = {"PIP_INDEX_URL": "http://127.0.0.1:9/simple", "PIP_FIND_LINKS": "", "http_proxy": "http://127.0.0.1:9",
              "https_proxy": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9"}


def _python310() -> str | None:
    found = sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.10*/bin/python3.10"))) + \
        [p for p in [shutil.which("python3.10")] if p]
    return found[0] if found else None


def _image_packages() -> list[str]:
    """requirements/host.lock less what the image lacks (and the test runner)."""
    lines = [line.strip() for line in HOST_LOCK.read_text().splitlines() if "==" in line and not line.startswith("#")]
    return [line for line in lines if line.split("==")[0].lower() not in NOT_ON_THE_IMAGE]


def _run(cmd: list[str], cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=900,
                          env={**{k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHON"))},
                               **(env or {})})


def test_board_path_rehearsed_in_a_clean_board_like_venv(tmp_path):
    python310 = _python310()
    if python310 is None:
        pytest.skip("no Python 3.10 here (the board's); make host-env finds one the same way")
    deploy = build_deploy_folder(DESIGN, tmp_path / "deploy")
    assert sorted(p.name.split("-")[0].lower() for p in (deploy / "wheels").glob("*.whl")) == \
        sorted(p.lower().replace("-", "_") for p in BOARD_PACKAGES)
    assert not list((deploy / "bitstreams").rglob("intermediate_models"))

    venv = tmp_path / "image-venv"
    assert _run([python310, "-m", "venv", str(venv)], tmp_path).returncode == 0
    py = str(venv / "bin" / "python")
    (tmp_path / "image.txt").write_text("\n".join(_image_packages()) + "\n")
    done = _run([py, "-m", "pip", "install", "-q", "--no-deps", "-r", str(tmp_path / "image.txt")], tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert _run([py, "-c", "import gymnasium"], tmp_path).returncode != 0  # the image has no gymnasium

    compare = [py, "-m", "host", "compare", "--design", "bitstreams/discrete", "--episodes", "10", "--out", "report"]
    before = _run(compare, deploy)
    assert before.returncode == 2 and "'gymnasium' is not installed" in before.stderr and "make board-setup" in before.stderr
    assert "Traceback" not in before.stderr

    setup = _run(["make", "--no-print-directory", "board-setup", f"BOARD_PYTHON={py}"], deploy, env=NO_NETWORK)
    assert setup.returncode == 0, setup.stdout[-1000:] + setup.stderr[-2000:]
    assert "installed from wheels without network" in setup.stdout

    board = _run(compare, deploy)
    assert board.returncode == 0, board.stderr[-2000:]
    on_board = json.loads((deploy / "report" / "compare.json").read_text())
    workstation = _run([sys.executable, "-m", "host", "compare", "--design", str(DESIGN), "--episodes", "10",
                        "--out", str(tmp_path / "ws")], ROOT)
    assert workstation.returncode == 0, workstation.stderr[-2000:]
    here = json.loads((tmp_path / "ws" / "compare.json").read_text())
    assert on_board["hardware"]["returns"] == here["hardware"]["returns"]
    reference = on_board["software"]["integer reference (numpy)"]
    assert reference["step_agreement"] == 1.0 and reference["identical_returns"] == 10

    eval_ = _run(["make", "--no-print-directory", "board-eval", f"BOARD_PYTHON={py}", "DESIGN=bitstreams/discrete",
                  "EPISODES=2"], deploy)
    assert eval_.returncode == 2 and "has no finn-accel.bit" in eval_.stderr and "Traceback" not in eval_.stderr
