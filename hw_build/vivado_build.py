"""The Vivado build's own checks, and everything FINN does before Vivado, run without it.

With Vivado, ``make bitstream`` has FINN check the hardware in Vivado's tools, on the
verification ladder's real states (:func:`write_verification_io`, a sample small enough for
simulation): the HLS layers in C++ simulation (``folded_hls_cppsim``), each layer's RTL in Vivado's
simulator (``node_by_node_rtlsim``) and the stitched accelerator in it (``stitched_ip_rtlsim``),
then the stitched accelerator's cycles (``step_measure_rtlsim_performance``).
:func:`vivado_results` reads what FINN wrote and sets it beside FINN's estimate.

Without Vivado (or without FINN's dependencies), :func:`prepare_for_vivado` runs all that needs
neither, with FINN's own transformations on the graph the bitstream build compiles: the FIFOs
and data-width converters (unsized: sizing them simulates in Vivado), the Zynq shell's IODMAs and
dataflow partitions (``ZynqBuild``'s preparation), and FINN's driver settings (``MakePYNQDriver``).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from training import atomic
from training.errors import FlowError

#: Real states FINN's simulations check (each is a full simulation run of the stitched IP in xsim).
VERIFY_STATES = 20
VERIFY_INPUT, VERIFY_OUTPUT = "verify_input.npy", "verify_expected_output.npy"
#: FINN's verification steps a bitstream build runs, and what each checks.
VERIFY_STEPS = {"folded_hls_cppsim": "the HLS layers in C++ simulation (Vitis HLS headers, finn-hlslib)",
                "node_by_node_rtlsim": "each layer's RTL, layer by layer, in Vivado's simulator (xsim)",
                "stitched_ip_rtlsim": "the stitched accelerator in Vivado's simulator (xsim)"}
PREP_FIFOS = "vivado_prep_fifos.onnx"
PREP_ZYNQ = "vivado_prep_zynq_parent.onnx"
DRIVER_SETTINGS = Path("driver") / "settings.json"
BITSTREAM_FILE = "bitstream.json"


def write_verification_io(out: Path, n: int = VERIFY_STATES) -> tuple[Path, Path]:
    """``verify_input.npy`` and ``verify_expected_output.npy`` for FINN's verification steps.

    The states are the ladder's (:func:`hw_build.export.episode_states`, real episodes driven by the
    student, the same seeds as ``make verify``); the input is what the accelerator takes (the host's
    input stage, :meth:`host.design.spec.AccelSpec.preprocess`); the expected output is ladder level
    3b's, the FINN hardware-layer graph in Python execution, which ``make verify`` checks against
    Brevitas on 10,000 states.
    """
    from host.design.spec import load_spec
    from hw_build.design import EXPORT_FILE
    from hw_build.execution import execute_batch
    from hw_build.export import episode_states
    from training.qpd.distill import STUDENT_FILE, StudentPolicy, load_student

    export = json.loads((out / EXPORT_FILE).read_text())
    student, _ = load_student(Path(export["run"]) / STUDENT_FILE)
    states = episode_states(export["env_id"], StudentPolicy(student), n)
    fed = np.asarray(load_spec(out).preprocess(states), dtype=np.float32)
    expected = execute_batch(out / "intermediate_models" / "step_convert_to_hw.onnx", fed).astype(np.float32)
    paths = out / VERIFY_INPUT, out / VERIFY_OUTPUT
    for path, array in zip(paths, (fed, expected)):
        buf = io.BytesIO()
        np.save(buf, array, allow_pickle=False)
        atomic.write_bytes(path, buf.getvalue())
    return paths


def vivado_free(cfg):
    """The part of a bitstream build's config that runs without Vivado, Vitis HLS or FINN's dependencies:
    its steps up to code generation (``step_generate_hardware`` generates code, then synthesises it
    with HLS and sizes FIFOs in Vivado's simulator: only its first part, FINN's ``step_hw_codegen``,
    runs here) and none of its verification steps (each simulates in a Xilinx tool)."""
    import dataclasses

    import finn.builder.build_dataflow_config as bc

    names = [s if isinstance(s, str) else s.__name__ for s in cfg.steps]
    steps = list(cfg.steps[:names.index("step_generate_hardware")]) + ["step_hw_codegen"]
    return dataclasses.replace(cfg, steps=steps, verify_steps=None,
                               generate_outputs=[bc.DataflowOutputType.ESTIMATE_REPORTS])


def _tidy(model, transform):
    from qonnx.transformation.general import GiveReadableTensorNames, GiveUniqueNodeNames

    return model.transform(transform).transform(GiveUniqueNodeNames()).transform(GiveReadableTensorNames())


def name_zynq_instances(parent) -> dict[str, str]:
    """The block-design instance names FINN's ``MakeZYNQProject`` gives the dataflow partitions (it sets
    them on the way to Vivado): a partition fed by no other is ``idma<i>``, one feeding none is
    ``odma<i>``, every other keeps its node name."""
    from qonnx.custom_op.registry import getCustomOp

    names, idma, odma = {}, 0, 0
    for node in parent.get_nodes_by_op_type("StreamingDataflowPartition"):
        if parent.find_producer(node.input[0]) is None:
            names[node.name], idma = f"idma{idma}", idma + 1
        elif not parent.find_consumers(node.output[0]):
            names[node.name], odma = f"odma{odma}", odma + 1
        else:
            names[node.name] = node.name
        getCustomOp(node).set_nodeattr("instance_name", names[node.name])
    return names


@contextlib.contextmanager
def _finn_log_to(path: Path):
    """FINN's own log messages (``finn_logger``) into ``path`` instead of the console, as in its builds."""
    logger = logging.getLogger("finn_logger")
    handler = logging.FileHandler(path, mode="a")
    handler.setFormatter(logging.Formatter("[%(asctime)s]%(levelname)s: %(message)s"))
    saved = logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.propagate = saved
        handler.close()


