"""The committed results re-render byte for byte from their own json (trials and teacher record).

This guards every change to the grids' accounting and layout code: a change that alters a
committed table must re-render it (and commit the new files) in the same change.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from flow.experiments.render import RENDERERS, grid_files, rerender_folder
from training.errors import FlowError

RESULTS = Path(__file__).resolve().parent.parent / "docs" / "results"
COMMITTED = grid_files(RESULTS)


def test_every_committed_grid_is_covered():
    assert len(COMMITTED) >= 8, COMMITTED


@pytest.mark.parametrize("json_path", COMMITTED, ids=lambda p: str(p.relative_to(RESULTS)))
def test_committed_grid_rerenders_byte_for_byte(json_path: Path, tmp_path: Path):
    shutil.copy(json_path, tmp_path / json_path.name)
    RENDERERS[json_path.stem](tmp_path, hardware=False)  # the committed json must already hold its hardware record
    for suffix in (".json", ".md", ".png"):
        name = json_path.stem + suffix
        assert (tmp_path / name).read_bytes() == (json_path.parent / name).read_bytes(), f"{name} of {json_path.parent} differs"


def test_render_refuses_a_folder_without_grids_and_a_corrupt_json(tmp_path: Path):
    with pytest.raises(FlowError, match="no grid in"):
        rerender_folder(tmp_path)
    (tmp_path / "qpd_table.json").write_text('{"env_id": "CartPole-v1"}')
    with pytest.raises(FlowError, match="not a qpd_table json this version can read"):
        rerender_folder(tmp_path, hardware=False)
