"""``python -m flow compare`` (``make compare``): the board's comparison, plus the references
only a workstation has.

The host program compares the accelerator with what the board can run: the numpy integer
reference and the float teacher. On a workstation two more references exist, and both need
packages the board cannot install: FINN's own Python execution of the hardware-layer graph
(the independent reference; it shares no code with the emulated fabric) and the Brevitas
student itself. They come from here, above the stages, so that host/ imports nothing of ours.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from host.cli import FINN_GRAPH, SoftwareReferences


#: The verdict's reference on a workstation: it is fed the float observations, so it shares nothing
#: with the host's input quantizer (a wrong quantizer in accel.json makes the hardware disagree with it).
BREVITAS = "Brevitas student"


def finn_reference_name(spec: Any) -> str:
    """The FINN graph's column: for an integer-input design it is fed by the host's input quantizer,
    so it cannot catch a fault there (the Brevitas student can)."""
    kind = spec.input_transform["kind"]
    return "FINN hardware-layer graph" + {"quantize": " (fed by the host quantizer)",
                                          "binary": " (fed the binary frames)"}.get(kind, " (fed float observations)")


def brevitas_student(design: Path, spec: Any) -> tuple[Any, str | None]:
    """``(policy, None)``: the Brevitas student of the design's run; ``(None, why)`` where it is not here."""
    from training.qpd.distill import STUDENT_FILE, StudentPolicy, load_student

    export = design / "export.json"
    if not export.exists():
        return None, "no export.json beside the design"
    run = Path(json.loads(export.read_text())["run"])
    if not (run / STUDENT_FILE).exists():
        return None, f"the student checkpoint {run / STUDENT_FILE} is not here"
    student, _ = load_student(run / STUDENT_FILE)
    if spec.discrete:
        return StudentPolicy(student), None
    action = spec.data["action"]
    return StudentPolicy(student, np.asarray(action["low"]), np.asarray(action["high"])), None


def workstation_references(design: Path, spec: Any) -> SoftwareReferences:
    """FINN's execution of the design's hardware-layer graph (fed by the host's input transform)
    as the independent reference, and the Brevitas student beside the float teacher."""
    from hw_build.accel_spec import FINAL_MODEL, board_file_mismatches

    refs = SoftwareReferences(notes=[])
    if (design / "intermediate_models" / FINAL_MODEL).exists():
        refs.problems = board_file_mismatches(design)  # what the board loads must be what FINN compiled
    else:
        refs.notes.append("the design's files were not cross-checked with its FINN graph (not here)")
    graph = design / FINN_GRAPH
    if graph.exists():
        refs.independent = finn_graph_reference(graph, spec)
    else:
        refs.independent_missing = f"{graph} is not here"
    add_brevitas_reference(refs, design, spec)
    return refs


def finn_graph_reference(graph: Path, spec: Any) -> tuple[str, Any]:
    """FINN's execution of a hardware-layer graph, fed by the host's input quantizer, as a named reference."""
    from hw_build.execution import execute_batch

    return finn_reference_name(spec), lambda obs: spec.action_from_output(execute_batch(graph, spec.preprocess(obs)))


def add_brevitas_reference(refs: SoftwareReferences, source: Path, spec: Any) -> None:
    """The Brevitas student of ``source`` (a design or a policy package) as the verdict's reference, or a note why not."""
    student, why = brevitas_student(source, spec)
    if student is not None:
        refs.extra[BREVITAS] = student
        refs.verdict_reference = BREVITAS
    else:
        refs.notes.append(f"Brevitas student skipped: {why}")


def policy_references(package: Path, spec: Any, finn: bool = True) -> SoftwareReferences:
    """The references of a student loaded into a writable design (``make compare DESIGN= RUN=``): FINN's
    execution of the student's own hardware-layer graph (compiled by ``make load-policy``, fed by its input
    quantizer; ``finn=False`` leaves it out) and its Brevitas student, the verdict's reference."""
    from hw_build.load_policy import _work_dir

    refs = SoftwareReferences(notes=[])
    graph = _work_dir(spec.folder.name, package.name) / FINN_GRAPH
    if not finn:
        refs.independent_missing = "left out (make board-table judges against the Brevitas student, FINN's batch-1 execution is slow)"
    elif graph.exists():
        refs.independent = finn_graph_reference(graph, spec)
    else:
        refs.independent_missing = f"{graph} is not here (make load-policy compiles it)"
    add_brevitas_reference(refs, package, spec)
    return refs