def prepare_for_vivado(out: Path, cfg, part: str, board: str) -> dict[str, Any]:
    """After the :func:`vivado_free` build into ``out``: FIFOs and width converters, the Zynq shell's
    IODMAs and partitions, their generated sources, and FINN's driver settings, all with FINN's
    transformations and without Vivado (FINN's messages go to its log). Returns what was made."""
    with _finn_log_to(out / "build_dataflow.log"):
        return _prepare_for_vivado(out, cfg, part, board)


def _prepare_for_vivado(out: Path, cfg, part: str, board: str) -> dict[str, Any]:
    from finn.transformation.fpgadataflow.create_dataflow_partition import CreateDataflowPartition
    from finn.transformation.fpgadataflow.floorplan import Floorplan
    from finn.transformation.fpgadataflow.insert_dwc import InsertDWC
    from finn.transformation.fpgadataflow.insert_fifo import InsertFIFO
    from finn.transformation.fpgadataflow.insert_iodma import InsertIODMA
    from finn.transformation.fpgadataflow.make_driver import MakePYNQDriver
    from finn.transformation.fpgadataflow.prepare_ip import PrepareIP
    from finn.transformation.fpgadataflow.specialize_layers import SpecializeLayers
    from finn.util.basic import pynq_native_port_width
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.custom_op.registry import getCustomOp

    from hw_build.compile import HW_SOURCES

    models = out / "intermediate_models"
    model = ModelWrapper(str(models / "step_hw_codegen.onnx"))
    # step_set_fifo_depths' insertion (FINN sizes the FIFOs afterwards, in Vivado's simulator)
    for transform in (InsertDWC(), InsertFIFO(create_shallow_fifos=True), SpecializeLayers(part)):
        model = _tidy(model, transform)
    model = model.transform(PrepareIP(part, cfg.synth_clk_period_ns))  # sources of the inserted FIFOs/DWCs
    model.save(str(models / PREP_FIFOS))
    glue = [n for n in model.graph.node if n.op_type.split("_")[0] in ("StreamingFIFO", "StreamingDataWidthConverter")]
    for node in glue:
        src = getCustomOp(node).get_nodeattr("code_gen_dir_ipgen")
        if src and Path(src).is_dir():
            shutil.copytree(src, out / HW_SOURCES / node.name, dirs_exist_ok=True)
    # ZynqBuild's preparation of the shell, before it hands each partition to Vivado
    for transform in (InsertIODMA(pynq_native_port_width[board]), InsertDWC(), SpecializeLayers(part), Floorplan(),
                      CreateDataflowPartition(partition_model_dir=str(models / "vivado_prep_partitions"))):
        model = _tidy(model, transform)
    instances = name_zynq_instances(model)
    model = model.transform(MakePYNQDriver("zynq-iodma", "FINNDMAOverlay", clk_period_ns=cfg.synth_clk_period_ns,
                                           board=board))
    model.save(str(models / PREP_ZYNQ))
    settings = out / DRIVER_SETTINGS
    settings.parent.mkdir(exist_ok=True)
    driver_dir = Path(model.get_metadata_prop("pynq_driver_dir"))
    atomic.write_text(settings, (driver_dir / "settings.json").read_text())
    shutil.rmtree(settings.parent / "runtime_weights", ignore_errors=True)
    if (driver_dir / "runtime_weights").is_dir():  # a writable design (WEIGHTS=runtime): FINN's .dat files
        shutil.copytree(driver_dir / "runtime_weights", settings.parent / "runtime_weights")
    iodmas = sorted(v for v in instances.values() if v.startswith(("idma", "odma")))
    return {"fifos_and_dwcs": [n.name for n in glue], "iodmas": iodmas, "partitions": len(instances), "driver_settings": str(settings)}


