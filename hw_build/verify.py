"""The verification ladder, levels 1 to 3 (docs/hardware.md): every level gives the same actions.

1. the Brevitas student (PyTorch, fake-quant): the reference;
2. the QONNX graph (qonnx execution);
3. the FINN graph after streamlining, and after conversion to hardware layers (FINN's Python
   execution of Thresholding / MVAU / LabelSelect, before ``SpecializeLayers``). For an
   integer-input design the hardware-layer graph is fed by the host's input quantizer (from
   accel.json), which is itself checked first against Brevitas's integer codes on the same
   states (level "1q").

All levels run on the same states, visited in real episodes driven by the student. Discrete
actions are compared exactly, ties broken towards the lowest index at every level (the rule
of FINN's LabelSelect); continuous actions within a tolerance of one output quantization step.
Level 0 comes first: the files the board loads (``accel.json``, ``weights.npz``,
``finn_settings.json``) are rebuilt from the compiled FINN graph and must be identical, so what
the board runs is what the ladder verified (a weight edited after the build, its hash rewritten,
fails here). Level 4, where the design has RTL layers (``make codegen IMPL=rtl``) and Verilator is installed:
each RTL layer simulated on the same states (:mod:`hw_build.rtlsim`, also ``make rtlsim``); what
is not covered is said in ``verify.json``'s notes; level 4b, the partition stitched with FINN's
FIFOs and width converters (:mod:`hw_build.stitch`), where its first layer has RTL. The host's emulator is checked by ``make
compare``, the board by ``make board-eval``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from training import atomic
from training.errors import FlowError

#: Levels below the reference: (label, name, graph in the design folder, what its output is).
LEVELS = (
    ("2", "QONNX graph", "policy.qonnx.onnx", "logits"),
    ("3a", "FINN graph after streamlining", "intermediate_models/step_streamline.onnx", "logits"),
    ("3b", "FINN hardware-layer graph (Python execution)", "intermediate_models/step_convert_to_hw.onnx", "hardware"),
)


def _level_actions(discrete: bool, raw: np.ndarray, kind: str, output_scale, output_bias=None) -> np.ndarray:
    """Actions (discrete) or action values (continuous) from one level's raw outputs.

    ``output_scale``: the student's logit step (discrete) or accel.json's output scale, one or
    one per action (continuous, applied to the hardware's integers with ``output_bias``).
    """
    from hw_build.export import integer_actions

    if discrete:
        return raw[:, 0].astype(np.int64) if kind == "labels" else integer_actions(raw, output_scale)
    if kind != "integers":
        return raw
    out = raw * np.asarray(output_scale)
    return out + np.asarray(output_bias) if output_bias is not None else out


def verify_design(design: str, *, n_states: int = 10_000) -> dict[str, Any]:
    """``make verify``: run the ladder and write ``verify.json``; raise if any level disagrees."""
    from hw_build.design import ACCEL_FILE, EXPORT_FILE, VERIFY_FILE, existing_design_dir
    from hw_build.execution import execute_batch
    from hw_build.export import episode_states, student_output_scale
    from hw_build.finn_env import prepare_finn
    from training.qpd.distill import STUDENT_FILE, StudentPolicy, load_student

    from host.design.spec import load_spec

    out = existing_design_dir(design, needs=ACCEL_FILE)
    prepare_finn(Path("build") / "finn")
    export = json.loads((out / EXPORT_FILE).read_text())
    spec = load_spec(out)
    accel = spec.data
    student, _ = load_student(Path(export["run"]) / STUDENT_FILE)
    t0 = time.perf_counter()
    states = episode_states(export["env_id"], StudentPolicy(student), n_states)
    with torch.no_grad():
        if student.spec.discrete:
            reference = student.act(states)
        else:
            reference = student.actor(torch.as_tensor(states)).numpy()
    output_scale, output_bias = accel["action"].get("output_scale"), accel["action"].get("output_bias")
    if output_scale is not None:
        output_scale = np.asarray(output_scale, dtype=np.float64)  # one per action, or one for all
    logit_step = student_output_scale(student, states) if student.spec.discrete else None
    step = output_scale if output_scale is not None else np.float64(0.0)
    from hw_build.accel_spec import board_file_mismatches

    board = board_file_mismatches(out)
    levels: list[dict[str, Any]] = [
        {"level": "0", "name": "board files = what the FINN graph makes", "agreement": 0.0 if board else 1.0,
         "files": ["accel.json", "weights.npz", "finn_settings.json"], "mismatches": board[:50]},
        {"level": "1", "name": "Brevitas student (PyTorch)", "agreement": 1.0}]
    integer_input = spec.input_transform["kind"] == "quantize"
    if integer_input:
        codes = spec.preprocess(states)
        with torch.no_grad():
            brevitas_codes = student.input_codes(torch.as_tensor(states)).numpy()
        levels.append({"level": "1q", "name": "host input quantizer vs Brevitas codes",
                       "agreement": float((codes == brevitas_codes).all(axis=1).mean())})
    for label, name, rel, output in LEVELS:
        fed = codes if integer_input and output == "hardware" else states
        raw = execute_batch(out / rel, fed)
        kind = output if output == "logits" else ("labels" if student.spec.discrete else "integers")
        if kind == "labels" and spec.argmax_on_host:  # the fabric's integer logits; the host's argmax (IMPL=rtl)
            values = spec.action_from_output(raw)
        else:
            values = _level_actions(student.spec.discrete, raw, kind,
                                    logit_step if student.spec.discrete else output_scale, output_bias)
        entry: dict[str, Any] = {"level": label, "name": name, "graph": rel}
        if student.spec.discrete:
            entry["agreement"] = float((values == reference).mean())
        else:
            diff = np.abs(values - reference).max(axis=1)
            entry["max_abs_diff"] = float(diff.max())
            within = np.abs(values - reference) <= np.maximum(step, 1e-5) * 1.001
            entry["agreement"] = float(within.all(axis=1).mean())
        levels.append(entry)
    notes: list[str] = []
    levels += rtl_levels(out, codes if integer_input else spec.preprocess(states), notes)
    ok = all(level["agreement"] == 1.0 for level in levels)
    record = {"format_version": 2, "design": design, "env_id": export["env_id"], "n_states": len(states),
              "states": "real episodes driven by the student (seeds 50,000,000..)",
              "comparison": "exact actions, ties to the lowest index" if student.spec.discrete else
                            f"action values within one output step ({np.round(step, 6).tolist()})",
              "levels": levels, "notes": notes, "passed": ok, "wall_s": round(time.perf_counter() - t0, 2)}
    atomic.write_json(out / VERIFY_FILE, record)
    for level in levels:
        print(f"  level {level['level']:<2}: {level['name']:<46} agreement {100 * level['agreement']:7.3f} %")
    for note in notes:
        print(f"  note: {note}")
    print(f"verification of {design} on {len(states):,} states from real episodes: "
          f"{'PASSED' if ok else 'FAILED'} ({record['wall_s']:.1f} s); {out / VERIFY_FILE}")
    if board:
        raise FlowError(f"verification of {design} failed: the files the board loads differ from what the FINN graph "
                        f"makes ({'; '.join(board[:3])}{'; ...' if len(board) > 3 else ''}): rerun make estimate "
                        f"DESIGN={design} (see {out / VERIFY_FILE})")
    if not ok:
        worst = min(levels, key=lambda lv: lv["agreement"])
        raise FlowError(f"verification of {design} failed: {worst['name']} agrees on only "
                        f"{100 * worst['agreement']:.3f} % of the states (see {out / VERIFY_FILE})")
    return record


def rtl_levels(out: Path, fed: np.ndarray, notes: list[str]) -> list[dict[str, Any]]:
    """Level 4 entries (one per simulated RTL layer) on the accelerator inputs ``fed``; what is
    skipped goes to ``notes``."""
    from hw_build.compile import HW_SOURCES
    from hw_build.rtlsim import rtlsim_layers, verilator

    codegen = out / "intermediate_models" / "step_hw_codegen.onnx"
    if not codegen.exists() or not (out / HW_SOURCES).is_dir():
        notes.append("level 4 (RTL simulation) skipped: no generated sources (make codegen IMPL=rtl, then make verify)")
        return []
    from qonnx.core.modelwrapper import ModelWrapper

    from hw_build.rtlsim import TIE_OFFS

    ops = [n.op_type for n in ModelWrapper(str(codegen)).graph.node]
    if not any(op in TIE_OFFS for op in ops):
        notes.append(f"level 4 (RTL simulation) skipped: no layer of this design has RTL the harness drives "
                     f"({', '.join(ops)}; rebuild with make codegen IMPL=rtl)")
        return []
    try:
        verilator()
    except FlowError as exc:
        notes.append(f"level 4 (RTL simulation) skipped: {exc}")
        return []
    report = rtlsim_layers(out / "intermediate_models" / "step_convert_to_hw.onnx", codegen, fed,
                           Path("build") / "rtlsim" / out.name, sources=out / HW_SOURCES)
    levels = [{"level": "4", "name": f"{r['layer']} RTL simulation (Verilator)", "agreement": r["agreement"],
               "sim_cycles_per_frame": r["sim_cycles_per_frame"], "finn_estimated_cycles": r["finn_estimated_cycles"]}
              for r in report["layers"] if r["covered"]]
    levels += [{"level": "4", "name": f"{c['layers'][0]} … {c['layers'][-1]} connected (Verilator)",
                "agreement": c["agreement"], "sim_latency_cycles": c["sim_latency_cycles"]} for c in report["chains"]]
    skipped = [f"{r['layer']} ({r['why']})" for r in report["layers"] if not r["covered"]]
    if skipped:
        notes.append("level 4 does not cover " + "; ".join(skipped))
    if any(r["covered"] for r in report["layers"]):
        from hw_build.stitch import STITCHED_SUMMARY_KEYS, stitched_rtlsim

        clock_ns = float(json.loads((out / "accel.json").read_text()).get("clock_ns") or 10.0)
        s = stitched_rtlsim(out, fed, Path("build") / "rtlsim" / out.name / "stitched", clock_ns=clock_ns)
        what = "whole partition" if s["whole_partition"] else "RTL prefix"
        levels.append({"level": "4b", "name": f"stitched {what}, FIFOs and converters (Verilator)",
                       "agreement": min(s["agreement_python"], 1.0 if s["agreement_emulator"] is None
                                        else s["agreement_emulator"]),
                       "sim_cycles_per_frame": s["sim_cycles_per_frame"], "sim_latency_cycles": s["sim_latency_cycles"],
                       "stitched": {k: v for k, v in s.items() if k in STITCHED_SUMMARY_KEYS}})
        if not s["whole_partition"]:
            notes.append("level 4b stops before " + ", ".join(f"{r['layer']} ({r['why']})" for r in s["not_simulated"][:1]))
    return levels
