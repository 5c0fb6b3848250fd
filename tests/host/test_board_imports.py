"""host/ must import on the board, where torch, brevitas, onnx, qonnx and finn do not exist."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FORBIDDEN = ("torch", "brevitas", "qonnx", "onnx", "onnxruntime", "finn", "stable_baselines3", "bitstring")

# Runs in a fresh interpreter: a meta-path finder refuses the forbidden packages before any
# other finder can look for them, then every module under host/ is imported.
IMPORT_ALL_OF_HOST = """
import importlib, importlib.abc, pkgutil, sys

FORBIDDEN = set({forbidden!r})

class RefuseForbidden(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in FORBIDDEN:
            raise ImportError(f"host/ must not import {{name}} (it does not install on the board)")
        return None

already = sorted(m for m in sys.modules if m.partition(".")[0] in FORBIDDEN)
assert not already, f"imported before the check started: {{already}}"
sys.meta_path.insert(0, RefuseForbidden())
try:
    import qonnx
except ImportError:
    pass
else:
    raise AssertionError("the import hook is not active")

import host
names = ["host"] + [info.name for info in pkgutil.walk_packages(host.__path__, "host.")
                    if not info.name.endswith("__main__")]  # importing __main__ would run the CLI
for name in names:
    importlib.import_module(name)
print(" ".join(names))
"""


def test_every_host_module_imports_without_the_workstation_stack():
    script = IMPORT_ALL_OF_HOST.format(forbidden=FORBIDDEN)
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    imported = result.stdout.split()
    assert {"host", "host.datapath.packing", "host.backends.driver", "host.backends.emulator", "host.loop.episodes", "host.cli"} <= set(imported)
