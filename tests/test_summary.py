"""docs/results/summary.{json,md}: results at a glance, re-rendered byte for byte from the committed tables."""

from __future__ import annotations

import json

from flow.experiments.summary import HALF_PERCENT, SUMMARY_JSON, SUMMARY_MD, markdown, summarise, summarise_table
from tests.conftest import REPO

RESULTS = REPO / "docs" / "results"
FIELDS = {"method", "student", "deployed_bits", "teacher_bits", "seeds", "seeds_kept_paired", "mean_return",
          "teacher_return", "est_lut"}


def test_the_committed_summary_is_what_the_committed_tables_say():
    summary = summarise(RESULTS)
    assert (RESULTS / SUMMARY_JSON).read_text() == json.dumps(summary, indent=2) + "\n", "run make summary"
    assert (RESULTS / SUMMARY_MD).read_text() == markdown(summary), "run make summary"
    tables = {json.loads(p.read_text())["env_id"] for p in RESULTS.glob("*/qpd_table.json")}
    assert set(summary) == tables  # one entry per environment of every committed table


def test_entries_carry_every_field_and_obey_their_rules():
    for env_id, entry in summarise(RESULTS).items():
        for key in ("smallest_keeping", "best_within_half_percent"):
            if entry[key] is not None:
                assert FIELDS <= set(entry[key]), (env_id, key)
        small = entry["best_within_half_percent"]
        assert small is None or small["deployed_bits"] <= HALF_PERCENT * small["teacher_bits"]
        keeping = entry["smallest_keeping"]
        assert keeping is None or keeping["seeds_kept"] == keeping["seeds"]


def test_choices_on_a_made_up_table():
    """The smallest keeping student and the best small one, on a table written here."""
    arch = {"deployed_bits": 0, "LUT": 100.0, "BRAM_18K": 1, "DSP": 0, "latency_us": 1.0, "fits": True}
    data = {"env_id": "X-v0", "command": "c", "settings": {"hidden": [32, 32]},
            "teacher": {"run": "r", "mean_return": 10.0, "size_bits": 1_000_000},
            "hardware": {"architectures": {"2x32-w8a8": {**arch, "deployed_bits": 20_000},
                                           "2x32-w3a3": {**arch, "deployed_bits": 4_000},
                                           "2x32-w2a2": {**arch, "deployed_bits": 3_000}}},
            "rows": [{"method": "qpd", "bits": b, "seeds": [0, 1, 2], "mean_return": ret,
                      "seeds_keeping_teacher": kept, "seeds_keeping_teacher_paired": kept}
                     for b, ret, kept in ((8, 10.0, 3), (3, 9.0, 3), (2, 8.0, 1))]}
    entry = summarise_table(data)
    assert entry["smallest_keeping"]["student"] == "2x32-w3a3" and entry["smallest_keeping"]["seeds_kept_paired"] == 3
    assert entry["best_within_half_percent"]["student"] == "2x32-w3a3"  # keeps 3/3 where w2 keeps 1/3


def test_frontiers_of_the_same_teacher_add_candidates_with_enough_seeds():
    from flow.experiments.summary import frontier_candidates

    arch = {"deployed_bits": 0, "LUT": 100.0, "BRAM_18K": 1, "DSP": 0, "latency_us": 1.0, "fits": True}
    data = {"env_id": "X-v0", "teacher": {"run": "r", "mean_return": 10.0, "size_bits": 1_000_000},
            "settings": {"depth": 2, "methods": ["qpd"], "distill_settings": {"first_bits": 8, "last_bits": 8}},
            "hardware": {"architectures": {"2x64-w3a3-f8l8": {**arch, "deployed_bits": 30_000},
                                           "2x32-w3a3-f8l8": {**arch, "deployed_bits": 17_000}}},
            "rows": [{"method": "qpd", "width": 64, "bits": 3, "seeds": [0, 1, 2], "mean_return": 10.5,
                      "seeds_keeping_teacher": 3, "seeds_keeping_teacher_paired": 3},
                     {"method": "qpd", "width": 32, "bits": 3, "seeds": [0], "mean_return": 10.5,
                      "seeds_keeping_teacher": 1, "seeds_keeping_teacher_paired": 1}]}
    (only,) = frontier_candidates(data)  # the one-seed row is no claim
    assert only["student"] == "2x64-w3a3-f8l8" and only["deployed_bits"] == 30_000 and only["seeds_kept_paired"] == 3
