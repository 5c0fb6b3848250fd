"""The board's own side of deployment: what the PYNQ-Z2 image lacks, installing it offline, and
the checks ``make board-eval`` makes before it touches the fabric.

The PYNQ-Z2 image (v3.x: Ubuntu 22.04, armv7l, Python 3.10) has numpy 1.x and pynq 3.x in
pynq's virtual environment, but not gymnasium. ``make deploy`` brings gymnasium and its
pure-Python dependencies as wheels (``wheels/``, pinned to ``requirements/host.lock``);
``make board-setup`` (``python -m host board-setup``) installs them with ``pip --no-index`` —
no network on the board — and checks the rest of the image. Standard library only here: this
module must run before anything else is installed.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

from host.errors import HostError

# The packages the board image lacks and host/ needs, installed from make deploy's wheels
# (all pure Python: py3-none-any wheels, so no compiler is needed on the board).
#: minatar (MinAtar pixel games, numpy only) goes without its declared plotting requirements (pandas, seaborn).
BOARD_PACKAGES = ("gymnasium", "cloudpickle", "Farama-Notifications", "typing_extensions", "minatar")
WHEELS_DIR = "wheels"
WHEELS_REQUIREMENTS = "requirements.txt"

# Modules some entry point of host/ needs and a machine may lack: what to tell the user.
OPTIONAL_MODULES = {
    "gymnasium": "on the board run make board-setup (it installs the wheels make deploy brought); "
                 "elsewhere make host-env, or pip install gymnasium==1.4.0",
    "farama_notifications": "on the board run make board-setup; elsewhere pip install -r requirements/host.lock --no-deps",
    "cloudpickle": "on the board run make board-setup; elsewhere pip install -r requirements/host.lock --no-deps",
    "minatar": "on the board run make board-setup; elsewhere pip install --no-deps minatar==1.0.15",
    "numpy": "on the board use the PYNQ image's pynq venv, which has numpy 1.x (sudo -i, or source "
             "/etc/profile.d/pynq_venv.sh); elsewhere make host-env",
    "pynq": "pynq is the board's own (the PYNQ-Z2 image's pynq venv: sudo -i, or source /etc/profile.d/pynq_venv.sh); "
            "off a board use --backend emulated",
}


def missing_module_sentence(name: str | None) -> str | None:
    """One sentence for a module that could not be imported, where host/ knows how to get it."""
    top = (name or "").split(".")[0]
    if top not in OPTIONAL_MODULES:
        return None
    return f"the Python module '{top}' is not installed in {sys.executable}: {OPTIONAL_MODULES[top]}"


def _version(module: str) -> str | None:
    try:
        return str(importlib.import_module(module).__version__)
    except ImportError:
        return None


def _not_pynq3(version: str) -> str:
    return f"pynq {version} is installed; the PYNQ-Z2 needs pynq 3.x (pynq 4 drops the Z1/Z2)"


def image_problems() -> list[str]:
    """What the board image should have and this Python lacks: Python >= 3.10, numpy < 2, pynq 3.x."""
    problems = []
    if sys.version_info < (3, 10):
        problems.append(f"Python {sys.version.split()[0]} is older than the image's 3.10")
    numpy = _version("numpy")
    if numpy is None:
        problems.append("numpy is missing (the image's pynq venv has numpy 1.x: sudo -i, or source /etc/profile.d/pynq_venv.sh)")
    elif int(numpy.split(".")[0]) >= 2:
        problems.append(f"numpy {numpy} is installed, but pynq 3.x needs numpy < 2")
    pynq = _version("pynq")
    if pynq is None:
        problems.append("pynq is missing: this is not the PYNQ image's pynq venv (sudo -i, or source /etc/profile.d/pynq_venv.sh)")
    elif not pynq.startswith("3."):
        problems.append(_not_pynq3(pynq))
    return problems


def board_setup(wheels: Path) -> list[str]:
    """Install the wheels ``make deploy`` brought into this Python, offline; return what it installed.

    Raises :class:`HostError` (one sentence) where the image lacks numpy < 2 or pynq 3.x, where
    the wheels folder is missing, or where pip fails.
    """
    problems = image_problems()
    if problems:
        raise HostError("this Python is not the PYNQ image's: " + "; ".join(problems))
    requirements = wheels / WHEELS_REQUIREMENTS
    if not requirements.is_file():
        raise HostError(f"{requirements} is missing: make deploy (on the workstation) brings the wheels folder")
    command = [sys.executable, "-m", "pip", "install", "--no-index", "--no-deps", "--find-links", str(wheels),
               "-r", str(requirements)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise HostError(f"pip could not install the wheels from {wheels} ({tail[0]})")
    importlib.invalidate_caches()
    try:
        importlib.import_module("gymnasium")
    except ImportError as exc:
        raise HostError(f"the wheels installed, but gymnasium still does not import ({exc})") from None
    return [line.strip() for line in requirements.read_text().splitlines() if line.strip() and not line.startswith("#")]


def preflight(spec) -> None:
    """Before ``make board-eval`` touches the fabric: the bitstream and its ``.hwh`` beside it and
    matching ``accel.json`` (the hash is checked by :func:`host.design.spec.load_spec`), a user who may
    load overlays (root, as pynq needs ``/dev/mem``), and pynq 3.x. One sentence for the first failure."""
    from host.design.spec import BITFILE, HWHFILE

    folder = spec.folder
    for name in (BITFILE, HWHFILE):
        if not (folder / name).is_file():
            raise HostError(f"design {folder.name} has no {name}: build it with make bitstream where Vivado is installed "
                            "and copy the design folder again (make deploy)")
    pynq = _version("pynq")
    if pynq is None:
        raise HostError(missing_module_sentence("pynq"))
    if not pynq.startswith("3."):
        raise HostError(_not_pynq3(pynq))
    if hasattr(os, "geteuid") and os.geteuid() != 0:
        raise HostError("loading an overlay needs root (pynq maps /dev/mem): run sudo -i, then make board-eval")
