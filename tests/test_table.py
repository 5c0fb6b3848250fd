"""The QPD table and frontier: aggregation by hand, trial caching, and a tiny end-to-end grid."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import FAST_DISTILL
from training.errors import FlowError
from flow.experiments.frontier import smallest_keeping_teacher
from flow.experiments.table import aggregate, qpd_table

TEACHER = {"mean_return": 100.0, "std_return": 10.0, "size_bits": 10_000}


def _rec(method, bits, seed, mean, size=100, **kw):
    return {"method": method, "bits": bits, "seed": seed, "mean_return": mean, "size_bits": size, **kw}


def test_aggregate_by_hand():
    rows = aggregate([_rec("qpd", 2, 0, 95.0), _rec("qpd", 2, 1, 85.0), _rec("qpd", 2, 2, 92.0)], TEACHER, ("method", "bits"))
    (row,) = rows
    assert row["mean_return"] == pytest.approx(272 / 3)
    assert row["worst_seed_mean"] == 85.0
    assert row["seeds_keeping_teacher"] == 2  # 95 and 92 are >= 100 - 10; 85 is not
    assert row["ratio"] == pytest.approx(0.01)


def test_smallest_student_keeping_the_teacher():
    rows = aggregate([
        _rec("qpd", 2, 0, 99.0, size=50, width=8), _rec("qpd", 2, 1, 70.0, size=50, width=8),  # one seed fails
        _rec("qpd", 3, 0, 95.0, size=75, width=8), _rec("qpd", 3, 1, 91.0, size=75, width=8),
        _rec("qpd", 8, 0, 100.0, size=400, width=16), _rec("qpd", 8, 1, 100.0, size=400, width=16),
    ], TEACHER, ("method", "width", "bits"))
    best = smallest_keeping_teacher(rows, "qpd")
    assert (best["width"], best["bits"], best["size_bits"]) == (8, 3, 75)
    assert smallest_keeping_teacher(rows, "direct") is None


def test_tiny_table_end_to_end_and_cached(cartpole_teacher, tmp_path):
    # 6 bits: QPD's ladder is 8 -> 6, two stages (each stage re-initialises its activation scales, the
    # most expensive part of a short trial). No "direct": it is QPD's trial with a one-stage schedule
    # (tests/test_qpd_config.py), and it was a quarter of the suite's slowest test.
    out = tmp_path / "table"
    kwargs = dict(bits=[6], seeds=[0], methods=["ptq", "float-ptq", "qpd"], hidden=[8, 8], updates=1400,
                  episodes=3, jobs=1, out_dir=out, runs_dir=tmp_path / "runs", settings=FAST_DISTILL)
    data = qpd_table("CartPole-v1", cartpole_teacher, **kwargs)
    assert {p.name for p in out.iterdir()} >= {"qpd_table.md", "qpd_table.json", "qpd_table.png", "trials"}
    assert {r["method"] for r in data["rows"]} == {"ptq", "float-ptq", "qpd"}
    md = (out / "qpd_table.md").read_text()
    assert "| 6 | QPD |" in md and "Made by:" in md
    # Hardware: one architecture (2x8-w6a6), compiled once with FINN; PTQ keeps the teacher's and shows none.
    cost = data["hardware"]["architectures"]["2x8-w6a6"]
    assert set(data["hardware"]["architectures"]) == {"2x8-w6a6"}
    assert cost["deployed_bits"] >= (4 * 8 + 8 * 8 + 8 * 2) * 6 and cost["LUT"] > 0 and cost["fits"]  # weights alone
    qpd_row = next(line for line in md.splitlines() if line.startswith("| 6 | QPD |"))
    assert f"| {cost['deployed_bits']:,} |" in qpd_row
    assert "| – | – |" in next(line for line in md.splitlines() if line.startswith("| 6 | PTQ of the teacher |"))
    assert f"| 2x8-w6a6 | {cost['deployed_bits']:,} |" in md
    stamps = {p.name: p.stat().st_mtime_ns for p in (out / "trials").iterdir()}
    again = qpd_table("CartPole-v1", cartpole_teacher, **kwargs)
    assert {p.name: p.stat().st_mtime_ns for p in (out / "trials").iterdir()} == stamps  # nothing re-run
    assert json.loads(json.dumps(again["rows"])) == json.loads(json.dumps(data["rows"]))
    with pytest.raises(FlowError, match="other settings"):
        qpd_table("CartPole-v1", cartpole_teacher, **{**kwargs, "updates": 1600})
    # Distilling trials record their full config; a stale one (a default changed since) runs again.
    record_path = out / "trials" / "qpd-2x8-w6-s0.json"
    record = json.loads(record_path.read_text())
    from training.qpd.config import QPDConfig

    assert record["distill_config"]["final_stage_share"] == QPDConfig().final_stage_share
    assert record["distill_config"]["weight_bits"] == 6
    assert all("distill_config" in r for r in data["trials"] if r["method"] != "ptq")
    record["distill_config"]["final_stage_share"] /= 2
    record_path.write_text(json.dumps(record))
    stamps = {p.name: p.stat().st_mtime_ns for p in (out / "trials").iterdir()}
    qpd_table("CartPole-v1", cartpole_teacher, **kwargs)
    rerun = {p.name for p in (out / "trials").iterdir() if p.stat().st_mtime_ns != stamps[p.name]}
    assert rerun == {"qpd-2x8-w6-s0.json"}
    assert json.loads(record_path.read_text())["distill_config"]["final_stage_share"] == QPDConfig().final_stage_share
    # Trials record their teacher's weight fingerprint; one made with another teacher (retrained in
    # the same folder, its returns perhaps the same) runs again.
    from training.teacher.policy import TeacherPolicy

    assert {r["teacher_sha256"] for r in data["trials"]} == {TeacherPolicy.load(cartpole_teacher).fingerprint()}
    ptq_path = next((out / "trials").glob("ptq-*.json"))
    ptq_record = json.loads(ptq_path.read_text())
    ptq_path.write_text(json.dumps({**ptq_record, "teacher_sha256": "0" * 64}))
    stamps = {p.name: p.stat().st_mtime_ns for p in (out / "trials").iterdir()}
    qpd_table("CartPole-v1", cartpole_teacher, **kwargs)
    assert {p.name for p in (out / "trials").iterdir() if p.stat().st_mtime_ns != stamps[p.name]} == {ptq_path.name}
    again = json.loads(ptq_path.read_text())
    assert (again["teacher_sha256"], again["returns"]) == (ptq_record["teacher_sha256"], ptq_record["returns"])


def test_unknown_method_and_missing_teacher(tmp_path, cartpole_teacher):
    with pytest.raises(FlowError, match="unknown method"):
        qpd_table("CartPole-v1", cartpole_teacher, bits=[2], seeds=[0], methods=["magic"], hidden=[8], updates=800,
                  episodes=1, jobs=1, out_dir=tmp_path, runs_dir=tmp_path)
    with pytest.raises(FlowError, match="has no results.json: train it first"):
        qpd_table("CartPole-v1", tmp_path / "none", bits=[2], seeds=[0], methods=["ptq"], hidden=[8], updates=800,
                  episodes=1, jobs=1, out_dir=tmp_path, runs_dir=tmp_path)


def test_a_committed_table_renders_without_its_teacher_run_when_only_teacherless_trials_are_left(tmp_path):
    # Run folders do not travel between machines: a fresh machine holding a committed table and the
    # cached records of every teacher-reading trial must not retrain the teacher to finish QAT PPO rows.
    from dataclasses import asdict

    from flow.experiments.table import build_trials, recorded_teacher

    gone, out = tmp_path / "teacher-gone", tmp_path / "table"
    grid = dict(bits=[8], seeds=[0], methods=["ptq", "qat-ppo"], hidden=[8], updates=800, episodes=3)
    _, trials = build_trials("CartPole-v1", gone, grid["bits"], grid["seeds"], grid["methods"], grid["hidden"],
                             grid["updates"], grid["episodes"], tmp_path / "runs")
    (out / "trials").mkdir(parents=True)
    seeds, returns = [0, 1, 2], {"ptq": [90.0, 100.0, 95.0], "qat-ppo": [500.0, 500.0, 500.0]}
    for t in trials:
        record = {**json.loads(json.dumps(asdict(t))), "key": t.key, "returns": returns[t.method], "seeds": seeds,
                  "mean_return": float(np.mean(returns[t.method])), "std_return": 1.0, "size_bits": 100}
        (out / "trials" / f"{t.key}.json").write_text(json.dumps(record))
    teacher = {**TEACHER, "run": str(gone), "n_episodes": 3, "returns": [100.0, 100.0, 100.0], "seeds": seeds}
    (out / "qpd_table.json").write_text(json.dumps({"env_id": "CartPole-v1", "teacher": teacher}))
    assert recorded_teacher(gone, "Acrobot-v1", out, trials) is None  # another env's table
    assert recorded_teacher(tmp_path / "other", "CartPole-v1", out, trials) is None  # another teacher's
    data = qpd_table("CartPole-v1", gone, **grid, jobs=1, out_dir=out, runs_dir=tmp_path / "runs", hardware=False)
    assert data["teacher"] == teacher
    assert {r["method"]: r["mean_return"] for r in data["rows"]} == {"ptq": 95.0, "qat-ppo": 500.0}
    assert "| 8 | QAT PPO" in (out / "qpd_table.md").read_text()
    (out / "trials" / f"{trials[0].key}.json").unlink()  # the PTQ trial reads the teacher: it must be trained
    assert recorded_teacher(gone, "CartPole-v1", out, trials) is None
    with pytest.raises(FlowError, match="has no results.json: train it first"):
        qpd_table("CartPole-v1", gone, **grid, jobs=1, out_dir=out, runs_dir=tmp_path / "runs", hardware=False)


def test_bits_label_shows_wider_activations_of_one_bit_students() -> None:
    from flow.experiments.table import bits_label

    assert bits_label(4, "qpd") == "4"
    assert bits_label(1, "qpd") == "1/2"
    assert bits_label(1, "direct") == "1/2"
    assert bits_label(1, "ptq") == "1"  # the teacher's PTQ binarises its activations too


def test_grid_config_reaches_distilling_trials_only(tmp_path):
    from flow.experiments.table import build_trials, grid_settings, markdown

    cfg = tmp_path / "variant.yaml"
    cfg.write_text("final_stage_share: 0.6\nlr: 0.0005\n")
    settings = grid_settings(cfg)
    floats, trials = build_trials("CartPole-v1", tmp_path, [2], [0], ["ptq", "qat-ppo", "float-ptq", "direct", "qpd"],
                                  [32, 32], 8000, 10, tmp_path / "runs", settings)
    extra = (("final_stage_share", 0.6), ("lr", 0.0005))
    assert [t.extra for t in floats] == [extra]
    assert {t.method: t.extra for t in trials} == {"ptq": (), "qat-ppo": (), "float-ptq": extra, "direct": extra,
                                                  "qpd": extra}
    rows = aggregate([_rec("qpd", 2, 0, 95.0)], TEACHER, ("method", "bits"))
    assert "`final_stage_share: 0.6`" in markdown("CartPole-v1", {**TEACHER, "n_episodes": 10}, rows, "cmd", [32, 32],
                                                  settings)


def test_qat_ppo_can_run_at_some_widths_only_and_the_caption_says_so(tmp_path):
    from flow.experiments.table import build_trials, markdown

    _, trials = build_trials("CartPole-v1", tmp_path, [8, 4, 2], [0, 1], ["qat-ppo", "qpd"], [32, 32], 8000, 10,
                             tmp_path / "runs", qat_ppo_bits=[8, 2])
    assert sorted({t.bits for t in trials if t.method == "qat-ppo"}) == [2, 8]
    assert sorted({t.bits for t in trials if t.method == "qpd"}) == [2, 4, 8]
    assert len(trials) == 2 * 2 + 3 * 2
    with pytest.raises(FlowError, match=r"QAT PPO bits \[3\] are not among the table's bits"):
        build_trials("CartPole-v1", tmp_path, [8, 2], [0], ["qat-ppo"], [32, 32], 8000, 10, tmp_path / "runs",
                     qat_ppo_bits=[3])
    rows = aggregate([_rec(m, b, 0, 95.0) for m, b in [("qpd", 8), ("qpd", 4), ("qpd", 2), ("qat-ppo", 8),
                                                        ("qat-ppo", 2)]], TEACHER, ("method", "bits"))
    md = markdown("CartPole-v1", {**TEACHER, "n_episodes": 10}, rows, "cmd", [32, 32])
    assert ("QAT PPO from scratch (student actor, float critic) was run at 8, 2 bits only: each of its trials costs "
            "a teacher's training budget.") in md
    assert "Teacher: PPO," in md  # a record without "algo" predates SAC teachers
    assert "Teacher: SAC," in markdown("Hopper-v5", {**TEACHER, "n_episodes": 10, "algo": "sac"}, rows, "cmd", [32, 32])
    full = aggregate([_rec("qpd", 8, 0, 95.0), _rec("qat-ppo", 8, 0, 95.0)], TEACHER, ("method", "bits"))
    assert "only" not in markdown("CartPole-v1", {**TEACHER, "n_episodes": 10}, full, "cmd", [32, 32])


@pytest.mark.parametrize("text, message", [
    ("schedule: [4, 2]\n", "the grid sets per trial"),
    ("weight_bits: 3\n", "the grid sets per trial"),
    ("no_such_setting: 1\n", "unknown distillation setting"),
    ("final_stage_share: 1.5\n", "final_stage_share"),
    ("- a list\n", "must be a mapping"),
])
def test_bad_grid_config_is_refused_before_any_trial(tmp_path, text, message):
    from flow.experiments.table import build_trials, grid_settings

    cfg = tmp_path / "bad.yaml"
    cfg.write_text(text)
    with pytest.raises(FlowError, match=message):
        build_trials("CartPole-v1", tmp_path, [2], [0], ["qpd"], [32, 32], 8000, 10, tmp_path / "runs", grid_settings(cfg))


def test_tiny_frontier_end_to_end_labels_one_bit_students(cartpole_teacher, tmp_path):
    from flow.experiments.frontier import frontier

    out = tmp_path / "frontier"
    data = frontier("CartPole-v1", cartpole_teacher, widths=[8], bits=[1], seeds=[0], methods=["direct"], depth=2,
                    updates=400, episodes=2, jobs=1, out_dir=out, runs_dir=tmp_path / "runs")
    assert {p.name for p in out.iterdir()} >= {"frontier.md", "frontier.json", "frontier.png", "trials"}
    (row,) = data["rows"]
    md = (out / "frontier.md").read_text()
    assert f"| 8 | 1/2 | direct | {row['size_bits']:,} |" in md  # 1-bit weights keep 2-bit activations
    best = data["smallest_keeping_teacher"]["direct"]
    assert ("at w1a2" in md) == (best is not None) and "at w1a1" not in md
    cost = data["hardware"]["architectures"]["2x8-w1a2"]
    assert f"| {cost['deployed_bits']:,} |" in md and f"| {cost['LUT']:,.0f} |" in md
    assert (data["fewest_lut_keeping_teacher"]["direct"] is None) == (best is None)


def test_a_frontier_with_activation_bits_set_trains_costs_and_names_them(cartpole_teacher, tmp_path):
    """--abits 2 with 4-bit weights: the students have 2-bit activations, their trials, rows and
    hardware are named w4a2, and the cost is the w4a2 architecture's."""
    from flow.experiments.frontier import frontier
    from training.qpd.distill import STUDENT_FILE, load_student

    out = tmp_path / "frontier"
    data = frontier("CartPole-v1", cartpole_teacher, widths=[8], bits=[4], seeds=[0], methods=["direct"], depth=2,
                    updates=400, episodes=2, jobs=1, out_dir=out, runs_dir=tmp_path / "runs",
                    settings={"act_bits": 2})
    (trial,) = data["trials"]
    assert trial["key"] == "direct-2x8-w4a2-s0" and (out / "trials" / "direct-2x8-w4a2-s0.json").exists()
    student, _ = load_student(Path(trial["run"]) / STUDENT_FILE)
    assert (student.spec.weight_bits, student.spec.act_bits) == (4, 2)
    assert set(data["hardware"]["architectures"]) == {"2x8-w4a2"}
    assert "| 8 | 4/2 | direct |" in (out / "frontier.md").read_text()


