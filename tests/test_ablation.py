"""The QPD ablation: each variant switches off what it says, gains by hand, a tiny end-to-end run."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.conftest import FAST_DISTILL, run_cli
from tests.test_cli import _assert_user_error
from flow.experiments.ablation import VARIANTS, ablation, build_ablation_trials, with_gain_over_qpd
from training.errors import FlowError
from training.qpd.config import QPDConfig
from flow.experiments.trials import trial_qpd_config


def test_each_variant_switches_off_exactly_its_idea(tmp_path: Path):
    trials = build_ablation_trials("CartPole-v1", tmp_path, [2], [0], list(VARIANTS), [32, 32], 8000, 10, tmp_path)
    cfg = {name: trial_qpd_config(ts[0]) for name, ts in trials.items()}
    default = QPDConfig(env_id="CartPole-v1", weight_bits=2, eval_episodes=10)
    assert cfg["qpd"].effective_dict() == default.effective_dict()
    assert cfg["no-transition"].method == "direct" and cfg["no-transition"].loss == default.loss
    assert cfg["no-value-term"].loss.value_coef == 0 and cfg["no-value-term"].dagger
    assert cfg["no-value-term"].loss.temperature == default.loss.temperature
    assert not cfg["no-student-states"].dagger and cfg["no-student-states"].loss == default.loss
    # A variant's run folders and trial names stay apart from the others'.
    assert len({Path(ts[0].runs_dir) for ts in trials.values()}) == len(trials)
    # The recipe's parts, each alone; the per-action output affine is for continuous actions only.
    assert "output-affine" not in trials and not cfg["recipe"].output_affine
    assert cfg["log-std-teacher"].log_std_init == "teacher" and cfg["clip-targets"].clip_targets
    assert cfg["separate-critic"].critic == "separate" and cfg["float-warm-start"].stages()[0] == (None, None)
    assert cfg["first-last-8"].run_name() == "qpd-2x32-w2a2-f8l8-s0" and cfg["float-student"].method == "float"
    continuous = build_ablation_trials("HalfCheetah-v5", tmp_path, [3], [0], ["output-affine", "recipe"], [32, 32], 8000,
                                       10, tmp_path)
    assert all(trial_qpd_config(ts[0]).output_affine for ts in continuous.values())


def test_unknown_variant_is_refused(tmp_path: Path):
    with pytest.raises(FlowError, match="known: qpd, no-transition"):
        build_ablation_trials("CartPole-v1", tmp_path, [2], [0], ["qpd", "no-kl"], [32, 32], 8000, 10, tmp_path)
    _assert_user_error(run_cli("flow", "ablation", "--variants", "no-kl"), "unknown ablation variant", "no-kl")


def test_gain_over_qpd_by_hand():
    rows = [{"variant": "qpd", "bits": 2, "mean_return": 250.0}, {"variant": "no-value-term", "bits": 2, "mean_return": 200.5},
            {"variant": "no-transition", "bits": 3, "mean_return": 260.0}]
    gains = {(r["variant"], r["bits"]): r["vs_qpd"] for r in with_gain_over_qpd(rows)}
    assert gains == {("qpd", 2): 0.0, ("no-value-term", 2): -49.5, ("no-transition", 3): None}


@pytest.mark.slow  # ~100 s idle: two distillations; the variants' configs are checked above, the grid by test_table
def test_tiny_ablation_end_to_end(cartpole_teacher: Path, tmp_path: Path):
    out = tmp_path / "ablation"
    data = ablation("CartPole-v1", cartpole_teacher, bits=[6], seeds=[0], variants=["qpd", "no-value-term"],
                    hidden=[8, 8], updates=1400, episodes=3, jobs=1, out_dir=out, runs_dir=tmp_path / "runs",
                    settings=FAST_DISTILL)
    assert {p.name for p in out.iterdir()} >= {"ablation.md", "ablation.json", "ablation.png", "trials"}
    assert {r["variant"] for r in data["rows"]} == {"qpd", "no-value-term"}
    md = (out / "ablation.md").read_text()
    assert "| 6 | QPD (all on) |" in md and "| 6 | no value term (policy KL only) |" in md and "Made by:" in md
    # The switched-off run really ran without the value term.
    runs = {r["variant"]: Path(r["run"]) for r in data["trials"]}
    assert runs["qpd"] != runs["no-value-term"]
    stored = {v: yaml.safe_load((p / "config.yaml").read_text()) for v, p in runs.items()}
    assert stored["no-value-term"]["qpd"]["loss"]["value_coef"] == 0
    assert stored["qpd"]["qpd"]["loss"]["value_coef"] == QPDConfig().loss.value_coef > 0
