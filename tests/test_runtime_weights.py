"""Writable designs against parts no one here wrote: FINN's own driver step and finn-plus-driver.

``make estimate WEIGHTS=runtime`` builds a design whose every weight and threshold memory is
written over AXI-lite. Here: the ``.dat`` files FINN's ``MakePYNQDriver`` writes for a student
(on the graph FINN's Zynq build partitions) equal ours byte for byte, at two foldings;
finn-plus-driver's ``load_runtime_weights`` writing a student into the emulated board gives the
actions our loader gives; ``make load-policy`` refuses, in one sentence, a student of another
architecture.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import FAST_DISTILL


def _writable(run_dir: Path, design: str, root: Path, monkeypatch, target_fps: int | None = None):
    from hw_build.compile import BuildChoice, estimate_design
    from hw_build.export import export_design

    monkeypatch.setenv("QPD_BITSTREAMS", str(root))
    export_design(run_dir, design, n_states=100)
    estimate_design(design, choice=BuildChoice(weights="runtime", target_fps=target_fps), quiet=True)
    return root / design


def _finn_dat_files(design: Path) -> dict[str, str]:
    """FINN's driver step (MakePYNQDriver) on the design's graph as FINN's Zynq build partitions it."""
    import tempfile

    from finn.transformation.fpgadataflow.make_driver import MakePYNQDriver
    from qonnx.core.modelwrapper import ModelWrapper

    from hw_build.accel_spec import FINAL_MODEL
    from hw_build.compile import BOARD, PART
    from hw_build.runtime_weights import zynq_partitions

    model = ModelWrapper(str(design / "intermediate_models" / FINAL_MODEL))
    with tempfile.TemporaryDirectory() as tmp:
        parent = zynq_partitions(model, PART, BOARD, tmp)
        parent = parent.transform(MakePYNQDriver("zynq-iodma", "FINNDMAOverlay", clk_period_ns=10.0, board=BOARD))
        folder = Path(parent.get_metadata_prop("pynq_driver_dir")) / "runtime_weights"
        return {p.name: p.read_text() for p in folder.iterdir()}


@pytest.mark.parametrize("target_fps", [1_000_000, 20_000_000])
def test_our_dat_files_are_finns_byte_for_byte(short_qpd_student, tmp_path, monkeypatch, target_fps):
    from host.design.policy_memory import dat_text, layer_words
    from host.design.spec import load_spec

    design = _writable(short_qpd_student[0], "rt", tmp_path, monkeypatch, target_fps)
    spec = load_spec(design)
    layers = {layer["name"]: layer for layer in spec.data["layers"]}
    memories = spec.data["runtime_weights"]["memories"]
    finn = _finn_dat_files(design)
    assert sorted(finn) == sorted(m["dat_file"] for m in memories)
    for memory in memories:
        assert dat_text(layer_words(layers[memory["layer"]], spec.arrays)) == finn[memory["dat_file"]], memory["dat_file"]
    if target_fps > 1_000_000:  # the faster folding has several PEs: the interleaving is exercised
        assert max(layer["pe"] for layer in spec.data["layers"]) > 1
    est = json.loads((design / "estimate.json").read_text())
    cost = est["writability_cost"]
    assert est["weights"] == "runtime" and cost["writable"]["LUT"] > 0 and cost["fixed"]["LUT"] > 0


@pytest.fixture(scope="module")
def narrower_student(cartpole_teacher, tmp_path_factory) -> Path:
    """A 2x8 w2a2 student distilled briefly from the same teacher: another architecture."""
    from training.qpd.config import load_qpd_config
    from training.qpd.distill import distill

    cfg = load_qpd_config(env_id="CartPole-v1", hidden=[8, 8], schedule=[2], updates=300, eval_episodes=2,
                          **FAST_DISTILL)
    run = tmp_path_factory.mktemp("runs") / "CartPole-v1" / "narrower"
    distill(cfg, cartpole_teacher, run, quiet=True)
    return run


def test_finn_plus_drivers_loader_gives_our_loaders_actions(short_qpd_student, narrow_qpd_student, tmp_path,
                                                            monkeypatch):
    """The second student (narrow-range weights, still INT2) has the design's architecture signature."""
    from finn_plus_driver import get_driver_class

    from host.backends.driver import FinnZynqDriver
    from host.backends.emulated_board import EmulatedBackend
    from host.backends.emulated_pynq import emulated_pynq
    from host.design.finn_settings import write_finn_settings
    from host.design.policy_package import load_package, write_policy
    from host.design.spec import load_spec
    from hw_build.load_policy import prepare_policy

    design = _writable(short_qpd_student[0], "rt", tmp_path, monkeypatch, 1_000_000)
    monkeypatch.chdir(tmp_path)
    package_dir = prepare_policy("rt", run=str(narrow_qpd_student[0]), quiet=True)
    spec = load_spec(design)
    package = load_package(package_dir, spec)
    states = np.random.default_rng(0).uniform(-2.0, 2.0, size=(300, 4)).astype(np.float32)

    ours_board = EmulatedBackend(spec)
    ours = FinnZynqDriver(package.spec, ours_board, max_batch=300)
    write_policy(ours_board, ours, package)
    mine = ours.execute(states)
    unloaded = FinnZynqDriver(spec, EmulatedBackend(spec), max_batch=300).execute(states)
    assert not np.array_equal(mine, unloaded)  # the other student acts otherwise on some states

    settings = write_finn_settings(spec, tmp_path / "finn_settings.json")
    info = json.loads(settings.read_text())["driver_information"]
    assert info["runtime_weights"] is True
    board = EmulatedBackend(spec)
    with emulated_pynq(board):
        cls = get_driver_class(info["driver_type"])
        overlay = cls(str(design / "design.bit"), batch_size=1, runtime_weight_dir=str(package_dir / "runtime_weights"),
                      **{k: v for k, v in info.items() if k != "driver_type"})
        overlay.load_runtime_weights(flush_accel=True, verify=True)
        codes = package.spec.preprocess(states)
        theirs = np.concatenate([overlay.execute(codes[i:i + 1].reshape(overlay.ishape_normal()))
                                 for i in range(len(codes))]).reshape(len(codes), -1)
    np.testing.assert_array_equal(theirs, mine)

    # make compare DESIGN=rt POLICY=<name>: written, read back, flushed, then every step the Brevitas student's
    from flow.api import compare_args
    from flow.cli import build_parser

    args = build_parser().parse_args(["compare", "--design", "rt", "--episodes", "2", "--policy", package_dir.name,
                                      "--out", str(tmp_path / "cmp")])
    report = compare_args(args).report
    assert report["verdict"]["passed"] and report["verdict"]["reference"] == "Brevitas student"
    assert report["policy"]["policy_sha256"] == package.sha256 and report["policy"]["flushed"]


