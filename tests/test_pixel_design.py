"""Pixel policies end to end: a MinAtar CNN teacher, a convolutional QPD student, FINN's sliding
window + MVAU lowering, verification on real frames, the emulated board, and bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.conftest import exported_design
from training.errors import FlowError

ENV = "MinAtar/Breakout-v1"
DESIGN = "tiny-breakout"


@pytest.fixture(scope="module")
def minatar_teacher(tmp_path_factory):
    from training.teacher.train import train_teacher

    run_dir = tmp_path_factory.mktemp("runs") / "MinAtar" / "Breakout-v1" / "teacher"
    train_teacher(ENV, 0, run_dir=run_dir, steps=4096, eval_episodes=2)
    return run_dir


@pytest.fixture(scope="module")
def conv_student(minatar_teacher, tmp_path_factory):
    from training.qpd.config import load_qpd_config
    from training.qpd.distill import distill

    cfg = load_qpd_config(env_id=ENV, schedule=[4, 2], updates=500, final_stage_share=0.6, teacher_states=3000,
                          dagger_interval=250, dagger_steps=500, student_memory=3000, eval_episodes=3,
                          stage_eval_episodes=1, agreement_states=500)
    run_dir = tmp_path_factory.mktemp("runs") / "MinAtar" / "Breakout-v1" / "qpd"
    return run_dir, distill(cfg, minatar_teacher, run_dir, quiet=True)


@pytest.fixture(scope="module")
def pixel_design(conv_student, tmp_path_factory):
    with exported_design(conv_student[0], DESIGN, tmp_path_factory.mktemp("bitstreams")) as design:
        yield design


def test_the_default_pixel_student_is_a_convolution_on_the_binary_frame(conv_student):
    from training.qpd.distill import STUDENT_FILE, load_student

    run_dir, results = conv_student
    student, _ = load_student(run_dir / STUDENT_FILE)
    spec = student.spec
    assert spec.conv == (8,) and spec.hidden == (16,) and spec.binary_input and spec.obs_shape == (10, 10, 4)
    assert results["student"] == "c8-1x16-w2a2" and run_dir.name == "qpd"
    # 3x3x4x8 conv + 8*8*8 -> 16 + 16 -> 3, weights at 2 bits; biases at 32
    assert results["size"]["student"]["n_weights"] == 288 + 512 * 16 + 16 * 3
    assert results["size"]["ratio"] < 0.005
    frames = (np.random.default_rng(0).random((6, 10, 10, 4)) < 0.2)
    flat = frames.reshape(6, -1).astype(np.float32)
    assert np.array_equal(student.act(frames.astype(np.float32)), student.act(flat))
    assert student.input_quantizer()["binary"]


def test_export_estimate_and_accel_json_of_a_pixel_design(pixel_design):
    folder, export, est = pixel_design
    assert export["parity"]["action_agreement"] == 1.0
    accel = json.loads((folder / "accel.json").read_text())
    ops = [layer["op"] for layer in accel["layers"]]
    assert ops == ["ConvolutionInputGenerator", "MVAU", "MVAU", "MVAU", "LabelSelect"]  # nothing outside the fabric
    swg = accel["layers"][0]
    assert swg["ifm_dim"] == [10, 10] and swg["ofm_dim"] == [8, 8] and swg["kernel"] == [3, 3] and swg["channels"] == 4
    # UINT2, not BINARY: FINN's HLS MVAU refuses a true-binary input at code generation.
    assert accel["input"]["finn_datatype"] == "UINT2" and accel["input"]["normal_shape"] == [1, 10, 10, 4]
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.custom_op.registry import getCustomOp

    from hw_build.finn_env import prepare_finn

    prepare_finn()
    special = ModelWrapper(str(folder / "intermediate_models" / "step_specialize_layers.onnx"))
    mvaus = [n for n in special.graph.node if n.op_type == "MVAU_hls"]
    assert len(mvaus) == 3
    for node in mvaus:  # what HLS code generation asks of every MVAU first
        getCustomOp(node).get_template_param_values()
    assert accel["input"]["transform"]["kind"] == "binary" and accel["deployed"]["host_bits"] == 0
    assert est.fits_comfortably
    summary = json.loads((folder / "estimate.json").read_text())
    assert summary["latency_budget_us"] == 10.0 and est.latency_ns <= 10_000


def test_verify_is_exact_at_every_level_on_real_frames(pixel_design):
    from hw_build.verify import verify_design

    record = verify_design(DESIGN, n_states=400)
    assert record["passed"] and [lv["level"] for lv in record["levels"] if lv["level"] != "4"] == ["0", "1", "2", "3a", "3b"]


def test_codegen_and_the_sliding_window_rtl_simulated_on_real_frames(pixel_design):
    """make codegen reaches every layer's sources (the frame is UINT2: FINN's HLS MVAU generates no
    true-binary input), and ladder level 4 simulates the RTL sliding window with Verilator."""
    from hw_build.compile import estimate_design
    from hw_build.verify import verify_design

    folder, _, _ = pixel_design
    estimate_design(DESIGN, kind="codegen", quiet=True)
    assert {p.name for p in (folder / "hw_sources").iterdir()} >= {"ConvolutionInputGenerator_rtl_0", "MVAU_hls_0"}
    record = verify_design(DESIGN, n_states=200)
    (swg,) = [lv for lv in record["levels"] if lv["level"] == "4"]
    assert record["passed"] and "ConvolutionInputGenerator_rtl_0" in swg["name"] and swg["agreement"] == 1.0
    assert abs(swg["sim_cycles_per_frame"] - swg["finn_estimated_cycles"]) <= 2  # one frame of 100 pixels, a window each
    assert any("MVAU_hls_0" in note and "Vitis HLS" in note for note in record["notes"])


def test_the_emulator_streams_convolutions_as_finn_executes_them(pixel_design):
    """Bit for bit against FINN's Python execution of the hardware layers, on real frames."""
    from hw_build.execution import execute_batch
    from hw_build.export import episode_states
    from training.qpd.distill import StudentPolicy, load_student

    from host.backends.emulator import EmulatedAccelerator
    from host.design.spec import load_spec

    folder, export, _ = pixel_design
    student, _ = load_student(__import__("pathlib").Path(export["run"]) / "student.pt")
    frames = episode_states(ENV, StudentPolicy(student), 200)
    spec = load_spec(folder)
    emulated = EmulatedAccelerator(spec)(spec.preprocess(frames))
    finn = execute_batch(folder / "intermediate_models" / "step_convert_to_hw.onnx", frames)
    assert np.array_equal(emulated, finn.astype(np.int64))
    assert np.array_equal(emulated[:, 0], student.act(frames))


