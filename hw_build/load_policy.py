"""``make load-policy``: a student prepared for a writable design, in the design's memory layout.

The student (a run folder, or an exported design folder) is compiled by FINN exactly as the design
was (``WEIGHTS=runtime``, the design's folding file, its IMPL and clock) in a work folder
(``build/policies/<design>/<name>/``); its architecture signature must be the design's (the first
difference is refused in one sentence); its weights and thresholds are then laid out in the
design's memories (:mod:`host.design.policy_memory`, FINN's own word layout) and written as a
policy package (:mod:`host.design.policy_package`) in ``<design>/policies/<name>/``, which
``make compare DESIGN=<design> POLICY=<name>`` (and ``board-eval`` on the board) writes into the
accelerator before its episodes.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from training import atomic
from training.errors import FlowError


def _work_dir(design: str, name: str) -> Path:
    return Path("build") / "policies" / design / name


def _student_source(work: Path, run: str | None, policy: str | None) -> tuple[str, dict[str, Any]]:
    """Put the student's QONNX and export record into ``work``; return its default name and export record."""
    from hw_build.design import EXPORT_FILE, QONNX_FILE, design_dir
    from hw_build.export import export_design

    if (run is None) == (policy is None):
        raise FlowError("make load-policy needs one student: RUN=<run folder> or POLICY=<exported design folder>")
    if run is not None:
        record = export_design(run, Path(run).name, out=work, n_states=200)
        return Path(run).name, record
    folder = Path(policy)
    if not folder.is_dir():
        folder = design_dir(policy)
    if not (folder / QONNX_FILE).is_file() or not (folder / EXPORT_FILE).is_file():
        raise FlowError(f"{folder} is not an exported design folder (no {QONNX_FILE} and {EXPORT_FILE}): make export first")
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    for name in (QONNX_FILE, EXPORT_FILE, "teacher.npz"):
        if (folder / name).exists():
            shutil.copyfile(folder / name, work / name)
    return folder.name, json.loads((folder / EXPORT_FILE).read_text())


