"""The board's set-up and pre-flight checks: one sentence for each missing piece."""

from __future__ import annotations

import os
import shutil
from types import SimpleNamespace

import pytest

from host import board
from host.errors import HostError, run_command


def test_a_missing_optional_module_is_a_sentence_and_exit_2(capsys):
    def needs(name):
        def body():
            raise ModuleNotFoundError(f"No module named '{name}'", name=name)
        return body

    assert run_command(needs("gymnasium")) == 2
    err = capsys.readouterr().err
    assert "'gymnasium' is not installed" in err and "make board-setup" in err and "Traceback" not in err
    assert run_command(needs("pynq.overlay")) == 2 and "--backend emulated" in capsys.readouterr().err
    with pytest.raises(ModuleNotFoundError):  # a module of ours missing is a bug, not a set-up step
        run_command(needs("host.nonexistent"))


@pytest.mark.parametrize("versions, expected", [
    ({"numpy": "2.1.0", "pynq": "3.1.2"}, "pynq 3.x needs numpy < 2"),
    ({"numpy": "1.26.4", "pynq": None}, "pynq is missing"),
    ({"numpy": "1.26.4", "pynq": "4.0.0"}, "pynq 4 drops the Z1/Z2"),
    ({"numpy": None, "pynq": "3.1.2"}, "numpy is missing"),
])
def test_the_image_check_names_what_is_wrong(monkeypatch, versions, expected):
    monkeypatch.setattr(board, "_version", versions.get)
    problems = board.image_problems()
    assert len(problems) == 1 and expected in problems[0]
    with pytest.raises(HostError, match="not the PYNQ image's"):
        board.board_setup(board.Path("wheels"))


def test_board_setup_needs_the_wheels_folder(monkeypatch, tmp_path):
    monkeypatch.setattr(board, "image_problems", lambda: [])
    with pytest.raises(HostError, match="make deploy .* brings the wheels folder"):
        board.board_setup(tmp_path / "wheels")


def test_preflight_before_the_fabric(monkeypatch, tmp_path, discrete_design):
    folder = tmp_path / "d"
    shutil.copytree(discrete_design, folder)
    spec = SimpleNamespace(folder=folder)
    monkeypatch.setattr(board, "_version", {"pynq": "3.1.2"}.get)
    with pytest.raises(HostError, match="has no finn-accel.bit"):
        board.preflight(spec)
    (folder / "finn-accel.bit").write_bytes(b"bit")
    with pytest.raises(HostError, match="has no finn-accel.hwh"):
        board.preflight(spec)
    (folder / "finn-accel.hwh").write_text("<hwh/>")
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(HostError, match="needs root"):
        board.preflight(spec)
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    board.preflight(spec)
    monkeypatch.setattr(board, "_version", {"pynq": "4.0.0"}.get)
    with pytest.raises(HostError, match="pynq 3.x"):
        board.preflight(spec)
    monkeypatch.setattr(board, "_version", {}.get)
    with pytest.raises(HostError, match="'pynq' is not installed"):
        board.preflight(spec)