def test_the_emulated_comparison_plays_the_student_step_for_step(pixel_design):
    import argparse

    from flow.compare import workstation_references
    from host.cli import compare

    folder, _, _ = pixel_design
    rep = compare(argparse.Namespace(design=str(folder), backend="emulated", episodes=3, num_envs=2, seed_start=1000,
                                     env=None, timeout=1.0, out=None, board=None), workstation_references)
    for name in ("Brevitas student", "FINN hardware-layer graph (fed the binary frames)"):
        assert rep["software"][name]["step_agreement"] == 1.0 and rep["software"][name]["identical_returns"] == 3
    assert rep["verdict"]["passed"]
    assert "float teacher (numpy)" in rep["software"]


def test_bad_frames_are_refused_before_the_fabric(pixel_design):
    from host.cli import local_accelerator
    from host.errors import HostError
    from host.design.spec import check_env_fits, load_spec

    folder, _, _ = pixel_design
    spec = load_spec(folder)
    _, driver = local_accelerator(spec, "emulated", 1, 1.0)
    frame = np.zeros((10, 10, 4), dtype=bool)
    assert driver(frame).shape == (1,)
    with pytest.raises(HostError, match="frame of shape \\(4, 10, 10\\)"):
        driver(np.zeros((4, 10, 10), dtype=bool))
    with pytest.raises(HostError, match="frame of shape \\(10, 10, 6\\)"):
        driver(np.zeros((10, 10, 6), dtype=bool))
    half = frame.astype(np.float32)
    half[3, 3, 1] = 0.5
    with pytest.raises(HostError, match="other than 0 or 1"):
        driver(half)
    half[3, 3, 1] = np.nan
    with pytest.raises(HostError, match="other than 0 or 1"):
        driver(half)
    import gymnasium as gym

    cart = gym.make("CartPole-v1")
    with pytest.raises(HostError, match="shape \\(4,\\), flat observations.*takes frames .* of shape \\(10, 10, 4\\)"):
        check_env_fits(spec, cart.observation_space, cart.action_space)