def compile_student(design: str, run: str | None = None, policy: str | None = None, name: str | None = None,
                    quiet: bool = True) -> tuple[Path, dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Compile a student as the writable design ``design`` was built; return the work folder, the
    design's accel.json data, the student's spec and its arrays (raises :class:`FlowError` where the
    design is not writable or the student's signature differs)."""
    from host.design.spec import load_spec
    from hw_build.accel_spec import build_accel_spec
    from hw_build.compile import FOLDING_CONFIG, build_config, check_all_in_hardware, run_build
    from hw_build.design import ACCEL_FILE, ESTIMATE_FILE, QONNX_FILE, existing_design_dir
    from hw_build.finn_env import prepare_finn
    from hw_build.runtime_weights import first_mismatch

    out = existing_design_dir(design, needs=ACCEL_FILE)
    spec = load_spec(out)
    runtime = spec.data.get("runtime_weights")
    if runtime is None:
        raise FlowError(f"design {design} is not writable: build it with make estimate DESIGN={design} WEIGHTS=runtime")
    built = json.loads((out / ESTIMATE_FILE).read_text())
    prepare_finn(Path("build") / "finn")
    source = name or Path(run or policy or "").name
    work = _work_dir(design, source)
    default_name, _ = _student_source(work, run, policy)
    cfg = build_config(work, "estimate", None, built["clock_ns"], input_mode="integer", impl=built.get("impl", "hls"),
                       mvau_wwidth_max=built.get("mvau_wwidth_max", 36), folding_config=out / FOLDING_CONFIG,
                       weights="runtime")
    run_build(work / QONNX_FILE, cfg)
    check_all_in_hardware(work)
    student, arrays = build_accel_spec(work, built["clock_ns"])
    mismatch = first_mismatch(runtime["signature"], student["runtime_weights"]["signature"])
    if mismatch is not None:
        raise FlowError(f"student {name or default_name} does not fit writable design {design}: {mismatch}")
    return work, spec.data, student, arrays


def prepare_policy(design: str, run: str | None = None, policy: str | None = None, name: str | None = None,
                   force: bool = False, quiet: bool = False) -> Path:
    """``make load-policy``: the student's policy package in ``<design>/policies/<name>/``; returns its folder.

    A package already there for the same student checkpoint and design signature is kept unless ``force``."""
    from host.design.policy_memory import dat_text, layer_words, words_sha256
    from host.design.policy_package import DAT_DIR, POLICIES_DIR, POLICY_FILE, POLICY_FORMAT_VERSION
    from hw_build.design import existing_design_dir, sha256_file
    from hw_build.design import ACCEL_FILE

    name = name or Path(run or policy or "").name
    if not name or "/" in name or name.startswith("."):
        raise FlowError(f"a policy needs a plain name, got {name!r}")
    out = existing_design_dir(design, needs=ACCEL_FILE)
    target = out / POLICIES_DIR / name
    if not force and (target / POLICY_FILE).is_file() and run is not None:
        old = json.loads((target / POLICY_FILE).read_text())
        accel = json.loads((out / ACCEL_FILE).read_text())
        checkpoint = Path(run) / "student.pt"
        if (checkpoint.is_file() and old.get("student", {}).get("checkpoint_sha256") == sha256_file(checkpoint)
                and old.get("signature_sha256") == (accel.get("runtime_weights") or {}).get("signature_sha256")):
            if not quiet:
                print(f"policy {name} is prepared for {design} already: {target}")
            return target
    work, design_data, student, arrays = compile_student(design, run, policy, name, quiet=quiet)
    layers = {layer["name"]: layer for layer in student["layers"]}
    tmp = target.with_name(f".{name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / DAT_DIR).mkdir(parents=True)
    memories, hashed = [], []
    for memory in design_data["runtime_weights"]["memories"]:
        if memory["layer"] not in layers:
            raise FlowError(f"student {name} has no layer {memory['layer']} (its layers: {', '.join(layers)})")
        words = layer_words(layers[memory["layer"]], arrays)
        atomic.write_text(tmp / DAT_DIR / memory["dat_file"], dat_text(words))
        memories.append({**{k: memory[k] for k in ("layer", "ip", "offset", "dat_file", "words")},
                         "sha256": sha256_file(tmp / DAT_DIR / memory["dat_file"])})
        hashed.append((memory["layer"], words))
    export = json.loads((work / "export.json").read_text())
    record = {"format_version": POLICY_FORMAT_VERSION, "kind": "runtime policy", "name": name, "design": design,
              "signature_sha256": design_data["runtime_weights"]["signature_sha256"],
              "student": {"run": export.get("run"), "label": export.get("student"),
                          "checkpoint_sha256": export.get("student_checkpoint_sha256"),
                          "qonnx_sha256": export.get("qonnx_sha256")},
              "input": {"transform": student["input"]["transform"]},
              "deployed_bits": student["deployed"]["total_bits"], "memories": memories,
              "policy_sha256": words_sha256(hashed),
              "made_by": "make load-policy: the student compiled by FINN as the design was (WEIGHTS=runtime, its "
                         "folding), laid out in FINN's runtime-weights word layout"}
    atomic.write_json(tmp / POLICY_FILE, record)
    for extra in ("export.json", "teacher.npz"):
        if (work / extra).exists():
            shutil.copyfile(work / extra, tmp / extra)
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    if not quiet:
        total = sum(m["words"] for m in memories)
        print(f"policy {name} prepared for writable design {design}: its signature matches; {total:,} words in "
              f"{len(memories)} memories ({sum((target / DAT_DIR / m['dat_file']).stat().st_size for m in memories):,} "
              f"bytes of .dat files), policy sha256 {record['policy_sha256'][:16]}…\n  package: {target}\n"
              f"  run it: make compare DESIGN={design} POLICY={name}")
    return target
