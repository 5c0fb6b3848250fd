"""The Verilator harness's own parts: the one change FINN's RTL needs, and a missing simulator."""

from __future__ import annotations

import pytest

from hw_build.rtlsim import ADD_MULTI_BLOCK, patch_add_multi, rtllib
from training.errors import FlowError


def test_add_multi_patch_applies_to_finns_file_and_moves_the_function_to_module_level():
    original = (rtllib() / "mvu" / "add_multi.sv").read_text()  # fails the day FINN's file changes
    patched = patch_add_multi(original)
    assert ADD_MULTI_BLOCK not in patched
    function_at = patched.index("function leaf_load_t init_leaf_loads();")
    assert function_at < patched.index("begin : genTree") < patched.index("localparam leaf_load_t   LEAF_LOAD")
    # Nothing else changes: the same lines, one block moved.
    assert sorted(line.strip() for line in patched.splitlines()) == sorted(line.strip() for line in original.splitlines())


def test_a_changed_add_multi_is_refused_in_one_sentence():
    with pytest.raises(FlowError, match="is not the file hw_build.rtlsim.patch_add_multi knows"):
        patch_add_multi("module add_multi; endmodule\n")


def test_missing_verilator_is_one_sentence(monkeypatch):
    import builtins

    from hw_build import rtlsim

    real_import = builtins.__import__

    def no_verilator(name, *args, **kwargs):
        if name == "verilator":
            raise ImportError("no verilator")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_verilator)
    with pytest.raises(FlowError, match="Verilator is not installed: run make install"):
        rtlsim.verilator()
