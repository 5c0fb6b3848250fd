"""FINN's own dependencies for the Vivado build: ``make finn-deps`` fetches them, ``make bitstream`` checks them.

finn-plus pins what its Vivado steps need (finn-hlslib, board files, nlohmann-json, ...) in its
``external_dependencies.yaml`` and fetches it with ``finn deps update`` into its dependency folder
(``FINN_DEPS``: by default ``finn_deps`` beside the installed ``finn`` package). That command
refuses to start without Vivado (it builds finn_xsi first), but the fetching itself is FINN's
``DependencyUpdater``, which needs no Xilinx tool: we call it with FINN's own pin list and FINN's
own folder, so ``make finn-deps`` and ``finn deps update`` fetch the same commits into the same place,
and either satisfies the other.

A Pynq-Z2 build needs only part of FINN's list (:data:`NEEDED`): the other entries are board files
of other boards and the multi-FPGA link. ``--all`` fetches the whole list, as ``finn deps update`` does.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

#: What a Pynq-Z2 bitstream build takes from FINN's dependency list, and what for.
NEEDED = {
    "finn-hlslib": "the HLS library every HLS layer is synthesised from",
    "attention-hlslib": "on the include path of FINN's HLS synthesis and cppsim",
    "pynq-z2": "the PYNQ-Z2 board files of the Zynq project",
    "nlohmann-json": "the JSON library finn_xsi (Vivado's simulator bridge, for FIFO sizing and rtlsim) is built with",
}
EXIT_MISSING = 3  # as for a missing Vivado (hw_build.compile.EXIT_NO_VIVADO)


@dataclass
class DepsStatus:
    """Where FINN's dependencies live, which of the needed ones are missing, and FINN's pins."""

    location: Path
    definitions: Path
    missing: list[str]
    pins: dict[str, str]  # name -> pinned commit, or the download URL for direct downloads

    def sentence(self) -> str:
        """One sentence naming what is missing and the command that fetches it."""
        names = ", ".join(f"{name} ({NEEDED.get(name, 'listed by FINN')})" for name in self.missing)
        return (f"FINN's dependencies for the Vivado build are missing from {self.location}: {names}; "
                "run make finn-deps (it fetches them at the commits finn-plus pins, as `finn deps update` does)")


def _settings():
    from finn.interface.settings import FINNSettings

    return FINNSettings.init(flow_config=Path("dummy.yaml"), auto_set_environment_vars=False)


def _definitions(path: Path):
    import yaml
    from finn.interface.manage_deps import DependencyData

    return DependencyData.model_validate(yaml.safe_load(path.read_text()))


def status(names: list[str] | None = None) -> DepsStatus:
    """Which of ``names`` (default :data:`NEEDED`) are not installed at FINN's pinned version, offline.

    Git dependencies are compared by commit, as FINN does; a direct download counts as installed
    when what it unpacks to exists (FINN compares a download's version with its server, which
    needs the network).
    """
    settings = _settings()
    location, definitions = Path(settings.finn_deps), Path(settings.finn_deps_definitions)
    data = _definitions(definitions)
    names = list(NEEDED) if names is None else names
    pins = {name: str(getattr(data.get_dependency_data(name), "commit", None) or data.get_dependency_data(name).url)
            for name in names}
    if not location.is_dir():
        return DepsStatus(location, definitions, list(names), pins)
    updater = _updater(location, definitions, settings.deps_git_timeout)
    missing = []
    for name in names:
        if name in data.direct_download_deps:
            dep = data.direct_download_deps[name]
            installed = updater._unpacked_path(str(dep.url), location / dep.target_directory, dep.do_unzip).exists()
        else:
            installed = not updater.is_outdated(name)
        if not installed:
            missing.append(name)
    return DepsStatus(location, definitions, missing, pins)


def _updater(location: Path, definitions: Path, git_timeout_s: float):
    from finn.interface.manage_deps import DependencyUpdater

    return DependencyUpdater(location, definitions, git_timeout_s, non_interactive=True)


def fetch(every: bool = False) -> DepsStatus:
    """``make finn-deps``: fetch what is missing with FINN's ``DependencyUpdater``; return what is still missing.

    ``every``: FINN's whole list, as ``finn deps update``; else :data:`NEEDED`.
    """
    settings = _settings()
    names = _definitions(Path(settings.finn_deps_definitions)).get_all_dependencies() if every else list(NEEDED)
    before = status(names)
    if before.missing:
        updater = _updater(before.location, before.definitions, settings.deps_git_timeout)
        for name in before.missing:
            print(f"  fetching {name} ({before.pins[name]}) into {before.location}", flush=True)
            try:
                updater.install_dependency(name)
            except Exception as exc:  # noqa: BLE001  (FINN raises its own errors; the check below names what is missing)
                print(f"    {name}: {type(exc).__name__}: {exc}", flush=True)
    return status(names)


def fetch_failure(after: DepsStatus) -> str:
    """The sentence ``make finn-deps`` ends with when something could not be fetched."""
    return (f"make finn-deps could not fetch {', '.join(after.missing)} into {after.location} (git clone or wget "
            "failed: are github.com and the board-file server reachable?); run it on a machine with the network "
            "and copy its finn_deps folder here, pointing FINN_DEPS at it")