def test_keeping_the_teacher_by_the_paired_test_on_the_same_seeds():
    """A seed whose returns are the teacher's keeps it; one a little lower on every episode does not,
    although the one-std rule keeps both; without the teacher's returns the column is left out."""
    from flow.experiments.table import aggregate, markdown

    rng = np.random.default_rng(0)
    seeds = list(range(1000, 1100))
    teacher_returns = rng.normal(10.0, 2.0, size=100).round(2).tolist()
    teacher = {"run": "t", "mean_return": float(np.mean(teacher_returns)), "std_return": float(np.std(teacher_returns)),
               "n_episodes": 100, "size_bits": 1_000_000, "returns": teacher_returns, "seeds": seeds}

    def trial(method, seed, shift):
        returns = [r - shift for r in teacher_returns]
        return {"method": method, "bits": 2, "seed": seed, "returns": returns, "seeds": seeds, "size_bits": 4000,
                "mean_return": float(np.mean(returns)), "std_return": float(np.std(returns))}

    records = [trial("qpd", 0, 0.0), trial("qpd", 1, 0.0), trial("direct", 0, 0.5), trial("direct", 1, 0.0)]
    rows = {r["method"]: r for r in aggregate(records, teacher, ("method", "bits"))}
    assert rows["qpd"]["seeds_keeping_teacher"] == 2 and rows["qpd"]["seeds_keeping_teacher_paired"] == 2
    assert rows["direct"]["seeds_keeping_teacher"] == 2 and rows["direct"]["seeds_keeping_teacher_paired"] == 1
    assert rows["direct"]["paired_p"][0] < 0.001
    text = markdown("X-v1", teacher, list(rows.values()), "cmd", [32, 32])
    assert "seeds keeping teacher (paired test) |" in text and "| 1/2 |" in text
    bare = {k: v for k, v in teacher.items() if k not in ("returns", "seeds")}
    assert "paired" not in markdown("X-v1", bare, aggregate(records, bare, ("method", "bits")), "cmd", [32, 32])


def test_hardware_rows_mark_a_latency_over_the_budget():
    """Where FINN's folding reaches no design within the budget, the fastest is shown, marked; a grid
    costed before the budget was recorded renders as it did."""
    from flow.experiments.table import hardware_lines

    cost = {"deployed_bits": 9000, "LUT": 3706.0, "BRAM_18K": 11.0, "DSP": 0.0, "fits": True}
    hardware = {"basis": "b", "latency_budget_us": 10.0,
                "architectures": {"fast": {**cost, "latency_us": 6.18}, "slow": {**cost, "latency_us": 28.43}}}
    lines = hardware_lines(TEACHER, hardware, ["fast", "slow"])
    assert "| 6.18 | yes |" in lines[4] and "| 28.43 (over budget) | yes |" in lines[5]
    old = {k: v for k, v in hardware.items() if k != "latency_budget_us"}
    assert "over budget" not in "\n".join(hardware_lines(TEACHER, old, ["fast", "slow"]))
