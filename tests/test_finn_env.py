"""The environment FINN's Vivado steps need: both tools announced, and the XSI library path its CLI computes."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import REPO

VIVADO, HLS = "/opt/Xilinx/Vivado/2024.2", "/opt/Xilinx/Vitis/2024.2"


def test_each_missing_tool_gets_its_sentence(tmp_path, monkeypatch):
    from hw_build.finn_env import missing_tools, vivado_available

    monkeypatch.delenv("XILINX_VIVADO", raising=False)
    monkeypatch.delenv("XILINX_HLS", raising=False)
    first, second = missing_tools()
    assert first.startswith("XILINX_VIVADO is unset: Vivado (2022.2 or 2024.2") and "settings64.sh" in first
    assert second.startswith("XILINX_HLS is unset: Vitis HLS") and not vivado_available()
    monkeypatch.setenv("XILINX_VIVADO", str(tmp_path))
    monkeypatch.setenv("XILINX_HLS", str(tmp_path / "absent"))
    assert missing_tools() == [f"XILINX_HLS is {tmp_path / 'absent'}, which is not a folder: point it at the Vitis HLS installation"]
    (tmp_path / "absent").mkdir()
    assert missing_tools() == [] and vivado_available()


def test_xsi_library_path_is_the_one_finn_cli_computes(monkeypatch):
    from finn.interface.run_finn import prepend_ld_library_paths, xilinx_ld_library_paths

    from hw_build.finn_env import xsi_environment

    monkeypatch.setenv("XILINX_VIVADO", VIVADO)
    monkeypatch.setenv("XILINX_HLS", HLS)
    monkeypatch.setenv("LD_LIBRARY_PATH", "/usr/local/lib")
    ours = xsi_environment()
    assert ours == {"LD_LIBRARY_PATH": f"/lib/x86_64-linux-gnu/:{VIVADO}/lib/lnx64.o:{HLS}/lnx64/tools/fpo_v7_1:/usr/local/lib"}
    assert prepend_ld_library_paths(xilinx_ld_library_paths())  # FINN's CLI, on this process's environment
    assert os.environ["LD_LIBRARY_PATH"] == ours["LD_LIBRARY_PATH"]
    assert xsi_environment() == {}  # nothing left to add
    monkeypatch.delenv("XILINX_VIVADO")
    monkeypatch.setenv("LD_LIBRARY_PATH", "")
    assert xsi_environment() == {}  # without Vivado FINN adds nothing


def test_restart_starts_the_module_again_with_the_library_path_once(tmp_path):
    (tmp_path / "show_env.py").write_text(
        "import os, sys\nfrom hw_build.finn_env import restart_with_xsi_path\n"
        "print(os.environ.get('LD_LIBRARY_PATH'), os.environ.get('_QPD_XSI_LD_LIBRARY_PATH_RESTARTED'), sys.argv[1:])\n"
        "restart_with_xsi_path(['show_env', *sys.argv[1:]])\n")
    env = {**os.environ, "XILINX_VIVADO": VIVADO, "XILINX_HLS": HLS, "LD_LIBRARY_PATH": "",
           "PYTHONPATH": os.pathsep.join([str(tmp_path), str(REPO)])}
    env.pop("_QPD_XSI_LD_LIBRARY_PATH_RESTARTED", None)
    proc = subprocess.run([sys.executable, "-m", "show_env", "--design", "x"], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    before, after = proc.stdout.splitlines()  # the first run, then the restarted one, which does not restart
    assert before == " None ['--design', 'x']"
    assert after == f"/lib/x86_64-linux-gnu/:{VIVADO}/lib/lnx64.o:{HLS}/lnx64/tools/fpo_v7_1 1 ['--design', 'x']"
