"""A writable design's memories on the emulated board (``make load-policy``'s packages written over AXI-lite).

The committed data (``tests/host/make_writable_reference.py``): a writable CartPole design (2×32,
w2a2, every weight and threshold memory writable), a second student's policy package for it, real
states, and FINN's Python execution of each student's own hardware-layer graph on them. The
emulated fabric computes with what its memories hold, decoded from FINN's word layout, so these
tests fail where a word lands at a wrong address or in a wrong order.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from host.backends.driver import FinnZynqDriver
from host.backends.emulated_board import EmulatedBackend
from host.design.policy_memory import (dat_text, layer_array, layer_words, memory_words, mvau_weights, mvau_words,
                                       parse_dat, threshold_words, layer_thresholds)
from host.design.policy_package import load_package, write_policy
from host.design.spec import load_spec
from host.errors import HostError

DATA = Path(__file__).resolve().parent / "data" / "writable"


def _design():
    return load_spec(DATA / "design")


def _run(driver, states):
    return np.concatenate([driver.execute(states[i:i + 50]) for i in range(0, len(states), 50)])


def test_the_bitstream_student_runs_until_a_policy_is_written_then_the_new_one_exactly():
    spec = _design()
    states = np.load(DATA / "states.npy")
    package = load_package(DATA / "policy", spec)
    board = EmulatedBackend(spec)
    own = FinnZynqDriver(spec, board, max_batch=50)
    np.testing.assert_array_equal(_run(own, states), np.load(DATA / "design_finn_outputs.npy"))
    driver = FinnZynqDriver(package.spec, board, max_batch=50)
    record = write_policy(board, driver, package)
    assert record["policy_sha256"] == package.sha256 and record["flushed"]
    np.testing.assert_array_equal(_run(driver, states), np.load(DATA / "policy_finn_outputs.npy"))
    own.recover()  # reprogramming the fabric (a recovery): the bitstream's student again
    np.testing.assert_array_equal(_run(own, states), np.load(DATA / "design_finn_outputs.npy"))


def test_without_the_flush_the_first_run_still_has_the_old_weights():
    spec = _design()
    states = np.load(DATA / "states.npy")
    package = load_package(DATA / "policy", spec)
    board = EmulatedBackend(spec)
    driver = FinnZynqDriver(package.spec, board, max_batch=300)
    for memory in package.data["memories"]:
        board.ip(memory["ip"]).mmio.write_mm(0, package.words[memory["layer"]].tobytes())
    stale = driver.execute(states)
    fresh = driver.execute(states)
    np.testing.assert_array_equal(fresh.reshape(-1), np.load(DATA / "policy_finn_outputs.npy").reshape(-1))
    assert not np.array_equal(stale, fresh)


@pytest.mark.parametrize("fault", ["word order", "address"])
def test_a_wrong_word_order_or_address_gives_wrong_actions(fault):
    spec = _design()
    states = np.load(DATA / "states.npy")
    package = load_package(DATA / "policy", spec)
    board = EmulatedBackend(spec)
    driver = FinnZynqDriver(package.spec, board, max_batch=300)
    memories = package.data["memories"]
    for i, memory in enumerate(memories):
        words = package.words[memory["layer"]].copy()
        if fault == "word order":
            words = words[::-1].copy()
        ip = board.ip(memories[(i + 1) % len(memories)]["ip"] if fault == "address" and i < 2 else memory["ip"])
        n = min(len(words), len(ip.words))
        ip.mmio.array[0:n] = words[:n]
    driver.execute(states[:1])
    assert not np.array_equal(driver.execute(states).reshape(-1), np.load(DATA / "policy_finn_outputs.npy").reshape(-1))


def test_layouts_read_back_to_the_arrays_for_many_foldings():
    rng = np.random.default_rng(0)
    for pe, simd, bits in [(1, 4, 2), (2, 2, 2), (4, 8, 3), (8, 1, 4), (16, 32, 2), (32, 32, 8)]:
        layer = {"name": "m", "op": "MVAU", "mw": 32, "mh": 32, "pe": pe, "simd": simd, "weight_dtype": f"INT{bits}"}
        w = rng.integers(-(1 << (bits - 1)), 1 << (bits - 1), size=(32, 32))
        words = mvau_words(w, layer)
        assert len(words) == memory_words(layer)
        np.testing.assert_array_equal(mvau_weights(words, layer), w)
        np.testing.assert_array_equal(parse_dat(dat_text(words)), words)
    for pe, steps in [(1, 3), (2, 3), (3, 7), (4, 1), (8, 15)]:
        layer = {"name": "t", "op": "Thresholding", "channels": 24, "pe": pe, "steps": steps,
                 "threshold_dtype": "INT13", "output_dtype": "UINT4"}
        t = np.sort(rng.integers(-4096, 4095, size=(24, steps)), axis=1)
        words = threshold_words(t, layer)
        assert len(words) == memory_words(layer)
        np.testing.assert_array_equal(layer_thresholds(words, layer), t)


def test_a_damaged_or_foreign_package_is_refused_in_one_sentence(tmp_path):
    spec = _design()
    bad = tmp_path / "policy"
    shutil.copytree(DATA / "policy", bad)
    dat = sorted((bad / "runtime_weights").iterdir())[0]
    dat.write_text(dat.read_text().replace("0", "1", 1))
    with pytest.raises(HostError, match="does not match"):
        load_package(bad, spec)
    shutil.rmtree(bad)
    shutil.copytree(DATA / "policy", bad)
    data = json.loads((bad / "policy.json").read_text())
    data["signature_sha256"] = "0" * 64
    (bad / "policy.json").write_text(json.dumps(data))
    with pytest.raises(HostError, match="another architecture"):
        load_package(bad, spec)
    fixed = load_spec(Path(__file__).resolve().parent / "data" / "discrete")
    with pytest.raises(HostError, match="not writable"):
        load_package(DATA / "policy", fixed)


def test_the_design_words_hash_to_the_policy_accel_json_names():
    spec = _design()
    from host.design.policy_memory import words_sha256

    layers = {layer["name"]: layer for layer in spec.data["layers"]}
    memories = spec.data["runtime_weights"]["memories"]
    words = [(m["layer"], layer_words(layers[m["layer"]], spec.arrays)) for m in memories]
    assert words_sha256(words) == spec.data["runtime_weights"]["policy_sha256"]
    for (name, w) in words:
        key = layers[name].get("weights") or layers[name]["thresholds"]
        np.testing.assert_array_equal(layer_array(layers[name], w), spec.arrays[key])
