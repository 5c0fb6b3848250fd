"""python -m flow fresh-seeds: a grid's students and teacher re-evaluated on seeds no choice was made on."""

from __future__ import annotations

import json

import pytest

from training.errors import FlowError


def test_a_grid_is_reevaluated_on_fresh_seeds(short_qpd_student, cartpole_teacher, tmp_path):
    from flow.experiments.fresh_seeds import reevaluate

    run, results = short_qpd_student
    grid = {"env_id": "CartPole-v1", "teacher": {"run": str(cartpole_teacher)},
            "trials": [{"key": "qpd-2x16-w2-s0", "variant": "qpd", "method": "qpd", "bits": 2, "seed": 0,
                        "hidden": [16, 16], "mean_return": results["mean_return"], "run": str(run)},
                       {"key": "qpd-2x16-w2-s1", "variant": "qpd", "method": "qpd", "bits": 2, "seed": 1,
                        "hidden": [16, 16], "mean_return": 1.0, "run": str(tmp_path / "gone")},
                       {"key": "qpd-2x8-w2-s0", "method": "qpd", "bits": 2, "seed": 0, "hidden": [8, 8],
                        "mean_return": 2.0, "run": str(tmp_path / "gone")}]}
    (tmp_path / "ablation.json").write_text(json.dumps(grid))
    data = reevaluate(tmp_path, seed_start=2000, episodes=3)
    assert data["seeds"] == [2000, 2002] and len(data["teacher"]["fresh_returns"]) == 3
    fresh, gone, _ = data["trials"]
    assert len(fresh["fresh_returns"]) == 3 and isinstance(fresh["keeps_teacher_paired"], bool)
    assert gone["fresh_mean_return"] is None and "not here" in gone["note"]
    md = (tmp_path / "fresh_seeds.md").read_text()
    # A frontier's widths are separate groups: each student shape is judged on its own seeds.
    assert "fresh episode seeds 2000–2002" in md and "| qpd | 2x16 | 2 |" in md and "| qpd | 2x8 | 2 | 2.00 |" in md
    with pytest.raises(FlowError, match="overlap the evaluation seeds"):
        reevaluate(tmp_path, seed_start=1050, episodes=3)
