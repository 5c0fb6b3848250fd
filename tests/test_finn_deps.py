"""FINN's dependencies for the Vivado build: checked offline with FINN's pins, fetched with FINN's updater."""

from __future__ import annotations

import subprocess

import yaml

from tests.conftest import run_cli


def test_pins_are_finn_plus_own_and_nothing_is_installed_in_an_empty_folder(tmp_path, monkeypatch):
    from finn.interface.settings import FINNSettings

    from hw_build import finn_deps

    monkeypatch.setenv("FINN_DEPS", str(tmp_path / "deps"))
    state = finn_deps.status()
    shipped = yaml.safe_load(FINNSettings.init(flow_config=tmp_path / "x.yaml", auto_set_environment_vars=False)
                             .finn_deps_definitions.read_text())
    assert state.location == tmp_path / "deps" and state.missing == list(finn_deps.NEEDED)
    assert state.pins["finn-hlslib"] == shipped["git_deps"]["finn-hlslib"]["commit"]
    assert state.pins["pynq-z2"] == shipped["direct_download_deps"]["pynq-z2"]["url"]
    assert not (tmp_path / "deps").exists()  # checking creates nothing


def test_installed_dependencies_are_recognised_by_commit_and_unpacked_folder(tmp_path, monkeypatch):
    """A git dependency at the pinned commit and an unpacked download count as installed; a wrong commit does not."""
    from hw_build import finn_deps

    deps = tmp_path / "deps"
    repo = deps / "finn-hlslib"
    repo.mkdir(parents=True)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(repo)]
    subprocess.run([*git[:5], "init", "-q", str(repo)], check=True)
    (repo / "f.h").write_text("//")
    subprocess.run([*git, "add", "f.h"], check=True)
    subprocess.run([*git, "commit", "-qm", "x"], check=True)
    head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    (deps / "board_files" / "pynq-z2").mkdir(parents=True)
    definitions = {"git_deps": {"finn-hlslib": {"url": "https://example.org/hlslib.git", "commit": head,
                                                "pip_install": False, "install_editable": False},
                                "attention-hlslib": {"url": "https://example.org/a.git", "commit": "0" * 40,
                                                     "pip_install": False, "install_editable": False}},
                   "boardfile_deps": {},
                   "direct_download_deps": {"pynq-z2": {"url": "https://example.org/pynq-z2.zip", "do_unzip": True,
                                                        "target_directory": "board_files"},
                                            "nlohmann-json": {"url": "https://example.org/json.tar.xz", "do_unzip": True,
                                                              "target_directory": "nlohmann_json"}}}
    (tmp_path / "deps.yaml").write_text(yaml.safe_dump(definitions))
    monkeypatch.setenv("FINN_DEPS", str(deps))
    monkeypatch.setenv("FINN_DEPS_DEFINITIONS", str(tmp_path / "deps.yaml"))
    assert finn_deps.status().missing == ["attention-hlslib", "nlohmann-json"]


def test_make_finn_deps_without_network_refuses_in_one_sentence_with_exit_3(tmp_path):
    """Here nothing but the package registries is reachable: FINN's updater fails, and the command says so."""
    from hw_build import finn_deps

    pin = finn_deps.status().pins["finn-hlslib"]
    proc = run_cli("hw_build", "finn-deps", env={"FINN_DEPS": str(tmp_path / "deps")})
    assert proc.returncode == 3 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("error: make finn-deps could not fetch finn-hlslib")
    assert f"fetching finn-hlslib ({pin})" in proc.stdout  # the pin finn-plus ships
    check = run_cli("hw_build", "finn-deps", "--check", env={"FINN_DEPS": str(tmp_path / "deps")})
    assert check.returncode == 3 and "run make finn-deps" in check.stderr and "fetching" not in check.stdout