def _verification(out: Path, steps: list[str], n: int) -> list[dict[str, Any]]:
    folder = out / "verification_output"
    rows = []
    for step in steps:
        passed = len(list(folder.glob(f"verify_{step}_*_SUCCESS.np[yz]")))
        failed = len(list(folder.glob(f"verify_{step}_*_FAIL.np[yz]")))
        rows.append({"step": step, "checks": VERIFY_STEPS.get(step, step), "states": n, "passed": passed,
                     "failed": failed, "ran": passed + failed == n})
    return rows


def vivado_results(out: Path, steps: list[str], clock_ns: float) -> dict[str, Any]:
    """FINN's verification results and its simulated cycles, beside its estimate, from a finished build."""
    n = len(np.load(out / VERIFY_INPUT, allow_pickle=False))
    perf_path = out / "report" / "rtlsim_performance.json"
    sims = json.loads(perf_path.read_text()) if perf_path.exists() else []
    estimate = json.loads((out / "report" / "estimate_network_performance.json").read_text())
    measured = [{"name": s.get("name"), "samples": s.get("samples"),
                 "latency_cycles": max(s["latency_cycles"]) if s.get("latency_cycles") else None,
                 "interval_cycles": s["intervals"][0] if s.get("intervals") else None,
                 "throughput_fps": s.get("throughput_fps")} for s in sims]
    return {"verification": _verification(out, steps, n),
            "cycles": {"simulated": measured, "figures": "simulated by Vivado (xsim), stitched IP with its sized FIFOs",
                       "estimate": {"latency_cycles": estimate.get("critical_path_cycles"),
                                    "interval_cycles": estimate.get("max_cycles"), "figures": "FINN estimate"},
                       "clock_ns": clock_ns}}


def results_summary(results: dict[str, Any]) -> tuple[list[str], list[str]]:
    """The lines ``make bitstream`` prints about FINN's checks, and the failures among them."""
    lines, failures = ["FINN's checks on the ladder's real states:"], []
    for row in results["verification"]:
        lines.append(f"  {row['step']:<20} {row['passed']}/{row['states']} agree: {row['checks']}")
        if not row["ran"]:
            failures.append(f"FINN's {row['step']} did not check all {row['states']} states "
                            f"({row['passed'] + row['failed']} results in verification_output/)")
        elif row["failed"]:
            failures.append(f"FINN's {row['step']} disagrees with the expected output on {row['failed']} of "
                            f"{row['states']} states (verification_output/verify_{row['step']}_*_FAIL.npy)")
    cycles, clock = results["cycles"], results["cycles"]["clock_ns"]
    est = cycles["estimate"]
    if not cycles["simulated"]:
        failures.append("FINN's rtlsim performance measurement wrote no result (report/rtlsim_performance.json)")
    for sim in cycles["simulated"]:
        lat, ii = sim["latency_cycles"], sim["interval_cycles"]
        lines.append(f"  cycles, simulated by Vivado (xsim): latency {lat} ({lat * clock / 1000:.2f} µs), interval {ii}; "
                     f"FINN's estimate: latency {est['latency_cycles']}, interval {est['interval_cycles']}"
                     if lat is not None and ii is not None else f"  cycles, simulated by Vivado (xsim): {sim}")
    return lines, failures


def write_bitstream_record(out: Path, record: dict[str, Any]) -> Path:
    """``bitstream.json``: what the build made, FINN's checks and its cycles."""
    atomic.write_json(out / BITSTREAM_FILE, record)
    return out / BITSTREAM_FILE


def require(path: Path, since: float, what: str) -> Path:
    """``path``, made by this build (not older than ``since``), or a sentence saying it is missing."""
    if not path.is_file():
        raise FlowError(f"the Vivado build finished without {what} at {path}")
    if path.stat().st_mtime < since:
        raise FlowError(f"{path} is older than this build: FINN did not write {what} this time")
    return path
