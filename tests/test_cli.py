"""The command line: bad input gets one sentence and exit code 2, never a traceback."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.conftest import run_cli


def _assert_user_error(proc, *fragments: str) -> None:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def test_unknown_environment_lists_the_supported_ones():
    proc = run_cli("training", "teacher", "--env", "NoSuchEnv-v0")
    _assert_user_error(proc, "NoSuchEnv-v0", "CartPole-v1", "Pendulum-v1", "LunarLander-v3")


def test_missing_run_folder(tmp_path: Path):
    _assert_user_error(run_cli("training", "eval", str(tmp_path / "nothing")), "does not exist")


def test_folder_that_is_not_a_run(tmp_path: Path):
    _assert_user_error(run_cli("training", "eval", str(tmp_path)), "not a run folder")


def test_missing_checkpoint(tiny_teacher: Path, tmp_path: Path):
    copy = tmp_path / "copy"
    shutil.copytree(tiny_teacher, copy)
    (copy / "teacher.zip").unlink()
    _assert_user_error(run_cli("training", "eval", str(copy)), "no teacher.zip")


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_corrupt_checkpoint(tiny_teacher: Path, tmp_path: Path, damage: str):
    copy = tmp_path / "copy"
    shutil.copytree(tiny_teacher, copy)
    ckpt = copy / "teacher.zip"
    data = ckpt.read_bytes()
    ckpt.write_bytes(b"not a zip at all" if damage == "garbage" else data[: len(data) // 2])
    _assert_user_error(run_cli("training", "eval", str(copy)), "corrupt")


def test_run_folder_of_another_environment(tiny_teacher: Path):
    _assert_user_error(run_cli("training", "eval", str(tiny_teacher), "--env", "Acrobot-v1"), "CartPole-v1", "Acrobot-v1")


def test_checkpoint_of_another_environment(tiny_teacher: Path, tmp_path: Path):
    copy = tmp_path / "copy"
    shutil.copytree(tiny_teacher, copy)
    config = (copy / "config.yaml").read_text().replace("env_id: CartPole-v1", "env_id: Acrobot-v1")
    (copy / "config.yaml").write_text(config)
    _assert_user_error(run_cli("training", "eval", str(copy)), "do not match Acrobot-v1")


def test_config_of_another_format_version(tiny_teacher: Path, tmp_path: Path):
    copy = tmp_path / "copy"
    shutil.copytree(tiny_teacher, copy)
    (copy / "config.yaml").write_text((copy / "config.yaml").read_text().replace("format_version: 1", "format_version: 99"))
    _assert_user_error(run_cli("training", "eval", str(copy)), "format_version 99")


def test_eval_reproduces_the_stored_results(tiny_teacher: Path):
    proc = run_cli("training", "eval", str(tiny_teacher), "--episodes", "3")
    assert proc.returncode == 0, proc.stderr
    assert "reproduces" in proc.stdout and "yes, every episode" in proc.stdout


def test_help_lists_the_verbs():
    proc = run_cli("training", "--help")
    assert proc.returncode == 0
    for verb in ("teacher", "eval", "distill", "envs"):
        assert verb in proc.stdout
    proc = run_cli("flow", "--help")
    assert proc.returncode == 0
    for verb in ("demo", "table", "frontier", "ablation"):
        assert verb in proc.stdout


@pytest.mark.parametrize("verb", ["table", "frontier"])
def test_grid_config_missing_or_owning_grid_settings(tmp_path: Path, verb: str):
    _assert_user_error(run_cli("flow", verb, "--config", str(tmp_path / "nope.yaml")), "does not exist")
    owning = tmp_path / "owning.yaml"
    owning.write_text("seed: 3\n")
    _assert_user_error(run_cli("flow", verb, "--config", str(owning)), "grid sets per trial")


@pytest.mark.parametrize("args, fragment", [
    (("--env", "MinAtar/SpaceInvaders-v1", "--depth", "0", "--widths", "8"), "--widths has no meaning with --depth 0"),
    (("--env", "MinAtar/SpaceInvaders-v1", "--depth", "-1"), "--depth must be 0 or more"),
])
def test_a_frontier_without_dense_layers_takes_no_widths(args, fragment):
    _assert_user_error(run_cli("flow", "frontier", *args), fragment)


def test_no_dense_layer_needs_a_convolution(tmp_path: Path):
    proc = run_cli("training", "distill", "--env", "CartPole-v1", "--depth", "0", "--run-dir", str(tmp_path / "r"))
    _assert_user_error(proc, "none only after convolutions")