def test_a_pixel_student_needs_frames_and_frames_need_one(minatar_teacher, tiny_teacher, tmp_path):
    from training.qpd.config import load_qpd_config
    from training.qpd.distill import distill

    with pytest.raises(FlowError, match="needs frames"):
        distill(load_qpd_config(env_id="CartPole-v1", conv=[8]), tiny_teacher, tmp_path / "a", quiet=True)
    with pytest.raises(FlowError, match="needs convolutions"):
        distill(load_qpd_config(env_id=ENV, conv=[]), minatar_teacher, tmp_path / "b", quiet=True)


def test_conv_student_specs_are_checked_in_one_sentence():
    from training.students.student import StudentSpec

    with pytest.raises(FlowError, match="do not fit"):
        StudentSpec(400, 3, True, (16,), 2, 2, obs_shape=(10, 10, 4), conv=(8,), kernel=11, binary_input=True)
    with pytest.raises(FlowError, match="needs frames"):
        StudentSpec(4, 2, True, (16,), 2, 2, conv=(8,), binary_input=True)
    spec = StudentSpec(400, 3, True, (16,), 2, 2, obs_shape=(10, 10, 4), conv=(8, 8), stride=2, binary_input=True)
    assert spec.conv_output_hw() == (1, 1) and spec.label() == "c8-8s2-1x16-w2a2"


def test_the_numpy_teacher_runs_the_cnn_teacher_for_the_board(pixel_design, minatar_teacher):
    from host.loop.teacher_numpy import NumpyTeacher
    from training.teacher.policy import TeacherPolicy

    folder, _, _ = pixel_design
    frames = np.random.default_rng(1).random((300, 10, 10, 4)) < 0.15
    teacher = TeacherPolicy.load(minatar_teacher, ENV)
    assert np.array_equal(NumpyTeacher(folder / "teacher.npz")(frames), teacher.act(frames))


def test_grids_name_the_pixel_student_and_give_qat_ppo_its_convolution(minatar_teacher, tmp_path):
    from flow.experiments.table import build_trials, grid_conv

    floats, trials = build_trials(ENV, minatar_teacher, [2], [0], ["ptq", "qat-ppo", "float-ptq", "direct", "qpd"],
                                  [16], 8000, 2, tmp_path)
    keys = {t.method: t.key for t in trials}
    assert keys["qpd"] == "qpd-c8-1x16-w2-s0" and keys["qat-ppo"] == "qat-ppo-c8-1x16-w2-s0"
    assert dict(next(t for t in trials if t.method == "qat-ppo").extra) == {"conv": (8,)}
    assert next(t for t in trials if t.method == "ptq").extra == () and floats[0].conv == (8,)
    assert trials[0].method == "ptq" and grid_conv(trials) == [8]  # the table's words come from a student trial


def test_baselines_run_on_pixels(minatar_teacher, tmp_path):
    from flow.experiments.trials import Trial, run_trial

    common = dict(env_id=ENV, bits=2, seed=0, hidden=(16,), episodes=2, teacher_dir=str(minatar_teacher),
                  runs_dir=str(tmp_path))
    ptq = run_trial(Trial(method="ptq", **common))
    # the teacher's conv (16*4*9 + 16), 128-unit layer (1024*128 + 128) and head (128*3 + 3): weights at 2 bits
    assert ptq["size_bits"] == (576 + 131_072 + 384) * 2 + (16 + 128 + 3) * 32
    qat = run_trial(Trial(method="qat-ppo", qat_steps=2048, extra=(("conv", (8,)),), **common))
    assert qat["train_timesteps"] == 2048 and qat["size_bits"] == (288 + 8192 + 48) * 2 + (8 + 16) * 32


