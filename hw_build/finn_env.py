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

With ``XILINX_VIVADO`` set, (2) and (3) are not applied: FINN runs exactly as shipped, and
:func:`boot_for_vivado` boots it for a bitstream build as its command line does (the tools on
``PATH``, and ``finn.xsi.ensure_available``, which builds finn_xsi for the installed Vivado).

The Vivado build needs more than ``XILINX_VIVADO``: Vitis HLS (``XILINX_HLS``) synthesises the
HLS layers, and FIFO sizing and rtlsim load Vivado's simulator kernel into this process through
finn_xsi, whose libraries the loader finds only through the ``LD_LIBRARY_PATH`` the process
*started* with. FINN's command line computes that path (``xilinx_ld_library_paths``) and restarts
itself with it; :func:`xsi_environment` computes it with FINN's own function, and ``python -m
hw_build bitstream`` restarts itself the same way (:func:`restart_with_xsi_path`).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

NO_VIVADO_TOOL_VERSION = "none (no Vivado)"
#: The Xilinx tools a bitstream build needs: variable, what it is, what for.
TOOLS = (("XILINX_VIVADO", "Vivado", "stitching, FIFO sizing and rtlsim in its simulator, synthesis and the bitstream"),
         ("XILINX_HLS", "Vitis HLS", "the HLS synthesis of every HLS layer and the IODMAs"))
#: finn-plus 1.6.1 supports these tool versions (its package metadata).
TOOL_VERSIONS = "2022.2 or 2024.2"
_REEXEC_MARKER = "_QPD_XSI_LD_LIBRARY_PATH_RESTARTED"
_prepared = False


def vivado_available() -> bool:
    """True when both Xilinx tools a bitstream build needs are announced (:data:`TOOLS`)."""
    return not missing_tools()


def missing_tools() -> list[str]:
    """One sentence for each tool of :data:`TOOLS` whose variable is unset or not a folder."""
    sentences = []
    for var, tool, purpose in TOOLS:
        value = os.environ.get(var)
        if not value:
            sentences.append(f"{var} is unset: {tool} ({TOOL_VERSIONS}, for {purpose}) is not installed here, "
                             "or its settings64.sh was not sourced")
        elif not Path(value).is_dir():
            sentences.append(f"{var} is {value}, which is not a folder: point it at the {tool} installation")
    return sentences


def xsi_environment() -> dict[str, str]:
    """The ``LD_LIBRARY_PATH`` FINN's Vivado steps need, computed as FINN's command line does
    (``finn.interface.run_finn.xilinx_ld_library_paths``: the system library folder, Vivado's
    ``lib/lnx64.o`` and Vitis HLS's floating-point library), its entries ahead of the current ones.

    Empty when ``XILINX_VIVADO`` is unset (FINN adds nothing then) or nothing is missing.
    """
    from finn.interface.run_finn import xilinx_ld_library_paths

    current = [p for p in os.environ.get("LD_LIBRARY_PATH", "").split(os.pathsep) if p]
    missing = [p for p in xilinx_ld_library_paths() if p not in current]
    return {"LD_LIBRARY_PATH": os.pathsep.join(missing + current)} if missing else {}


def restart_with_xsi_path(module_argv: list[str]) -> None:
    """Restart ``python -m <module_argv>`` with :func:`xsi_environment`, as FINN's command line restarts
    itself (the loader reads ``LD_LIBRARY_PATH`` once, at start); once only, and not when nothing is missing."""
    extra = xsi_environment()
    if not extra or os.environ.get(_REEXEC_MARKER) == "1":
        return
    env = {**os.environ, **extra, _REEXEC_MARKER: "1"}
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, "-m", *module_argv], env)


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
    from finn.interface.interface_utils import resolve_module_path

    for var, module in (("FINN_RTLLIB", "finn-rtllib"), ("FINN_CUSTOM_HLS", "custom_hls")):  # as run_finn.prepare_finn
        os.environ.setdefault(var, resolve_module_path(module))  # cppsim and the RTL node container read them
    if not os.environ.get("XILINX_VIVADO"):
        import finn.xsi

        if "SimEngine" not in vars(finn.xsi):
            finn.xsi.SimEngine = None  # (2): only rtlsim steps use it; they need Vivado anyway
        import finn.builder.build_dataflow as build_dataflow

        build_dataflow.get_vivado_root = lambda: NO_VIVADO_TOOL_VERSION  # (3)
    _prepared = True


def boot_for_vivado() -> None:
    """What FINN's command line does before a Vivado build (``run_finn.prepare_finn``), after :func:`prepare_finn`:
    the tools' ``bin`` folders on ``PATH``, the XSI library path for the tools FINN starts, and
    finn_xsi built (once, for the installed Vivado) and loaded. A failure is one sentence."""
    from finn.interface.interface_utils import set_synthesis_tools_paths
    from finn.interface.run_finn import prepend_ld_library_paths, xilinx_ld_library_paths
    from finn.util.exception import FINNUserError

    from training.errors import FlowError

    set_synthesis_tools_paths()
    prepend_ld_library_paths(xilinx_ld_library_paths())
    os.environ.setdefault("XILINX_LOCAL_USER_DATA", "no")
    import finn.xsi

    try:
        finn.xsi.ensure_available()
    except (FINNUserError, OSError, ValueError) as exc:
        raise FlowError(f"finn_xsi, Vivado's simulator bridge FINN sizes FIFOs and runs rtlsim with, is not available "
                        f"for XILINX_VIVADO={os.environ.get('XILINX_VIVADO')} ({exc}); it is built from FINN's "
                        "nlohmann-json (make finn-deps) with cmake and the Vivado installation's headers") from None
