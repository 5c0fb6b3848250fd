"""The hardware build on a tiny student: export, estimate, codegen, the Vivado gate, verify, bad input."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import REPO, run_cli
from training.errors import FlowError

DESIGN = "tiny-cartpole"


@pytest.fixture(scope="module")
def designs(tmp_path_factory):
    root = tmp_path_factory.mktemp("bitstreams")
    old = os.environ.get("QPD_BITSTREAMS")
    os.environ["QPD_BITSTREAMS"] = str(root)
    yield root
    if old is None:
        del os.environ["QPD_BITSTREAMS"]
    else:
        os.environ["QPD_BITSTREAMS"] = old


@pytest.fixture(scope="module")
def estimated(designs, short_qpd_student):
    from hw_build.compile import estimate_design
    from hw_build.export import export_design

    export = export_design(short_qpd_student[0], DESIGN, n_states=500)
    estimate = estimate_design(DESIGN, kind="codegen", quiet=True)
    return designs / DESIGN, export, estimate


def test_export_writes_the_qonnx_and_a_perfect_parity_record(estimated):
    folder, export, _ = estimated
    assert (folder / "policy.qonnx.onnx").exists()
    parity = json.loads((folder / "export.json").read_text())["parity"]
    assert parity["n_states"] == 500 and parity["action_agreement"] == 1.0 and parity["integer_logits_equal"]
    assert export["action"] == "discrete" and len(export["student_checkpoint_sha256"]) == 64


def test_estimate_fits_the_xc7z020_with_argmax_in_hardware_and_integer_input(estimated):
    folder, _, est = estimated
    assert est.fits_comfortably and est.latency_ns <= 2000 and est.resources["LUT"] > 0
    summary = json.loads((folder / "estimate.json").read_text())
    assert summary["part"] == "xc7z020clg400-1" and summary["utilisation"]["LUT"] < 0.7
    from hw_build.shell import SHELL_ALLOWANCE

    assert summary["with_shell"]["total"]["LUT"] > est.resources["LUT"] + SHELL_ALLOWANCE["LUT"]  # + FIFOs/DWCs
    assert "github.com/ovpanait/zynq-aes/issues/2" in summary["with_shell"]["shell_allowance_sources"]["LUT"]
    accel = json.loads((folder / "accel.json").read_text())
    assert [layer["op"] for layer in accel["layers"]] == ["MVAU", "MVAU", "MVAU", "LabelSelect"]
    assert accel["action"]["argmax_in_hardware"] and accel["output"]["normal_shape"] == [1, 1]
    assert accel["input"]["finn_datatype"] == "INT8" and accel["input"]["normal_shape"] == [1, 4]
    assert accel["input"]["transform"]["kind"] == "quantize" and accel["input"]["transform"]["min_int"] == -128
    folding = json.loads((folder / "folding.json").read_text())
    chosen = [p for p in folding["points"] if p["target_fps"] == folding["chosen_target_fps"]][0]
    assert chosen["latency_ns"] <= 2000 and (folder / "folding.png").exists() and (folder / "folding.md").exists()
    assert all(p["resources"]["LUT"] >= chosen["resources"]["LUT"] for p in folding["points"] if p["latency_ns"] <= 2000)


def test_deployed_bits_count_every_weight_and_threshold(estimated):
    folder, _, _ = estimated
    accel = json.loads((folder / "accel.json").read_text())
    dep = accel["deployed"]
    with np.load(folder / "weights.npz") as weights:
        stored = {key: weights[key].size for key in weights.files}
    mvaus = [layer for layer in accel["layers"] if layer["op"] == "MVAU"]
    assert sum(stored[layer["weights"]] for layer in mvaus) == 4 * 16 + 16 * 16 + 16 * 2
    weight_bits = sum(stored[layer["weights"]] * 2 for layer in mvaus)  # w2
    assert sum(layer["weight_bits"] for layer in dep["layers"]) == weight_bits
    assert sum(layer["threshold_bits"] for layer in dep["layers"]) >= 2 * 16 * 3 * 2  # 3 thresholds/channel, >= 2 bits
    assert dep["host_bits"] == (2 * 4 + 2) * 32 and dep["total_bits"] == dep["fabric_bits"] + dep["host_bits"]


def test_float_input_keeps_the_thresholding_layer_and_counts_its_float_bank(estimated, designs):
    import shutil as sh

    from hw_build.compile import BuildChoice, estimate_design

    folder, _, _ = estimated
    float_dir = designs / "tiny-float"
    float_dir.mkdir(exist_ok=True)
    for name in ("policy.qonnx.onnx", "export.json"):
        sh.copy(folder / name, float_dir / name)
    # What make verify, rtlsim and synth found on an earlier build of this design does not vouch for the new one.
    from hw_build.design import BUILD_CHECK_FILES

    for name in BUILD_CHECK_FILES:
        (float_dir / name).write_text('{"passed": true}')
    estimate_design("tiny-float", choice=BuildChoice(input_mode="float", target_fps=1_000_000), quiet=True)
    assert not any((float_dir / name).exists() for name in BUILD_CHECK_FILES)
    accel = json.loads((float_dir / "accel.json").read_text())
    assert accel["layers"][0]["op"] == "Thresholding" and accel["input"]["finn_datatype"] == "FLOAT32"
    assert accel["input"]["transform"]["kind"] == "none" and accel["deployed"]["host_bits"] == 0
    assert accel["deployed"]["layers"][0]["threshold_bits"] == 4 * 255 * 32
    integer = json.loads((folder / "accel.json").read_text())["deployed"]["total_bits"]
    assert accel["deployed"]["total_bits"] > integer + 4 * 255 * 32 - 400


def test_codegen_keeps_the_hls_and_rtl_sources(estimated):
    folder, _, _ = estimated
    sources = folder / "hw_sources"
    assert list((sources / "MVAU_hls_0").glob("top_MVAU_hls_0.cpp"))


def test_accel_spec_round_trip_matches_weights_and_files(estimated):
    from hw_build.design import sha256_file

    folder, _, _ = estimated
    accel = json.loads((folder / "accel.json").read_text())
    assert accel["format_version"] == 2
    assert accel["hashes"]["weights_npz_sha256"] == sha256_file(folder / "weights.npz")
    assert accel["hashes"]["qonnx_sha256"] == sha256_file(folder / "policy.qonnx.onnx")
    assert accel["hashes"]["bitstream_sha256"] is None
    with np.load(folder / "weights.npz") as weights:
        for layer in accel["layers"]:
            if layer["op"] == "MVAU":
                w = weights[layer["weights"]]
                assert w.shape == (layer["mw"], layer["mh"]) and np.array_equal(w, np.round(w))
                if layer["thresholds"]:
                    assert weights[layer["thresholds"]].shape[0] == layer["mh"]
            if layer["op"] == "Thresholding":
                assert weights[layer["thresholds"]].shape[0] == layer["channels"]
    assert json.loads(json.dumps(accel)) == accel
    finn = json.loads((folder / "finn_settings.json").read_text())["driver_information"]["io_shape_dict"]
    assert finn["ishape_packed"] == [accel["input"]["packed_shape"]] and finn["odt"] == [f"DataType['{accel['output']['finn_datatype']}']"]


def test_verify_ladder_agrees_on_every_state(estimated):
    from hw_build.verify import verify_design

    folder, _, _ = estimated
    record = verify_design(DESIGN, n_states=2000)
    assert record["passed"] and [lv["level"] for lv in record["levels"]] == ["0", "1", "1q", "2", "3a", "3b"]
    assert all(lv["agreement"] == 1.0 for lv in record["levels"])
    assert json.loads((folder / "verify.json").read_text())["n_states"] == 2000


def _tampered_copy(folder, designs, name, edit):
    """A copy of the design ``folder`` as ``name`` with ``edit(accel, arrays)`` applied, the weights' hash rewritten."""
    import io

    from hw_build.design import sha256_file

    copy = designs / name
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(folder, copy, ignore=shutil.ignore_patterns("compare-*", "verify.json"))
    accel = json.loads((copy / "accel.json").read_text())
    with np.load(copy / "weights.npz", allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    edit(accel, arrays)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    (copy / "weights.npz").write_bytes(buf.getvalue())
    accel["hashes"]["weights_npz_sha256"] = sha256_file(copy / "weights.npz")
    (copy / "accel.json").write_text(json.dumps(accel))
    return copy


def _negate_first_weights(accel, arrays):
    """The first layer's weights negated, kept inside their datatype (-(-2) = 2 is not an INT2: the host's
    schema refuses that outright, see test_schema.py)."""
    from host.design.schema import datatype_range

    layer = next(layer for layer in accel["layers"] if layer["op"] == "MVAU")
    _, lo, hi = datatype_range(layer["weight_dtype"])
    arrays[layer["weights"]] = np.clip(-arrays[layer["weights"]], lo, hi)


def _double_input_scale(accel, arrays):
    accel["input"]["transform"]["quant_scale"] *= 2


@pytest.mark.parametrize("name, edit", [("negated-weights", _negate_first_weights),
                                         ("doubled-input-scale", _double_input_scale)])
def test_tampered_design_fails_compare_and_verify(estimated, designs, tmp_path, capsys, name, edit):
    """Negated weights (hash rewritten) and a doubled host input-quantizer scale: the FINN-graph column,
    fed by the host quantizer, may still agree; the Brevitas student (float observations) does not, so
    make compare exits 1 with a verdict naming it, and make verify refuses the board's files."""
    from flow.cli import main as flow_main
    from hw_build.verify import verify_design

    folder, _, _ = estimated
    copy = _tampered_copy(folder, designs, f"tampered-{name}", edit)
    code = flow_main(["compare", "--design", copy.name, "--episodes", "3", "--out", str(tmp_path / "r")])
    out = capsys.readouterr().out.strip().splitlines()
    assert code == 1, out[-3:]
    assert out[-1].startswith("verdict: FAILED: the hardware's actions differ from the Brevitas student's on ")
    with pytest.raises(FlowError, match="the files the board loads differ from what the FINN graph makes"):
        verify_design(copy.name, n_states=200)
    level0 = json.loads((copy / "verify.json").read_text())["levels"][0]
    expected = "weights.npz: array MVAU_hls_0.weights differs" if name == "negated-weights" else \
        "accel.json: input.transform.quant_scale differs"
    assert level0["level"] == "0" and any(m.startswith(expected) for m in level0["mismatches"]), level0


def test_graph_checks_catch_what_the_host_cannot(estimated, designs, tmp_path, capsys):
    """A wider accumulator on a thresholded layer computes the same on the host, but is not what FINN
    compiled: the FINN-graph cross-check names it. A truncated FINN graph is one sentence, exit 2."""
    from flow.cli import main as flow_main
    from hw_build.accel_spec import FINAL_MODEL, board_file_mismatches

    folder, _, _ = estimated
    wider = _tampered_copy(folder, designs, "tampered-acc", lambda accel, _: accel["layers"][0].update(acc_dtype="INT24"))
    assert "accel.json: layers[0].acc_dtype differs" in board_file_mismatches(wider)
    truncated = _tampered_copy(folder, designs, "tampered-graph", lambda *_: None)
    graph = truncated / "intermediate_models" / FINAL_MODEL
    graph.write_bytes(graph.read_bytes()[: graph.stat().st_size // 2])
    capsys.readouterr()
    assert flow_main(["compare", "--design", truncated.name, "--episodes", "1", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: the graph") and "is truncated or not ONNX" in err and "\n" not in err


@pytest.fixture(scope="module")
def prepared(estimated, designs, tmp_path_factory):
    """``make bitstream`` here: no Vivado, no Vitis HLS, no FINN dependencies (an empty FINN_DEPS)."""
    env = {k: v for k, v in os.environ.items() if k not in ("XILINX_VIVADO", "XILINX_HLS")}
    env["FINN_DEPS"] = str(tmp_path_factory.mktemp("no-finn-deps"))
    proc = subprocess.run([sys.executable, "-m", "hw_build", "bitstream", "--design", DESIGN], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)
    return designs / DESIGN, proc


def test_bitstream_without_vivado_prepares_all_it_can_and_stops_with_exit_3(prepared):
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.custom_op.registry import getCustomOp

    from hw_build.vivado_build import PREP_FIFOS, PREP_ZYNQ

    folder, proc = prepared
    assert proc.returncode == 3, proc.stderr
    missing = [line for line in proc.stdout.splitlines() if line.startswith("missing: ")]
    assert len(missing) == 3 and "XILINX_VIVADO is unset" in missing[0] and "XILINX_HLS is unset" in missing[1]
    assert "run make finn-deps" in missing[2] and "finn-hlslib" in missing[2] and "no bitstream" in proc.stdout
    steps = [line for line in proc.stdout.splitlines() if "FINN step" in line]
    assert steps and steps[-1].split()[3] == "step_hw_codegen" and steps[-1].endswith(" s")  # a line per step, timed
    assert f"FINN's log: {folder}/build_dataflow.log" in proc.stdout
    fifos = ModelWrapper(str(folder / "intermediate_models" / PREP_FIFOS))
    kinds = [n.op_type for n in fifos.graph.node]
    assert kinds.count("StreamingFIFO_rtl") >= 3 and [k for k in kinds if not k.startswith("Streaming")] == \
        ["MVAU_hls", "MVAU_hls", "MVAU_hls", "LabelSelect_hls"]
    assert all((folder / "hw_sources" / n.name).is_dir() for n in fifos.graph.node)  # every layer's and FIFO's sources
    parent = ModelWrapper(str(folder / "intermediate_models" / PREP_ZYNQ))
    partitions = [getCustomOp(n) for n in parent.graph.node]
    assert {p.get_nodeattr("instance_name") for p in partitions} >= {"idma0", "odma0"}
    inner = ModelWrapper(partitions[0].get_nodeattr("model"))
    assert inner.graph.node[0].op_type == "IODMA_hls"
    assert not (folder / "finn-accel.bit").exists() and (folder / "accel.json").exists()


def test_finn_driver_settings_agree_with_accel_json_and_ours(prepared):
    """FINN's MakePYNQDriver, run on the Zynq-prepared graph, writes what host.design.finn_settings
    makes from accel.json: the same driver_information, field for field."""
    folder, proc = prepared
    assert proc.returncode == 3, proc.stderr
    finn = json.loads((folder / "driver" / "settings.json").read_text())["driver_information"]
    ours = json.loads((folder / "finn_settings.json").read_text())["driver_information"]
    accel = json.loads((folder / "accel.json").read_text())
    assert finn == ours
    assert finn["external_weights"] is False and finn["io_shape_dict"]["idma_names"] == [accel["dma"]["input"]]
    assert finn["io_shape_dict"]["oshape_packed"] == [accel["output"]["packed_shape"]]
    assert finn["fclk_mhz"] == 1000 / accel["clock_ns"]


def test_bitstream_config_carries_verification_folding_and_fifo_settings(prepared):
    """The Vivado build's config, as FINN's builder takes it: its checks, the folding make estimate chose,
    FIFO sizing stated; the steps before Vivado ran with it (the fixture)."""
    import finn.builder.build_dataflow_config as bc
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.custom_op.registry import getCustomOp

    from host.backends.emulator import EmulatedAccelerator
    from host.design.spec import load_spec
    from hw_build.compile import FOLDING_CONFIG, BuildChoice, bitstream_config
    from hw_build.vivado_build import VERIFY_INPUT, VERIFY_OUTPUT, VERIFY_STATES, vivado_free

    folder, proc = prepared
    assert proc.returncode == 3, proc.stderr
    io_files = (folder / VERIFY_INPUT, folder / VERIFY_OUTPUT)
    cfg = bitstream_config(folder, BuildChoice(), folder / FOLDING_CONFIG, io_files)
    assert bc.DataflowBuildConfig.construct_from(cfg) is cfg  # FINN's own validation (folding file exists, ...)
    assert [s.value for s in cfg.verify_steps] == ["folded_hls_cppsim", "node_by_node_rtlsim", "stitched_ip_rtlsim"]
    assert (cfg.verification_atol, cfg.verification_mean_atol) == (0.0, 0.0)  # integer outputs: exact
    assert cfg.folding_config_file == folder / FOLDING_CONFIG and cfg.target_fps is None
    assert cfg.auto_fifo_depths and cfg.auto_fifo_strategy == bc.AutoFIFOSizingMethod.DISTRIBUTED_SIMULATION
    assert cfg.large_fifo_mem_style == bc.LargeFIFOMemStyle.BRAM
    assert {bc.DataflowOutputType.RTLSIM_PERFORMANCE, bc.DataflowOutputType.STITCHED_IP} <= set(cfg.generate_outputs)
    free = vivado_free(cfg)
    names = [s if isinstance(s, str) else s.__name__ for s in cfg.steps]
    assert free.steps[:-1] == cfg.steps[:names.index("step_generate_hardware")] and free.steps[-1] == "step_hw_codegen"
    # the build applied the folding file, layer by layer
    folding = json.loads((folder / FOLDING_CONFIG).read_text())
    model = ModelWrapper(str(folder / "intermediate_models" / "step_hw_codegen.onnx"))
    for node in model.graph.node:
        for attr in ("PE", "SIMD"):
            if attr in folding.get(node.name, {}):
                assert getCustomOp(node).get_nodeattr(attr) == folding[node.name][attr]
    # FINN's verification data: real states at the accelerator's input, the hardware graph's actions
    inputs, expected = np.load(io_files[0]), np.load(io_files[1])
    assert inputs.shape == (VERIFY_STATES, 4) and expected.shape == (VERIFY_STATES, 1)
    spec = load_spec(folder)
    np.testing.assert_array_equal(expected, EmulatedAccelerator(spec)(inputs).reshape(VERIFY_STATES, 1))


def test_bitstream_config_is_the_full_zynq_build(tmp_path):
    import finn.builder.build_dataflow_config as bc

    from hw_build.compile import build_config, step_qpd_output_head
    from hw_build.finn_env import prepare_finn

    prepare_finn(tmp_path)
    cfg = build_config(tmp_path, "bitstream", 1_000_000, 5.0)
    names = [s if isinstance(s, str) else s.__name__ for s in cfg.steps]
    after = names[names.index("step_streamline") + 1:names.index("step_streamline") + 3]
    assert after == ["step_qpd_host_input", "step_qpd_output_head"] and step_qpd_output_head in cfg.steps
    for step in ("step_generate_hardware", "step_create_stitched_ip", "step_measure_rtlsim_performance",
                 "step_synthesize_bitfile", "step_make_driver", "step_deployment_package"):
        assert step in names
    assert cfg.board == "Pynq-Z2" and cfg.shell_flow_type == bc.ShellFlowType.VIVADO_ZYNQ
    assert cfg.synth_clk_period_ns == 5.0 and cfg.target_fps == 1_000_000 and cfg.verify_steps is None
    assert {bc.DataflowOutputType.BITFILE, bc.DataflowOutputType.PYNQ_DRIVER,
            bc.DataflowOutputType.DEPLOYMENT_PACKAGE} <= set(cfg.generate_outputs)


def test_finn_adaptations_do_nothing_when_vivado_is_present():
    code = ("import os; from hw_build.finn_env import prepare_finn; prepare_finn('/tmp/finn-vivado-test');"
            "import finn.xsi, finn.util.basic as b; print('SimEngine' in vars(finn.xsi), b.get_vivado_root())")
    env = {**os.environ, "XILINX_VIVADO": "/opt/Xilinx/Vivado/2024.2"}
    env.pop("FINN_BUILD_DIR", None)
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split()[-2:] == ["False", "/opt/Xilinx/Vivado/2024.2"]


def _user_error(proc, fragment):
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.startswith("error: ") and fragment in proc.stderr, proc.stderr


def test_export_refuses_a_run_without_a_student(designs, cartpole_teacher):
    _user_error(run_cli("hw_build", "export", str(cartpole_teacher), env={"QPD_BITSTREAMS": str(designs)}),
                "has no distilled student")


def test_export_refuses_an_existing_design_unless_forced(estimated, designs, short_qpd_student):
    _user_error(run_cli("hw_build", "export", str(short_qpd_student[0]), "--design", DESIGN,
                        env={"QPD_BITSTREAMS": str(designs)}), "exists already")


def test_unwritable_output_folder(short_qpd_student, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    _user_error(run_cli("hw_build", "export", str(short_qpd_student[0]), env={"QPD_BITSTREAMS": str(blocker)}),
                "cannot create the design folder")


def test_estimate_of_a_missing_design(designs):
    _user_error(run_cli("hw_build", "estimate", "--design", "nothing-here", env={"QPD_BITSTREAMS": str(designs)}),
                "run make export")


def test_a_student_finn_cannot_compile_is_named(estimated, designs, short_qpd_student):
    """A per-channel output scale cannot go into the hardware argmax: FINN leaves it outside."""
    import torch
    from brevitas.nn import QuantLinear

    from hw_build.compile import estimate_design
    from hw_build.export import export_actor_qonnx
    from training.qpd.distill import STUDENT_FILE, load_student
    from training.students.student import HiddenWeightQuant

    student, _ = load_student(short_qpd_student[0] / STUDENT_FILE)
    old = student.actor_out
    student.actor_out = QuantLinear(old.in_features, old.out_features, bias=False, weight_quant=HiddenWeightQuant,
                                    weight_bit_width=2, return_quant_tensor=False)
    student.actor_out.weight.data.copy_(old.weight.data)
    student.train()
    student(torch.randn(8, 4))
    folder = designs / "per-channel-head"
    folder.mkdir()
    export_actor_qonnx(student.eval(), folder / "policy.qonnx.onnx")
    shutil.copy(designs / DESIGN / "export.json", folder / "export.json")
    with pytest.raises(FlowError, match=r"TopK \(TopK_0\) stayed outside the accelerator"):
        estimate_design("per-channel-head", quiet=True)


def test_bad_design_names(designs):
    from hw_build.design import design_dir

    for bad in ("../escape", "a b", ""):
        with pytest.raises(FlowError, match="design name"):
            design_dir(bad)


def test_host_emulator_matches_finn_python_execution_live(estimated, short_qpd_student):
    """Level 4 of the ladder against level 3b, on states from real episodes."""
    from host.backends.emulator import EmulatedAccelerator
    from host.design.spec import load_spec
    from hw_build.execution import execute_batch
    from hw_build.export import episode_states
    from training.qpd.distill import STUDENT_FILE, StudentPolicy, load_student

    folder, _, _ = estimated
    student, _ = load_student(short_qpd_student[0] / STUDENT_FILE)
    states = episode_states("CartPole-v1", StudentPolicy(student), 3000, seed_base=70_000_000)
    spec = load_spec(folder)
    finn = execute_batch(folder / "intermediate_models" / "step_convert_to_hw.onnx", spec.preprocess(states))
    emulated = EmulatedAccelerator(spec)(spec.preprocess(states))
    np.testing.assert_array_equal(emulated.reshape(finn.shape), finn)
    np.testing.assert_array_equal(emulated[:, 0], student.act(states))  # and the Brevitas student's actions


def test_workstation_compare_adds_finn_execution_and_the_brevitas_student(estimated, designs, tmp_path):
    """make compare (python -m flow compare) compares with FINN's graph and the Brevitas student;
    python -m host compare, as on the board, with the integer reference and says what it skipped."""
    from flow.cli import main as flow_main
    from host.cli import build_parser, compare

    assert flow_main(["compare", "--design", DESIGN, "--episodes", "3", "--out", str(tmp_path / "flow")]) == 0
    rep = json.loads((tmp_path / "flow" / "compare.json").read_text())
    finn = "FINN hardware-layer graph (fed by the host quantizer)"
    assert list(rep["software"]) == [finn, "float teacher (numpy)", "Brevitas student"]
    assert rep["verdict"]["passed"] and rep["verdict"]["reference"] == "Brevitas student"
    for name in (finn, "Brevitas student"):
        assert rep["software"][name]["step_agreement"] == 1.0, name

    board = compare(build_parser().parse_args(["compare", "--design", DESIGN, "--episodes", "3",
                                               "--out", str(tmp_path / "host")]))
    assert list(board["software"]) == ["integer reference (numpy)", "float teacher (numpy)"]
    assert board["software"]["integer reference (numpy)"]["step_agreement"] == 1.0
    notes = " ".join(board["notes"])
    assert "FINN's Python execution skipped" in notes and "Brevitas student skipped" in notes


def test_rtl_build_is_simulated_layer_by_layer_with_verilator(designs, narrow_qpd_student, short_qpd_student):
    """IMPL=rtl on a NARROW=1 student: MVAU_rtl and Thresholding_rtl layers; make rtlsim simulates
    FINN's generated RTL of each with Verilator on real states and agrees with FINN's Python
    execution; the argmax goes to the host (no LabelSelect_hls); a wrong threshold in a generated
    memory file is caught; a student with full-range weights keeps HLS MVAUs, each named with FINN's reason."""
    from host.backends.emulator import EmulatedAccelerator
    from host.design.spec import load_spec
    from hw_build.compile import BuildChoice, estimate_design
    from hw_build.execution import execute_batch
    from hw_build.export import export_design
    from hw_build.rtlsim import rtlsim_design
    from hw_build.verify import verify_design

    assert narrow_qpd_student[1]["student"] == "2x16-w2a2n"
    export_design(narrow_qpd_student[0], "tiny-rtl", n_states=200)
    estimate_design("tiny-rtl", choice=BuildChoice(impl="rtl", target_fps=1_000_000), kind="codegen", quiet=True)
    folder = designs / "tiny-rtl"
    assert json.loads((folder / "estimate.json").read_text())["impl"] == "rtl"
    verified = verify_design("tiny-rtl", n_states=300)  # levels 1-3 with standalone thresholds, and level 4
    levels4 = [lv for lv in verified["levels"] if lv["level"] == "4"]
    assert verified["passed"] and len(levels4) >= 6 and sum("connected" in lv["name"] for lv in levels4) >= 1
    assert not any("LabelSelect" in note for note in verified["notes"])  # the host's argmax: every layer RTL
    assert [lv["agreement"] for lv in verified["levels"] if lv["level"] == "4b"] == [1.0]  # stitched (hw_build.stitch)
    record = rtlsim_design("tiny-rtl", n_states=300, stall_percent=30)
    stitched = record["stitched"]  # level 4b: the whole dataflow partition (argmax on the host), FINN's FIFOs and DWCs
    assert stitched["passed"] and stitched["agreement_python"] == 1.0 and stitched["agreement_emulator"] == 1.0
    assert stitched["whole_partition"] and stitched["basis"] == "simulated (Verilator)" and stitched["fifos"]
    layers = {r["layer"]: r for r in record["layers"]}
    covered = [r for r in layers.values() if r["covered"]]
    assert [r["op"] for r in covered] == ["MVAU_rtl", "Thresholding_rtl"] * 2 + ["MVAU_rtl"]
    assert all(r["agreement"] == 1.0 and r["sim_cycles_per_frame"] == r["finn_estimated_cycles"] for r in covered)
    assert len(covered) == len(layers)  # no LabelSelect_hls: the host takes the argmax of the logits
    assert load_spec(folder).argmax_on_host
    # Consecutive RTL layers connected in one netlist; a run ends where FINN would insert a
    # data-width converter (here between a Thresholding_rtl giving 1 element a word and an
    # MVAU_rtl taking SIMD=4).
    assert record["chains"] and all(len(c["layers"]) >= 2 and c["agreement"] == 1.0 for c in record["chains"])
    for chain in record["chains"]:
        assert chain["sim_cycles_per_frame"] == max(chain["finn_estimated_cycles"])  # the slowest layer sets the pace
        assert chain["sim_latency_cycles"] >= max(chain["finn_estimated_cycles"])
    assert (folder / "rtlsim.json").exists()
    # The emulated fabric reads the same design (MVAUs without thresholds, then Thresholding layers).
    spec = load_spec(folder)
    codes = spec.preprocess(np.random.default_rng(0).normal(size=(200, 4)).astype(np.float32))
    np.testing.assert_array_equal(EmulatedAccelerator(spec)(codes),
                                  execute_batch(folder / "intermediate_models" / "step_convert_to_hw.onnx", codes))

    thresholds = next(r["layer"] for r in covered if r["op"] == "Thresholding_rtl")
    dat = sorted((folder / "hw_sources" / thresholds).glob("*_threshs_0_0.dat"))[0]
    dat.write_text("".join("0\n" for _ in dat.read_text().split()))  # every threshold of one PE lane at 0
    with pytest.raises(FlowError, match="agrees with FINN's Python execution on only"):
        rtlsim_design("tiny-rtl", n_states=300, stall_percent=0)

    export_design(short_qpd_student[0], "tiny-rtl-full-range", n_states=200)
    estimate_design("tiny-rtl-full-range", choice=BuildChoice(impl="rtl", target_fps=1_000_000), quiet=True)
    kept = json.loads((designs / "tiny-rtl-full-range" / "estimate.json").read_text())["kept_in_hls"]
    assert [k["op"] for k in kept] == ["MVAU_hls"] * 3 and all("narrow-range weights" in k["why"] for k in kept)
    assert verify_design("tiny-rtl-full-range", n_states=300)["passed"]  # Thresholding_rtl layers, the host's argmax


def test_minus_zero_never_reaches_the_rtl_of_a_float_input_design(designs, narrow_qpd_student, tmp_path):
    """INPUT=float IMPL=rtl: FINN's Thresholding_rtl compares -0.0 below a +0.0 threshold (IEEE and
    every Python level: equal). Shown at the RTL level with Verilator on FINN's own regenerated
    layer, and shown harmless: the host sends -0.0 as +0.0, after which RTL and Python agree on
    every threshold, its float neighbours and both zeros."""
    from host.design.spec import load_spec
    from hw_build.compile import BuildChoice, estimate_design
    from hw_build.export import export_design
    from hw_build.rtlsim import build_layer, node_python, regenerate_layer, simulate_node

    export_design(narrow_qpd_student[0], "tiny-rtl-float", n_states=200)
    estimate_design("tiny-rtl-float", choice=BuildChoice(impl="rtl", input_mode="float", target_fps=1_000_000),
                    kind="codegen", quiet=True)
    folder = designs / "tiny-rtl-float"
    codegen = folder / "intermediate_models" / "step_hw_codegen.onnx"
    from qonnx.core.modelwrapper import ModelWrapper

    first = ModelWrapper(str(codegen)).graph.node[0]
    assert first.op_type == "Thresholding_rtl"
    t = ModelWrapper(str(codegen)).get_initializer(first.input[1]).copy()
    k = np.argmax(t >= 0, axis=1)  # per threshold row, the lowest non-negative threshold becomes exactly +0.0
    rows = np.arange(len(t))
    assert (k > 0).all() and (t[rows, k - 1] < 0).all()
    t[rows, k] = 0.0
    op, node, model = regenerate_layer(codegen, first.name, t, tmp_path / "src")
    layer = build_layer(first.name, first.op_type, tmp_path / "src", tmp_path / "obj")
    channels = op.get_nodeattr("NumChannels")
    assert len(t) in (1, channels)
    per_channel = np.broadcast_to(t, (channels, t.shape[1]))  # column c: channel c's thresholds
    frames = np.concatenate([per_channel.T, np.nextafter(per_channel.T, np.float32(np.inf)),
                             np.nextafter(per_channel.T, np.float32(-np.inf)),
                             np.full((1, channels), 0.0), np.full((1, channels), -0.0)]).astype(np.float32)
    rtl, _ = simulate_node(op, layer, frames, stall_percent=20)
    python = node_python(op, node, model, frames)
    minus_zero = np.signbit(frames) & (frames == 0)
    assert np.array_equal(rtl[~minus_zero], python[~minus_zero])  # every threshold and its neighbours agree
    # Rows -2 and -1: +0.0 and -0.0 on every channel. IEEE: the same level; the RTL: one step lower for -0.0.
    assert np.array_equal(python[-1], python[-2]) and np.array_equal(rtl[-2], python[-2])
    assert np.array_equal(rtl[-1], rtl[-2] - 1)
    sent = load_spec(folder).preprocess(frames)  # what the host sends a float-input fabric
    assert not np.signbit(sent[sent == 0]).any()  # never -0.0
    rtl_sent, _ = simulate_node(op, layer, sent, stall_percent=20)
    assert np.array_equal(rtl_sent, node_python(op, node, model, sent))


def test_one_bit_weights_compile_and_verify(designs, cartpole_teacher, tmp_path):
    """Bipolar (1-bit) weights with 2-bit activations go through FINN and the ladder."""
    from hw_build.compile import estimate_design
    from hw_build.export import export_design
    from hw_build.verify import verify_design
    from training.qpd.distill import distill
    from training.qpd.config import load_qpd_config

    cfg = load_qpd_config(env_id="CartPole-v1", hidden=[8, 8], weight_bits=1, schedule=[2, 1], updates=600, final_stage_share=0.5,
                          teacher_states=3000, dagger=False, eval_episodes=2, stage_eval_episodes=1,
                          agreement_states=500)
    run = tmp_path / "w1"
    distill(cfg, cartpole_teacher, run, quiet=True)
    export_design(run, "one-bit", n_states=300)
    estimate_design("one-bit", quiet=True)
    accel = json.loads((designs / "one-bit" / "accel.json").read_text())
    assert [layer["op"] for layer in accel["layers"]] == ["MVAU", "MVAU", "MVAU", "LabelSelect"]
    assert verify_design("one-bit", n_states=1000)["passed"]


@pytest.mark.slow
def test_rtlsim_on_ten_thousand_real_states(designs, narrow_qpd_student):
    """The issue's criterion at full size: every RTL layer of a NARROW=1 CartPole student on 10,000 real states."""
    from hw_build.compile import BuildChoice, estimate_design
    from hw_build.export import export_design
    from hw_build.rtlsim import rtlsim_design

    export_design(narrow_qpd_student[0], "rtl-10k", n_states=200)
    estimate_design("rtl-10k", choice=BuildChoice(impl="rtl"), kind="codegen", quiet=True)
    record = rtlsim_design("rtl-10k", n_states=10_000)
    covered = [r for r in record["layers"] if r["covered"]]
    assert record["n_states"] == 10_000 and len(covered) == 5
    assert all(r["agreement"] == 1.0 and r["states"] == 10_000 for r in covered)


def _vivado_present(monkeypatch, tmp_path):
    """This machine as if Vivado, Vitis HLS and FINN's dependencies were installed, and a design that
    make estimate folded (FINN's build is replaced: the Vivado run cannot happen here)."""
    import hw_build.finn_deps as finn_deps
    import hw_build.finn_env as finn_env
    import hw_build.vivado_build as vivado_build

    monkeypatch.setenv("QPD_BITSTREAMS", str(tmp_path))
    design = tmp_path / "d"
    design.mkdir()
    (design / "policy.qonnx.onnx").write_bytes(b"")
    (design / "finn_folding_config.json").write_text(json.dumps({"Defaults": {}, "MVAU_hls_0": {"PE": 2, "SIMD": 4}}))
    (design / "estimate.json").write_text(json.dumps({"target_fps": 300_000, "input": "integer", "impl": "rtl",
                                                      "mvau_wwidth_max": 72, "clock_ns": 10.0}))
    monkeypatch.setattr(finn_env, "missing_tools", lambda: [])
    monkeypatch.setattr(finn_env, "prepare_finn", lambda *a, **k: None)
    monkeypatch.setattr(finn_env, "boot_for_vivado", lambda: None)
    monkeypatch.setattr(finn_env, "xsi_environment", lambda: {})
    monkeypatch.setattr(finn_deps, "status", lambda names=None: finn_deps.DepsStatus(tmp_path, tmp_path, [], {}))
    import hw_build.accel_spec as accel_spec

    monkeypatch.setattr(accel_spec, "write_accel_spec", lambda *a, **k: None)

    def verification_io(out, n=3):
        for name in (vivado_build.VERIFY_INPUT, vivado_build.VERIFY_OUTPUT):
            np.save(out / name, np.zeros((3, 1), dtype=np.float32))
        return out / vivado_build.VERIFY_INPUT, out / vivado_build.VERIFY_OUTPUT

    monkeypatch.setattr(vivado_build, "write_verification_io", verification_io)
    return design


def _finn_outputs(out, fail_step=None, bitfile=True):
    """What FINN's Vivado build writes into its output folder (see finn.builder.build_dataflow_steps)."""
    for sub in ("bitfile", "driver", "report", "verification_output"):
        (out / sub).mkdir(exist_ok=True)
    if bitfile:
        (out / "bitfile" / "finn-accel.bit").write_bytes(b"this build")
        (out / "bitfile" / "finn-accel.hwh").write_text("<hwh/>")
    (out / "driver" / "settings.json").write_text("{}")
    for step in ("folded_hls_cppsim", "node_by_node_rtlsim", "stitched_ip_rtlsim"):
        for b in range(3):
            np.save(out / "verification_output" / f"verify_{step}_{b}_{'FAIL' if step == fail_step and b == 1 else 'SUCCESS'}.npy",
                    np.zeros(1))
    (out / "report" / "rtlsim_performance.json").write_text(json.dumps(
        [{"name": "sim", "samples": 3, "intervals": [12], "latency_cycles": [40, 41], "throughput_fps": 8.3e6}]))
    (out / "report" / "estimate_network_performance.json").write_text(json.dumps(
        {"critical_path_cycles": 38, "max_cycles": 12}))


def test_bitstream_builds_the_folding_make_estimate_chose_and_reports_finn_checks(tmp_path, monkeypatch, capsys):
    import hw_build.compile as compile_mod

    design = _vivado_present(monkeypatch, tmp_path)
    stale = design / "an-older-build" / "bitfile"
    stale.mkdir(parents=True)
    (stale / "finn-accel.bit").write_bytes(b"stale")
    seen = []
    monkeypatch.setattr(compile_mod, "run_build", lambda qonnx, cfg, progress=False: (seen.append(cfg), _finn_outputs(design)))
    assert compile_mod.bitstream_design("d", choice=compile_mod.BuildChoice(impl="rtl"), progress=False) == 0
    (cfg,) = seen
    assert cfg.folding_config_file == design / "finn_folding_config.json" and cfg.target_fps is None
    assert (cfg.mvau_wwidth_max, cfg.standalone_thresholds) == (72, True) and len(cfg.verify_steps) == 3
    assert (design / "finn-accel.bit").read_bytes() == b"this build"  # the one this build made, not the stale one
    record = json.loads((design / "bitstream.json").read_text())
    assert record["passed"] and [r["passed"] for r in record["verification"]] == [3, 3, 3]
    assert record["cycles"]["simulated"][0]["latency_cycles"] == 41 and record["cycles"]["estimate"]["latency_cycles"] == 38
    out = capsys.readouterr().out
    assert "cycles, simulated by Vivado (xsim): latency 41 (0.41 µs), interval 12; FINN's estimate: latency 38" in out


def test_a_failing_finn_check_fails_the_bitstream_build(tmp_path, monkeypatch):
    import hw_build.compile as compile_mod

    design = _vivado_present(monkeypatch, tmp_path)
    monkeypatch.setattr(compile_mod, "run_build",
                        lambda qonnx, cfg, progress=False: _finn_outputs(design, fail_step="stitched_ip_rtlsim"))
    with pytest.raises(FlowError, match="stitched_ip_rtlsim disagrees with the expected output on 1 of 3 states"):
        compile_mod.bitstream_design("d", choice=compile_mod.BuildChoice(impl="rtl"), progress=False)
    assert not json.loads((design / "bitstream.json").read_text())["passed"]


def test_no_stale_bitstream_is_taken_for_this_builds(tmp_path, monkeypatch):
    import hw_build.compile as compile_mod

    design = _vivado_present(monkeypatch, tmp_path)
    (design / "elsewhere").mkdir()
    (design / "elsewhere" / "finn-accel.bit").write_bytes(b"stale")
    monkeypatch.setattr(compile_mod, "run_build", lambda qonnx, cfg, progress=False: _finn_outputs(design, bitfile=False))
    with pytest.raises(FlowError, match="finished without a bitstream at .*bitfile/finn-accel.bit"):
        compile_mod.bitstream_design("d", choice=compile_mod.BuildChoice(impl="rtl"), progress=False)


def test_bitstream_with_other_settings_than_the_estimate_estimates_first(tmp_path, monkeypatch):
    """TARGET_FPS (or INPUT, IMPL, CLOCK_NS) other than make estimate's: the folding is chosen again first."""
    import hw_build.compile as compile_mod

    design = _vivado_present(monkeypatch, tmp_path)
    estimated = []

    def estimate(name, choice=None, quiet=False, **_):
        estimated.append((name, choice.target_fps))
        (design / "estimate.json").write_text(json.dumps({"target_fps": choice.target_fps, "input": "integer",
                                                          "impl": "rtl", "clock_ns": 10.0}))
        return None

    seen = []
    monkeypatch.setattr(compile_mod, "estimate_design", estimate)
    monkeypatch.setattr(compile_mod, "run_build", lambda qonnx, cfg, progress=False: (seen.append(cfg), _finn_outputs(design)))
    choice = compile_mod.BuildChoice(impl="rtl", target_fps=50_000)
    assert compile_mod.bitstream_design("d", choice=choice) == 0
    assert estimated == [("d", 50_000)] and choice.target_fps == 50_000
    assert seen[0].folding_config_file == design / "finn_folding_config.json"


def test_bench_host_runs_on_an_integer_input_design(estimated, tmp_path):
    """make bench's bench_host.py, shrunk to a smoke test: it once fed float states to an
    integer-input graph (qonnx: "Rounding error is too high") and nothing noticed."""
    folder, _, _ = estimated
    out = tmp_path / "host.json"
    done = subprocess.run([sys.executable, "bench/bench_host.py", str(folder), "--out", str(out), "--states", "20",
                           "--repeat", "1", "--ks", "1"], cwd=REPO,
                          env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result["batch_states"] == 20 and result["emulator_batch1_us"] > 0
    assert [row["k"] for row in result["steps_per_second"]] == [1]


def test_the_python_api_returns_result_objects(estimated, designs, short_qpd_student, tmp_path):
    """flow.api: the stages as functions returning dataclasses, the same the command lines call."""
    from flow import api

    assert isinstance(api.distill, type(api.export))  # every stage a plain function
    est = api.estimate(DESIGN, quiet=True)
    assert isinstance(est, api.EstimateResult) and est.fits and est.fps > 0 and est.resources["LUT"] > 0
    ladder = api.verify(DESIGN, states=200)
    assert isinstance(ladder, api.VerifyResult) and ladder.passed and ladder.levels
    report = api.compare(DESIGN, episodes=2, out=tmp_path / "cmp")
    assert isinstance(report, api.CompareResult) and report.episodes == 2 and report.env_id == "CartPole-v1"
    assert report.software["FINN hardware-layer graph (fed by the host quantizer)"]["step_agreement"] == 1.0
    assert (tmp_path / "cmp" / "compare.json").exists() and report.report_dir == tmp_path / "cmp"
    again = api.export(short_qpd_student[0], DESIGN + "-api", states=100)
    assert isinstance(again, api.ExportResult) and again.action_agreement == 1.0 and again.folder.is_dir()
    again = api.DistillResult.from_results(short_qpd_student[0], {"env_id": "CartPole-v1", **short_qpd_student[1]})
    assert again.student_bits < again.teacher_bits and again.n_episodes == 5
