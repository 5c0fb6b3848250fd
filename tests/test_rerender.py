"""The committed results re-render byte for byte from their own json (trials and teacher record).

This guards every change to the grids' accounting and layout code: a change that alters a
committed table must re-render it (and commit the new files) in the same change.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from flow.experiments.ablation import rerender_ablation
from flow.experiments.frontier import rerender_frontier
from flow.experiments.table import rerender_table

RESULTS = Path(__file__).resolve().parent.parent / "docs" / "results"
RENDERERS = {"qpd_table": rerender_table, "frontier": rerender_frontier, "ablation": rerender_ablation}
COMMITTED = sorted(p for name in RENDERERS for p in RESULTS.glob(f"**/{name}.json"))


def test_every_committed_grid_is_covered():
    assert len(COMMITTED) >= 8, COMMITTED


@pytest.mark.parametrize("json_path", COMMITTED, ids=lambda p: str(p.relative_to(RESULTS)))
def test_committed_grid_rerenders_byte_for_byte(json_path: Path, tmp_path: Path):
    shutil.copy(json_path, tmp_path / json_path.name)
    RENDERERS[json_path.stem](tmp_path)
    for suffix in (".json", ".md", ".png"):
        name = json_path.stem + suffix
        assert (tmp_path / name).read_bytes() == (json_path.parent / name).read_bytes(), f"{name} of {json_path.parent} differs"