def test_the_architecture_cost_of_a_pixel_student_bounds_the_design(pixel_design):
    from hw_build.arch_cost import architecture_cost

    folder, _, _ = pixel_design
    cost = architecture_cost(ENV, [16], 2, 2)
    accel = json.loads((folder / "accel.json").read_text())
    assert cost["student"] == "c8-1x16-w2a2" and cost["deployed"]["host_bits"] == 0 and cost["fits"]
    assert cost["deployed_bits"] >= accel["deployed"]["total_bits"] and cost["est_latency_us"] <= 10


def test_a_pixel_designs_default_name_is_one_folder():
    from pathlib import Path

    from hw_build.design import default_design_name

    assert default_design_name(ENV, Path("runs/MinAtar/Breakout-v1/qpd-c8-1x16-w2a2-s0")) == \
        "MinAtar-Breakout-v1-qpd-c8-1x16-w2a2-s0"


def test_a_grids_kernel_and_stride_name_and_cost_its_students(monkeypatch, tmp_path):
    """A grid that sets a stride (CONFIG= with ``stride: 2``) names its students by it and costs them
    with it: the stride shrinks the dense layer after the convolution, most of a pixel student's bits."""
    import hw_build.arch_cost
    from flow.experiments.hardware import arch_key, architecture_costs, layer_options
    from flow.experiments.trials import Trial

    options = layer_options({"stride": 2, "kernel": 3, "final_stage_share": 0.7})
    assert options == {"stride": 2, "kernel": 3} and arch_key([16], 2, 2, 8, [8], **options) == "c8s2-1x16-w2a2"
    trial = Trial(env_id=ENV, method="qpd", bits=2, seed=0, hidden=(16,), extra=(("conv", (8,)), ("stride", 2)))
    assert trial.key == "qpd-c8s2-1x16-w2-s0"
    seen = {}

    def cost(env_id, hidden, bits, act_bits, **kwargs):
        seen.update(kwargs)
        return {"deployed_bits": 1, "est_resources": {"LUT": 1.0, "BRAM_18K": 0.0, "DSP": 0.0}, "est_latency_us": 1.0,
                "fits": True}

    monkeypatch.setattr(hw_build.arch_cost, "architecture_cost", cost)
    record = architecture_costs(ENV, [((16,), 2, (8,))], cache_dir=tmp_path, **options)
    assert (seen["stride"], seen["kernel"]) == (2, 3) and set(record["architectures"]) == {"c8s2-1x16-w2a2"}


def test_a_frontier_page_names_the_students_window():
    """The frontier's lines name a student by its kernel and stride (``c8k4s2-1×64``) where the grid
    sets them, as its trial keys do, and keep ``c8-1×16`` for the default 3×3 stride-1 window."""
    from flow.experiments.frontier import _arch

    row = {"channels": 8, "width": 64}
    assert _arch(row, 1, {"distill_settings": {"kernel": 4, "stride": 2}}) == "c8k4s2-1×64"
    assert _arch(row, 1, {"distill_settings": {"stride": 2}}) == "c8s2-1×64"
    assert _arch(row, 1, {"distill_settings": {}}) == "c8-1×64"
    assert _arch({"width": 32}, 2, {"distill_settings": {"kernel": 4}}) == "2×32"


@pytest.fixture(scope="module")
def readout_design(minatar_teacher, tmp_path_factory):
    """A convolutional student with no dense layer: its output layer reads the flattened feature map."""
    from training.qpd.config import load_qpd_config
    from training.qpd.distill import distill

    cfg = load_qpd_config(env_id=ENV, schedule=[4, 2], updates=500, final_stage_share=0.6, teacher_states=3000,
                          dagger_interval=250, dagger_steps=500, student_memory=3000, eval_episodes=3,
                          stage_eval_episodes=1, agreement_states=500, hidden=[], conv=[8], kernel=4, stride=2)
    run_dir = tmp_path_factory.mktemp("runs") / "MinAtar" / "Breakout-v1" / "qpd-readout"
    results = distill(cfg, minatar_teacher, run_dir, quiet=True)
    with exported_design(run_dir, "readout-breakout", tmp_path_factory.mktemp("bitstreams")) as design:
        yield results, design


