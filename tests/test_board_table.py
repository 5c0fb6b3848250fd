"""make board-table's choices that need no FINN build: which trials of a grid a writable design can
take (by their records), the table it renders, and the check that a recreated student is the record's."""

from __future__ import annotations

from pathlib import Path

from flow.board_students import _same_result, grid_records, run_folder_name, trial_of
from flow.board_table import design_architecture, record_mismatch, render
from host.design.spec import load_spec

WRITABLE = Path(__file__).resolve().parent / "host" / "data" / "writable" / "design"
GRID = Path(__file__).resolve().parents[1] / "docs" / "results" / "CartPole-v1"


def test_the_design_architecture_and_which_committed_trials_it_takes():
    arch = design_architecture(load_spec(WRITABLE).data["runtime_weights"]["signature"])
    assert arch == {"hidden": [32, 32], "weight_bits": [2], "act_bits": [2]}
    records = grid_records(GRID)
    taken = [r["key"] for r in records if record_mismatch(r, arch) is None]
    assert sorted(taken) == sorted(f"{m}-2x32-w2-s{s}" for m in ("qat-ppo", "float-ptq", "direct", "qpd") for s in range(3))
    reasons = {r["key"]: record_mismatch(r, arch) for r in records}
    assert reasons["ptq-2x32-w2-s0"] == "it is the teacher's own architecture, quantized (not a student)"
    assert reasons["qpd-2x32-w4-s1"] == "weights at 4 bits, the design's at 2"
    assert reasons["qpd-2x32-w1-s0"] == "weights at 1 bits, the design's at 2"
    assert reasons["float-2x32-float-s0"].startswith("a float student")
    # A grid that sets activation bits (make frontier ABITS=) is judged by them, not by the default rule.
    w2 = next(r for r in records if r["key"] == "qpd-2x32-w2-s0")
    assert record_mismatch({**w2, "extra": [["act_bits", 4]]}, arch) == "activations at 4 bits, the design's at 2"


def test_a_recreated_student_must_return_the_records_episodes():
    record = grid_records(GRID, bits=2)[0]
    assert trial_of(record).key == record["key"] and run_folder_name(record)
    same = {"seeds": record["seeds"], "returns": list(record["returns"])}
    assert _same_result(record, same) is None
    other = {"seeds": record["seeds"], "returns": [r - 1 for r in record["returns"][:3]] + record["returns"][3:]}
    assert _same_result(record, other) == f"its returns differ from the record's on 3 of {len(record['returns'])} episodes"


def test_the_table_renders_compared_and_skipped_students():
    row = {"key": "qpd-2x32-w2-s0", "method": "qpd", "bits": 2, "seed": 0, "software_return": 500.0, "status": "compared",
           "hardware_return": 500.0, "hardware_std": 0.0, "agreement_with_brevitas": 1.0, "policy_sha256": "ab" * 32,
           "verdict": True}
    rerun = {**row, "key": "float-ptq-2x32-w2-s0", "method": "float-ptq", "software_return": 200.75,
             "hardware_return": 200.75, "record_return": 500.0,
             "rerun": "rerun, not the committed student: its returns differ from the record's on 79 of 100 episodes"}
    skipped = {"key": "qpd-2x32-w4-s0", "method": "qpd", "status": "skipped", "reason": "weights at 4 bits, the design's at 2"}
    text = render({"env_id": "CartPole-v1", "design": "d", "backend": "emulated", "signature_sha256": "c" * 64,
                   "architecture": {"hidden": [32, 32], "weight_bits": [2], "act_bits": [2]}, "rows": [row, rerun, skipped],
                   "command": "make board-table DESIGN=d DIR=g"})
    assert "| qpd-2x32-w2-s0 | QPD | 2 | 0 | 500.00 | 500.00 ± 0.00 | 100.00 % | `abababababab` | passed |" in text
    assert "- weights at 4 bits, the design's at 2: qpd-2x32-w4-s0" in text and "emulated fabric, not silicon" in text
    assert "| float-ptq-2x32-w2-s0 (rerun) | float distillation, then PTQ |" in text
    assert "float-ptq-2x32-w2-s0: its returns differ from the record's on 79 of 100 episodes (record 500.00)" in text


def test_a_remote_board_table_needs_a_board_and_passes_it_to_every_comparison(tmp_path, monkeypatch):
    import json
    from types import SimpleNamespace

    import pytest

    import flow.api
    from flow.board_table import _compare_once, board_table
    from training.errors import FlowError

    with pytest.raises(FlowError, match="BACKEND=remote needs BOARD=<host>:<port>, a server started with make serve ALLOW_LOAD=1"):
        board_table("any-design", GRID, backend="remote")
    package = tmp_path / "policy"
    package.mkdir()
    (package / "policy.json").write_text(json.dumps({"policy_sha256": "ab" * 32}))
    seen = []

    def fake_compare(args):
        seen.append(args)
        return SimpleNamespace(report={"design": "d", "episodes": 5, "backend": args.backend, "board": args.board,
                                       "policy": {"policy_sha256": "ab" * 32}})

    monkeypatch.setattr(flow.api, "compare_args", fake_compare)
    out = tmp_path / "out"
    report = _compare_once("d", package, "remote", 5, out, "h:1", "k")
    assert (seen[-1].backend, seen[-1].board, seen[-1].keys, seen[-1].policy) == ("remote", "h:1", "k", str(package))
    out.mkdir()
    (out / "compare.json").write_text(json.dumps(report))
    _compare_once("d", package, "remote", 5, out, "h:1")  # the same server: resumed, not run again
    assert len(seen) == 1
    _compare_once("d", package, "remote", 5, out, "h:2")  # another server may be another fabric: run
    assert len(seen) == 2 and seen[-1].board == "h:2"