def test_signatures_differing_anywhere_are_named_by_their_first_difference():
    from host.design.spec import load_spec
    from hw_build.runtime_weights import architecture_signature, first_mismatch

    spec = load_spec(Path(__file__).resolve().parent / "host" / "data" / "writable" / "design")
    design = architecture_signature(spec.data)
    assert design == spec.data["runtime_weights"]["signature"] and first_mismatch(design, design) is None
    other = json.loads(json.dumps(design))
    other["layers"][2]["weight_dtype"] = "INT3"
    assert first_mismatch(design, other) == "layer 2 (MVAU): weight_dtype is 'INT3', the design's is 'INT2'"
    other = json.loads(json.dumps(design))
    other["input_quantizer"]["max_int"] = 63
    assert first_mismatch(design, other) == "input_quantizer.max_int is 63, the design's is 127"
    other = json.loads(json.dumps(design))
    other["layers"] = other["layers"][:4]
    assert first_mismatch(design, other).startswith("the student compiles to 4 layers")


@pytest.mark.slow
def test_a_student_of_another_architecture_is_refused_in_one_sentence(short_qpd_student, narrower_student, tmp_path,
                                                                       monkeypatch):
    from tests.conftest import run_cli

    _writable(short_qpd_student[0], "rt", tmp_path, monkeypatch, 1_000_000)
    done = run_cli("flow", "load-policy", "--design", "rt", "--run", str(narrower_student), cwd=tmp_path,
                   env={"QPD_BITSTREAMS": str(tmp_path), "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    assert done.returncode == 2, done.stdout + done.stderr
    line = done.stderr.strip().splitlines()[-1]
    assert "does not fit writable design rt" in line and "layer 0 (MVAU): mh is 8, the design's is 16" in line, line
    assert "Traceback" not in done.stderr


@pytest.mark.slow
def test_threshold_memory_written_over_axi_lite_in_verilator_gives_the_loaded_students_thresholds(
        short_qpd_student, narrow_qpd_student, tmp_path, monkeypatch):
    """FINN's Thresholding_rtl with USE_AXILITE in Verilator: the other student's words written over its
    AXI-lite port make it threshold as that student (FINN's MultiThreshold semantics on its thresholds);
    without the writes it keeps the bitstream's."""
    from hw_build.compile import BuildChoice, estimate_design
    from hw_build.export import export_design
    from hw_build.load_policy import prepare_policy
    from hw_build.runtime_weights import simulate_threshold_writes
    from host.design.policy_package import load_package
    from host.design.spec import load_spec

    monkeypatch.setenv("QPD_BITSTREAMS", str(tmp_path))
    export_design(short_qpd_student[0], "rt", n_states=100)
    estimate_design("rt", choice=BuildChoice(weights="runtime", target_fps=1_000_000), kind="codegen", quiet=True)
    monkeypatch.chdir(tmp_path)
    spec = load_spec(tmp_path / "rt")
    package = load_package(prepare_policy("rt", run=str(narrow_qpd_student[0]), quiet=True), spec)
    layer = next(layer for layer in spec.data["layers"] if layer["op"] == "Thresholding")
    new, old = package.spec.arrays[layer["thresholds"]], spec.arrays[layer["thresholds"]]
    assert not np.array_equal(new, old)
    x = np.random.default_rng(0).integers(int(min(new.min(), old.min())) - 5, int(max(new.max(), old.max())) + 5,
                                          size=(100, layer["channels"])).astype(np.float32)

    def thresholded(t):
        return (x[..., None] >= t[None]).sum(-1) + layer["act_val"]

    written = simulate_threshold_writes(tmp_path / "rt", layer["name"], package.words[layer["name"]], x, tmp_path / "sim")
    np.testing.assert_array_equal(written.reshape(x.shape), thresholded(new))
    kept = simulate_threshold_writes(tmp_path / "rt", layer["name"], None, x, tmp_path / "sim")
    np.testing.assert_array_equal(kept.reshape(x.shape), thresholded(old))
