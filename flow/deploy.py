"""What ``make deploy`` copies to a board, made in a local folder first.

The folder holds everything the board needs and its image lacks, so that ``make board-setup``
and ``make board-eval`` run there without network: ``host/``, the Makefile,
``requirements/host.lock``, the design folder (without FINN's intermediate models and
generated sources) and ``wheels/`` — the packages of :data:`host.board.BOARD_PACKAGES` at the
versions of ``requirements/host.lock``, downloaded here for the board's platform (CPython 3.10,
armv7l; wheels only, so nothing is compiled on the board) with a ``requirements.txt`` naming them.
``make deploy`` then copies the folder with rsync; ``make deploy-folder`` stops after making it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

from host.board import BOARD_PACKAGES, WHEELS_DIR, WHEELS_REQUIREMENTS
from training.errors import FlowError

ROOT = Path(__file__).resolve().parents[1]
HOST_LOCK = ROOT / "requirements" / "host.lock"
BOARD_PLATFORM = ("--platform", "linux_armv7l", "--python-version", "3.10", "--implementation", "cp", "--abi", "cp310")
DESIGN_LEFT_OUT = ("intermediate_models", "hw_sources", "__pycache__")


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def board_pins(lock: Path = HOST_LOCK) -> list[str]:
    """``name==version`` of every board package, as ``requirements/host.lock`` pins it."""
    pins = {}
    for line in lock.read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.strip().split("==", 1)
            pins[_normal(name)] = f"{name}=={version}"
    missing = [p for p in BOARD_PACKAGES if _normal(p) not in pins]
    if missing:
        raise FlowError(f"{lock} pins no version of {', '.join(missing)}: re-make it (see its header)")
    return [pins[_normal(p)] for p in BOARD_PACKAGES]


def download_board_wheels(out: Path, pins: list[str]) -> list[Path]:
    """Download the pinned packages as wheels for the board's platform into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
               *BOARD_PLATFORM, "--dest", str(out), *pins]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise FlowError(f"could not download the board's wheels ({tail[0]}): make deploy needs the package registry "
                        "once, on the workstation")
    (out / WHEELS_REQUIREMENTS).write_text(
        "# The packages the PYNQ-Z2 image lacks (made by make deploy from requirements/host.lock);\n"
        "# make board-setup installs them with pip --no-index from this folder.\n" + "\n".join(pins) + "\n")
    return sorted(out.glob("*.whl"))


def build_deploy_folder(design: Path, out: Path) -> Path:
    """Make ``out`` hold what the board needs for ``design`` (written beside, then renamed into place)."""
    if not (design / "accel.json").is_file():
        raise FlowError(f"design {design.name} has no accel.json: run make estimate (and make bitstream with Vivado) first")
    pins = board_pins()
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "host", partial / "host", ignore=ignore)
    shutil.copy2(ROOT / "Makefile", partial / "Makefile")
    (partial / "requirements").mkdir()
    shutil.copy2(HOST_LOCK, partial / "requirements" / HOST_LOCK.name)
    shutil.copytree(design, partial / "bitstreams" / design.name, ignore=shutil.ignore_patterns(*DESIGN_LEFT_OUT))
    wheels = download_board_wheels(partial / WHEELS_DIR, pins)
    if len(wheels) != len(pins):
        raise FlowError(f"expected {len(pins)} wheels for the board, pip gave {len(wheels)}")
    shutil.rmtree(out, ignore_errors=True)
    partial.rename(out)
    return out
