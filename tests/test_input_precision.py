"""The input-precision study: its trials, what it refuses, and its table from records by hand."""

from __future__ import annotations

import json

import pytest

from flow.experiments.input_precision import build_input_trials, markdown, rerender_input_precision, trial_input_bits
from flow.experiments.table import aggregate
from flow.experiments.trials import trial_qpd_config
from training.errors import FlowError

TEACHER = {"mean_return": 100.0, "std_return": 10.0, "size_bits": 10_000, "n_episodes": 3, "returns": [90.0, 100.0, 110.0],
           "seeds": [1000, 1001, 1002]}


def test_one_qpd_trial_per_input_width_and_seed_and_nothing_else_changes(tmp_path):
    trials = build_input_trials("Pendulum-v1", tmp_path, [8, 4], 3, [0, 1], [32, 32], 8000, 10, tmp_path / "runs")
    assert sorted(trials) == [4, 8] and all(len(ts) == 2 for ts in trials.values())
    configs = {ib: trial_qpd_config(ts[0]) for ib, ts in trials.items()}
    assert (configs[8].input_bits, configs[4].input_bits) == (8, 4)
    assert {c.weight_bits for c in configs.values()} == {3} and {c.method for c in configs.values()} == {"qpd"}
    a, b = (c.effective_dict() for c in configs.values())
    assert {k for k in a if a[k] != b[k]} == {"input_bits"}
    assert trials[8][0].runs_dir != trials[4][0].runs_dir  # the same trial key, kept apart
    assert [trial_input_bits(ts[0]) for ts in trials.values()] == list(trials)  # and the cache folder they go in


@pytest.mark.parametrize("kwargs, message", [
    (dict(env_id="MinAtar/Breakout-v1"), "binary frames"),
    (dict(input_bits=[8, 1]), "input bits must be 2 to 8"),
    (dict(input_bits=[]), "input bits must be 2 to 8"),
    (dict(settings={"input_bits": 4}), "sets input_bits per trial"),
])
def test_what_the_study_refuses_in_one_sentence(tmp_path, kwargs, message):
    args = dict(env_id="Pendulum-v1", teacher_dir=tmp_path, input_bits=[8, 4], bits=3, seeds=[0], hidden=[32, 32],
                updates=8000, episodes=10, runs_dir=tmp_path, settings=None)
    args.update(kwargs)
    with pytest.raises(FlowError, match=message):
        build_input_trials(**args)


def _rec(ib, seed, returns):
    return {"method": "qpd", "bits": 3, "seed": seed, "input_bits": ib, "mean_return": sum(returns) / len(returns),
            "returns": returns, "seeds": [1000, 1001, 1002], "size_bits": 500, "agreement": 0.9}


def test_the_table_reads_from_records_and_rerenders(tmp_path):
    records = [_rec(8, 0, [91.0, 101.0, 111.0]), _rec(8, 1, [95.0, 99.0, 108.0]), _rec(3, 0, [20.0, 30.0, 25.0]),
               _rec(3, 1, [88.0, 100.0, 109.0])]
    data = {"env_id": "Pendulum-v1", "teacher": TEACHER,
            "settings": {"input_bits": [8, 3], "bits": 3, "seeds": [0, 1], "hidden": [32, 32], "updates": 8000,
                         "episodes": 3},
            "rows": aggregate(records, TEACHER, ("input_bits",)), "trials": records, "command": "make input-precision",
            "hardware": {"8": {"architectures": {"2x32-w3a3": {"deployed_bits": 7000, "LUT": 1500.0}}},
                         "3": {"architectures": {"2x32-w3a3-i3": {"deployed_bits": 6500, "LUT": 1400.0}}}}}
    md = markdown(data)
    lines = [line for line in md.splitlines() if line.startswith("| 8 |") or line.startswith("| 3 |")]
    assert [line.split("|")[1].strip() for line in lines] == ["8", "3"]  # widest input first
    assert "| 2/2 |" in lines[0] and "| 1/2 |" in lines[1]  # one-std rule: 25 < 90
    assert "| 7,000 | 1,500 |" in lines[0] and "| 6,500 | 1,400 |" in lines[1]
    assert "seeds keeping teacher (paired test)" in md and "w3a3" in md
    (tmp_path / "input_precision.json").write_text(json.dumps(data))
    again = rerender_input_precision(tmp_path)
    assert (tmp_path / "input_precision.md").read_text() == md and again["rows"] == json.loads(json.dumps(data["rows"]))
    assert (tmp_path / "input_precision.png").stat().st_size > 0
