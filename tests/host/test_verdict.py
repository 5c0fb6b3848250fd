"""The comparison's verdict: it fails (exit 1, one verdict line naming the cause) on disagreement,
on accelerator timeouts and when no step ran; ALLOW_DISAGREEMENT turns that into a warning."""

from __future__ import annotations

import json

import numpy as np
import pytest

import host.cli as host_cli
from host.backends.driver import FinnZynqDriver
from host.backends.emulated_board import EmulatedBackend
from host.cli import SoftwareReferences, main


def _hanging(spec, backend, max_batch, timeout_s):
    board = EmulatedBackend(spec, hang=True)
    return board, FinnZynqDriver(spec, board, max_batch=max_batch, timeout_s=0.02)


def _last_line(out: str) -> str:
    return out.strip().splitlines()[-1]


def test_a_hanging_accelerator_fails_the_comparison(discrete_design, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(host_cli, "local_accelerator", _hanging)
    code = main(["compare", "--design", str(discrete_design), "--episodes", "3", "--out", str(tmp_path / "r")])
    line = _last_line(capsys.readouterr().out)
    assert code == 1
    assert line.startswith("verdict: FAILED") and "no step ran in 3 episode(s)" in line
    assert "3 of 3 episode(s) stopped on an accelerator timeout" in line
    rep = json.loads((tmp_path / "r" / "compare.json").read_text())
    assert rep["verdict"]["passed"] is False and rep["hardware"]["steps"] == 0
    assert "verdict: FAILED" in (tmp_path / "r" / "compare.md").read_text()


def test_allow_disagreement_makes_it_a_warning(discrete_design, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(host_cli, "local_accelerator", _hanging)
    code = main(["compare", "--design", str(discrete_design), "--episodes", "2", "--out", str(tmp_path / "r"),
                 "--allow-disagreement"])
    line = _last_line(capsys.readouterr().out)
    assert code == 0 and line.startswith("verdict: WARNING") and "accelerator timeout" in line


def test_a_reference_that_disagrees_fails_the_verdict(discrete_design, tmp_path, capsys):
    """The verdict is taken against ``verdict_reference``: a policy playing the other action disagrees on every step."""
    args = host_cli.build_parser().parse_args(["compare", "--design", str(discrete_design), "--episodes", "2",
                                               "--out", str(tmp_path / "r")])

    def references(design, spec):
        emulated = host_cli.independent_reference(spec, SoftwareReferences())[1]
        return SoftwareReferences(extra={"wrong student": lambda obs: 1 - emulated(obs)},
                                  verdict_reference="wrong student", notes=[])

    rep = host_cli.compare(args, references)
    assert host_cli.compare_exit_code(rep) == 1
    line = _last_line(capsys.readouterr().out)
    steps = rep["hardware"]["steps"]
    assert line == (f"verdict: FAILED: the hardware's actions differ from the wrong student's on {steps} of {steps} "
                    "steps (agreement 0.00 %)")


def test_a_correct_comparison_passes(discrete_design, tmp_path, capsys):
    code = main(["compare", "--design", str(discrete_design), "--episodes", "2", "--out", str(tmp_path / "r")])
    line = _last_line(capsys.readouterr().out)
    assert code == 0 and line.startswith("verdict: PASSED: the hardware's actions are the integer reference (numpy)'s")


def test_continuous_agreement_is_within_one_output_step_per_action():
    from host.loop.episodes import actions_agree

    a = np.array([[0.0, 0.0], [0.0, 0.0]])
    b = np.array([[0.05, 0.5], [0.2, 0.5]])
    assert actions_agree(a, b, np.array([0.1, 1.0]) * 1.001).tolist() == [True, False]


def test_the_report_folder_is_replaced_as_one_unit(discrete_design, tmp_path, capsys):
    out = tmp_path / "r"
    out.mkdir()
    (out / "compare.json").write_text("{\"old\": true}")
    (out / "notes.txt").write_text("mine")
    assert main(["compare", "--design", str(discrete_design), "--episodes", "1", "--out", str(out)]) == 0
    rep = json.loads((out / "compare.json").read_text())
    assert "old" not in rep and (out / "notes.txt").read_text() == "mine"
    assert [p.name for p in tmp_path.iterdir()] == ["r"]  # no staging folder left behind


def test_ctrl_c_says_interrupted(capsys):
    from host.errors import EXIT_INTERRUPTED, run_command

    def body():
        raise KeyboardInterrupt

    assert run_command(body) == EXIT_INTERRUPTED
    assert capsys.readouterr().err.strip() == "interrupted"