def test_a_convolution_read_out_by_the_output_layer_runs_the_whole_ladder(readout_design):
    """No dense layer between the convolution and the output: named ``c8k4s2``, two MVAUs on the
    fabric, exact at every level, and the emulator plays it as FINN executes it."""
    from hw_build.arch_cost import architecture_cost
    from hw_build.execution import execute_batch
    from hw_build.export import episode_states
    from hw_build.verify import verify_design
    from training.qpd.distill import StudentPolicy, load_student

    from host.backends.emulator import EmulatedAccelerator
    from host.design.spec import load_spec

    results, (folder, export, _) = readout_design
    assert results["student"] == "c8k4s2-w2a2"
    # 4x4x4x8 conv (10x10 -> 4x4) + 4*4*8 -> 3, weights at 2 bits; the conv's 8 biases at 32
    assert results["size"]["student"]["n_weights"] == 512 + 128 * 3 and results["size"]["student"]["n_biases"] == 8
    accel = json.loads((folder / "accel.json").read_text())
    assert [layer["op"] for layer in accel["layers"]] == ["ConvolutionInputGenerator", "MVAU", "MVAU", "LabelSelect"]
    assert accel["layers"][0]["ofm_dim"] == [4, 4] and accel["layers"][0]["kernel"] == [4, 4]
    record = verify_design("readout-breakout", n_states=300)
    assert record["passed"] and all(lv["agreement"] == 1.0 for lv in record["levels"])
    student, _ = load_student(__import__("pathlib").Path(export["run"]) / "student.pt")
    frames = episode_states(ENV, StudentPolicy(student), 200)
    spec = load_spec(folder)
    emulated = EmulatedAccelerator(spec)(spec.preprocess(frames))
    assert np.array_equal(emulated, execute_batch(folder / "intermediate_models" / "step_convert_to_hw.onnx",
                                                  frames).astype(np.int64))
    assert np.array_equal(emulated[:, 0], student.act(frames))
    cost = architecture_cost(ENV, [], 2, 2, conv=[8], kernel=4, stride=2)
    assert cost["student"] == "c8k4s2-w2a2" and cost["deployed_bits"] >= accel["deployed"]["total_bits"]


def test_no_dense_layer_is_for_convolutional_students_only(tmp_path):
    from training.qpd.config import load_qpd_config

    with pytest.raises(FlowError, match="none only after convolutions"):
        load_qpd_config(env_id="CartPole-v1", hidden=[])
    from flow.experiments.frontier import _arch, _width_cell

    assert _arch({"channels": 32, "width": 0}, 0, {"distill_settings": {"kernel": 4, "stride": 2}}) == "c32k4s2"
    assert _width_cell({"channels": 32, "width": 0}, {"distill_settings": {}}) == "conv 32"
    two = {"distill_settings": {"conv": [16, 16]}}  # a recipe's two convolutions: a row keeps the first count
    assert _arch({"channels": 16, "width": 0}, 0, two) == "c16-16" and _width_cell({"channels": 16, "width": 0}, two) == "conv 16-16"
    assert _width_cell({"channels": 8, "width": 32}, {"channels": [8, 16], "distill_settings": {"conv": [4]}}) == "32 (conv 8)"


def test_a_tables_sentence_names_the_students_window_and_layers():
    from flow.experiments.table import architecture_words

    assert architecture_words(ENV, [16], [8], 8)[1] == "8-channel 3×3 convolution then 1×16 (binary frames as input)"
    assert architecture_words(ENV, [32], [16], 8, {"kernel": 4, "stride": 2})[1] == \
        "16-channel 4×4 stride-2 convolution then 1×32 (binary frames as input)"
    assert architecture_words(ENV, [], [16, 16], 8, {"kernel": 3})[1] == \
        "3×3 convolutions of 16, 16 channels then no dense layer (binary frames as input)"
