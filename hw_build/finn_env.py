"""Everything finn-plus needs adapted to run without Vivado, in one place.

finn-plus's Python API compiles up to estimate reports and HLS/RTL code generation without
any Xilinx tool (docs/design-decisions.md), but three things stand in the way on a machine without Vivado:

1. FINN wants global settings; outside its own command line they must be created
   (``initialize_dummy_settings``) with ``FINN_BUILD_DIR`` and ``FINN_SETTINGS`` pointing at
   writable places.
2. ``finn.builder.build_dataflow_steps`` does ``from finn.xsi import SimEngine``, and that
   attribute lookup runs the XSI (Vivado simulator) check, which raises ``OSError`` when
   ``XILINX_VIVADO`` is unset. ``SimEngine`` is only used by the rtlsim steps, which we never
   run without Vivado, so a placeholder attribute lets the import through.
3. The builder's exit bookkeeping (``exit_buildflow``) reads the Vivado root for a
   ``tool_version`` field and raises without it, after the reports are written; we report
   ``"none (no Vivado)"`` instead.

With ``XILINX_VIVADO`` set, (2) and (3) are not applied: FINN runs exactly as shipped.
"""

from __future__ import annotations

import os
from pathlib import Path

NO_VIVADO_TOOL_VERSION = "none (no Vivado)"
_prepared = False


def vivado_available() -> bool:
    """True when a Vivado installation is announced by ``XILINX_VIVADO``."""
    return bool(os.environ.get("XILINX_VIVADO"))


def prepare_finn(work_dir: str | os.PathLike | None = None) -> None:
    """Make finn-plus's Python API usable in this process (idempotent).

    ``work_dir`` holds FINN's intermediate build files and settings (default
    ``build/finn`` under the current directory, or ``$FINN_BUILD_DIR`` if set).
    """
    global _prepared
    if _prepared:
        return
    work = Path(os.environ.get("FINN_BUILD_DIR") or work_dir or Path("build") / "finn").resolve()
    work.mkdir(parents=True, exist_ok=True)
    os.environ["FINN_BUILD_DIR"] = str(work)
    os.environ.setdefault("FINN_SETTINGS", str(work / "finn_settings.yaml"))
    from finn.util.settings import initialize_dummy_settings

    initialize_dummy_settings()
    if not vivado_available():
        import finn.xsi

        if "SimEngine" not in vars(finn.xsi):
            finn.xsi.SimEngine = None  # (2): only rtlsim steps use it; they need Vivado anyway
        import finn.builder.build_dataflow as build_dataflow

        build_dataflow.get_vivado_root = lambda: NO_VIVADO_TOOL_VERSION  # (3)
    _prepared = True
