"""Design folders (``bitstreams/<design>/``): naming, creation rules, and the files inside.

A design folder holds everything one accelerator is made of (docs/formats.md)::

    policy.qonnx.onnx      the student's actor in QONNX
    export.json            where it came from (run, checkpoint hash) and the parity check
    report/                FINN's estimate reports; intermediate_models/ FINN's graphs
    estimate.json          the summary (resources vs the xc7z020, throughput, latency, fit)
    accel.json, weights.npz  what the host needs to drive and to emulate the accelerator
    verify.json            the verification ladder; rtlsim.json, synth.json: make rtlsim, make synth
    finn-accel.bit/.hwh    once synthesised with Vivado
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from host.design.spec import sha256_file  # noqa: F401  (the one implementation, shared with the board)
from training.errors import FlowError

QONNX_FILE = "policy.qonnx.onnx"
EXPORT_FILE = "export.json"
ESTIMATE_FILE = "estimate.json"
ACCEL_FILE = "accel.json"
WEIGHTS_FILE = "weights.npz"
VERIFY_FILE = "verify.json"
RTLSIM_FILE = "rtlsim.json"
SYNTH_FILE = "synth.json"
#: Records of checks made on one build of the design (its RTL, its folding): a new make estimate or
#: make codegen replaces that build, so they go with it rather than vouch for the new one.
BUILD_CHECK_FILES = (VERIFY_FILE, RTLSIM_FILE, SYNTH_FILE)
BITFILE = "finn-accel.bit"
HWHFILE = "finn-accel.hwh"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def designs_root() -> Path:
    """Root of the design folders: ``$QPD_BITSTREAMS`` or ``bitstreams/``."""
    return Path(os.environ.get("QPD_BITSTREAMS", "bitstreams"))


def design_dir(name: str) -> Path:
    """The folder of design ``name`` (checks the name)."""
    if not _NAME.match(name):
        raise FlowError(f"design name '{name}' must be letters, digits, '.', '_' or '-' (no spaces or slashes)")
    return designs_root() / name


def default_design_name(env_id: str, run_dir: Path) -> str:
    """``<env>-<run folder name>``, e.g. ``CartPole-v1-qpd-2x32-w2a2-s0`` (``MinAtar-Breakout-v1-...``:
    a family's ``/`` would make a nested folder)."""
    return f"{env_id.replace('/', '-')}-{Path(run_dir).name}"


def new_design_dir(name: str, force: bool) -> Path:
    """Create the folder of a new design; an existing one is refused unless ``force``."""
    path = design_dir(name)
    if path.exists():
        if not force:
            raise FlowError(f"design '{name}' exists already in {path}; pass FORCE=1 (--force) to replace it")
        shutil.rmtree(path)
    try:
        path.mkdir(parents=True)
    except OSError as exc:
        raise FlowError(f"cannot create the design folder {path}: {exc.strerror}") from None
    if not os.access(path, os.W_OK):
        raise FlowError(f"the design folder {path} is not writable")
    return path


def existing_design_dir(name: str, needs: str = QONNX_FILE) -> Path:
    """The folder of an exported design; refuses one that lacks ``needs``."""
    path = design_dir(name)
    if not (path / needs).exists():
        hint = "make export RUN=<run folder> DESIGN=" + name if needs == QONNX_FILE else "make estimate DESIGN=" + name
        raise FlowError(f"design '{name}' has no {needs} in {path}: run {hint} first")
    if not os.access(path, os.W_OK):
        raise FlowError(f"the design folder {path} is not writable")
    return path

