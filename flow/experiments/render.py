"""Re-rendering committed grids from their json: ``python -m flow render <folder>`` (``make render``).

Each grid's json holds its trials and its teacher record, so its table, plot and rows can be
made again without training or evaluating anything: a change of accounting or layout reaches
the committed results this way, and ``tests/test_rerender.py`` checks that they re-render byte
for byte.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

from flow.experiments.ablation import rerender_ablation
from flow.experiments.frontier import rerender_frontier
from flow.experiments.input_precision import rerender_input_precision
from flow.experiments.table import rerender_table
from training.errors import FlowError

#: Grid json file stem → its re-renderer ``(out_dir, hardware) -> data``.
RENDERERS: dict[str, Callable[..., dict[str, Any]]] = {
    "qpd_table": rerender_table,
    "frontier": rerender_frontier,
    "ablation": lambda out_dir, hardware=False: rerender_ablation(out_dir),  # one architecture per bits: no hardware table
    "input_precision": rerender_input_precision,  # its hardware record is made with its trials and kept
}


def grid_files(folder: Path) -> list[Path]:
    """Every grid json under ``folder`` (trial caches and run folders are not grids)."""
    return sorted(p for stem in RENDERERS for p in folder.rglob(f"{stem}.json") if "runs" not in p.parts)


def rerender_folder(folder: Path, hardware: bool = True) -> list[Path]:
    """Re-render every grid under ``folder``; return the json files re-rendered."""
    if not folder.is_dir():
        raise FlowError(f"{folder} is not a folder")
    files = grid_files(folder)
    if not files:
        raise FlowError(f"no grid in {folder} (looked for {', '.join(f'{s}.json' for s in RENDERERS)})")
    for path in files:
        try:
            RENDERERS[path.stem](path.parent, hardware=hardware)
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise FlowError(f"{path} is not a {path.stem} json this version can read ({type(exc).__name__}: {exc})") from None
    return files
