"""``make board-table``: every student of a grid folder on one writable design, with hardware columns.

One writable design (``make estimate WEIGHTS=runtime``) serves every student of its architecture.
For each trial of the grid (``<dir>/trials/*.json``) this finds the student's run folder (recreating
it from its record where it is missing, :mod:`flow.board_students`), prepares its policy package
(``make load-policy``: compiled as the design was, its signature checked) and runs the comparison
episodes with the policy written into the accelerator (``make compare DESIGN= POLICY=``). A
student whose architecture is not the design's is listed as skipped with the reason, without
being compiled where its record already says so. Writes ``board_table.md`` and ``board_table.json``
beside the grid (or ``--out``); exits 1 when a compared student's hardware disagrees with its
Brevitas student.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from training import atomic
from training.errors import FlowError

METHOD_NAMES = {"ptq": "PTQ of the teacher", "qat-ppo": "QAT PPO from scratch", "float-ptq": "float distillation, then PTQ",
                "direct": "distillation at target bits (no transition)", "qpd": "QPD", "float": "float distillation"}


def design_architecture(signature: dict[str, Any]) -> dict[str, Any]:
    """The hidden widths and weight and activation bits a writable design's signature fixes."""
    from host.design.schema import datatype_range

    mvaus = [layer for layer in signature["layers"] if layer["op"] == "MVAU"]
    thresholds = [layer for layer in signature["layers"] if layer["op"] == "Thresholding"]
    return {"hidden": [layer["mh"] for layer in mvaus[:-1]],
            "weight_bits": sorted({datatype_range(layer["weight_dtype"])[0] for layer in mvaus}),
            "act_bits": sorted({datatype_range(layer["output_dtype"])[0] for layer in thresholds})}


def record_mismatch(record: dict[str, Any], arch: dict[str, Any]) -> str | None:
    """Why a trial's record alone shows its student is not of the design's architecture (None: compile and see)."""
    from flow.board_students import STUDENT_METHODS
    from flow.experiments.hardware import trial_settings
    from training.students.student import student_act_bits

    method = record["method"]
    if method not in STUDENT_METHODS:
        return ("it is the teacher's own architecture, quantized (not a student)" if method == "ptq"
                else "a float student: FINN compiles quantized students only")
    if record.get("bits") is None:
        return "a float student: FINN compiles quantized students only"
    hidden = list(record.get("hidden") or [])
    if hidden != arch["hidden"]:
        return f"hidden widths {hidden}, the design's are {arch['hidden']}"
    extra = trial_settings(record)
    bits = sorted({record["bits"], *(b for b in (extra.get("first_bits"), extra.get("last_bits")) if b)})
    if bits != arch["weight_bits"]:
        return f"weights at {'/'.join(map(str, bits))} bits, the design's at {'/'.join(map(str, arch['weight_bits']))}"
    act_bits = student_act_bits(record["bits"], extra.get("act_bits"))  # a grid may set them (make frontier ABITS=)
    if [act_bits] != arch["act_bits"]:
        return f"activations at {act_bits} bits, the design's at {'/'.join(map(str, arch['act_bits']))}"
    return None


def _compare(design: str, package: Path, backend: str, episodes: int, out: Path,
             board: str | None, keys: str | None) -> dict[str, Any]:
    from flow.api import compare_args
    from flow.cli import build_parser

    remote = ["--board", board, *(["--keys", keys] if keys else [])] if board else []
    args = build_parser().parse_args(["compare", "--design", design, "--backend", backend, "--episodes", str(episodes),
                                      "--policy", str(package), "--out", str(out), *remote])
    args.no_finn_reference = True  # the verdict is the Brevitas student's; FINN's batch-1 execution would dominate
    return compare_args(args).report


def _compare_once(design: str, package: Path, backend: str, episodes: int, out: Path,
                  board: str | None = None, keys: str | None = None) -> dict[str, Any]:
    """:func:`_compare`, or its report where this policy already ran these episodes on this design (a rerun resumes)."""
    previous = out / "compare.json"
    if previous.is_file():
        report = json.loads(previous.read_text())
        policy = json.loads((package / "policy.json").read_text())["policy_sha256"]
        if (report.get("design") == design and report.get("episodes") == episodes and report.get("backend") == backend
                and report.get("board") == board
                and (report.get("policy") or {}).get("policy_sha256") == policy):
            print(f"{package.name}: its comparison on {design} is done already ({previous})")
            return report
    return _compare(design, package, backend, episodes, out, board, keys)


def board_table(design: str, grid: Path, *, backend: str = "emulated", episodes: int | None = None,
                runs: Path | None = None, out: str | None = None, board: str | None = None,
                keys: str | None = None) -> int:
    """Run every matching student of ``grid`` on ``design``; write the table; return the exit code.

    ``backend="remote"``: the accelerator of a policy server (``make serve ALLOW_LOAD=1``) at
    ``board`` (``<host>:<port>``, with the CurveZMQ ``keys`` folder where it has them): each student's
    package is sent to it and written there before its episodes."""
    from flow.board_students import grid_records, rerun_difference, student_run
    from host.cli import resolve_design
    from host.design.spec import load_spec
    from hw_build.load_policy import prepare_policy

    if backend == "remote" and not board:
        raise FlowError("board-table BACKEND=remote needs BOARD=<host>:<port>, a server started with make serve ALLOW_LOAD=1")
    if backend != "remote":
        board = keys = None
    folder = resolve_design(design)
    spec = load_spec(folder)
    runtime = spec.data.get("runtime_weights")
    if runtime is None:
        raise FlowError(f"design {design} is not writable: build it with make estimate DESIGN={design} WEIGHTS=runtime")
    arch = design_architecture(runtime["signature"])
    records = grid_records(grid)
    if not records:
        raise FlowError(f"{grid}/trials holds no trial records")
    env_ids = {r["env_id"] for r in records}
    if env_ids != {spec.env_id}:
        raise FlowError(f"grid {grid} is of {', '.join(sorted(env_ids))}, design {design} of {spec.env_id}")
    runs = runs or grid / "runs"
    rows: list[dict[str, Any]] = []
    fabrics: set[str | None] = set()
    for record in records:
        row = {"key": record["key"], "method": record["method"], "bits": record.get("bits"), "seed": record["seed"],
               "software_return": record.get("mean_return"), "software_std": record.get("std_return")}
        why = record_mismatch(record, arch)
        rerun = None
        if why is None:
            try:
                run = student_run(record, runs, strict=False)
                rerun = rerun_difference(run)
                package = prepare_policy(folder.name, run=str(run), name=record["key"], quiet=True)
            except FlowError as exc:
                why = str(exc)
        if why is not None:
            rows.append({**row, "status": "skipped", "reason": why})
            print(f"{record['key']}: skipped: {why}", flush=True)
            continue
        if rerun is not None:  # the committed student could not be recreated: its rerun, marked as such
            row.update(software_return=rerun["mean_return"], software_std=rerun["std_return"],
                       record_return=record.get("mean_return"), rerun=f"rerun, not the committed student: {rerun['differs']}")
        n = episodes or int(record.get("episodes") or 100)
        report = _compare_once(folder.name, package, backend, n, folder / f"board-table-{backend}" / record["key"], board, keys)
        fabrics.add(report.get("fabric"))
        brevitas = report["software"].get("Brevitas student", {})
        hw = report["hardware"]
        rows.append({**row, "status": "compared", "policy": record["key"],
                     "policy_sha256": report["policy"]["policy_sha256"], "episodes": n,
                     "hardware_return": hw["mean_return"], "hardware_std": hw["std_return"],
                     "agreement_with_brevitas": brevitas.get("step_agreement"), "steps": sum(hw["steps"]) if
                     isinstance(hw.get("steps"), list) else hw.get("steps"),
                     "identical_returns": brevitas.get("identical_returns"), "verdict": report["verdict"]["passed"],
                     "verdict_line": report["verdict"]["line"]})
    record = {"format_version": 1, "design": folder.name, "env_id": spec.env_id, "backend": backend, "grid": str(grid),
              "architecture": arch, "signature_sha256": runtime["signature_sha256"],
              "estimate": _estimate_summary(folder), "rows": rows,
              "board": board, "fabric": ", ".join(sorted(f for f in fabrics if f)) or None,
              "command": f"make board-table DESIGN={folder.name} DIR={grid}" + (f" BACKEND={backend}" if backend != "emulated" else "")
              + (f" BOARD={board}" if backend == "remote" else "")}
    stem = Path(out) if out else grid / "board_table"
    atomic.write_json(stem.with_suffix(".json"), record)
    atomic.write_text(stem.with_suffix(".md"), render(record))
    compared = [r for r in rows if r["status"] == "compared"]
    failed = [r["key"] for r in compared if not r["verdict"]]
    print(f"board table: {len(compared)} students on design {folder.name} ({backend}), {len(rows) - len(compared)} "
          f"skipped; written {stem.with_suffix('.md')} and .json")
    if failed:
        print(f"verdict: FAILED: the hardware disagrees with the Brevitas student for {', '.join(failed)}")
        return 1
    print(f"verdict: PASSED: every compared student's hardware actions are its Brevitas student's on every step"
          if compared else "verdict: nothing compared")
    return 0 if compared else 1


def _estimate_summary(folder: Path) -> dict[str, Any] | None:
    path = folder / "estimate.json"
    if not path.exists():
        return None
    est = json.loads(path.read_text())
    return {"resources": est.get("resources"), "estimated_latency_ns": est.get("estimated_latency_ns"),
            "target_fps": est.get("target_fps"), "writability_cost": est.get("writability_cost"),
            "figures": "FINN estimates (est.)"}


def _backend_words(record: dict[str, Any]) -> str:
    """What the backend was: the emulated fabric, the board's, or a policy server's (and which fabric it said it ran)."""
    if record["backend"] == "emulated":
        return " (the bit-exact emulated fabric, not silicon)."
    if record["backend"] == "remote":
        fabric = record.get("fabric") or "unknown"
        return (f" (a policy server at {record.get('board')}, whose fabric is **{fabric}**"
                + (": silicon)." if fabric == "pynq" else ", not silicon)." if fabric == "emulated" else ")."))
    return "."


def render(record: dict[str, Any]) -> str:
    """The board table as markdown."""
    arch = record["architecture"]
    lines = [f"# Board table: {record['env_id']} on one writable design",
             "",
             f"One accelerator, design `{record['design']}` ({'×'.join(map(str, arch['hidden']))} hidden, weights "
             f"{'/'.join(map(str, arch['weight_bits']))} bits, activations {'/'.join(map(str, arch['act_bits']))} bits; "
             f"signature {record['signature_sha256'][:12]}), every weight and threshold memory written over AXI-lite "
             f"before each student's episodes, read back and flushed. Backend: **{record['backend']}**"
             + _backend_words(record),
             "",
             "*Software return*: the grid's own record (mean over its evaluation episodes). *Hardware return*: the same "
             "episode seeds with the student loaded into the accelerator. *Agreement*: the accelerator's action against "
             "the student's Brevitas model (fed float observations) on every step of every episode.",
             ""]
    reruns = [r for r in record["rows"] if r.get("rerun")]
    if reruns:
        lines += ["*Rerun*: a student whose run folder was missing and whose rerun from its trial record does not "
                  "return the record's episodes (the code changed since); its row is the rerun's, software return "
                  "included, and says how it differs: " + "; ".join(f"{r['key']}: {r['rerun'].split(': ', 1)[1]} "
                  f"(record {r['record_return']:.2f})" for r in reruns) + ".", ""]
    est = record.get("estimate") or {}
    cost = est.get("writability_cost")
    if cost:
        w, f = cost["writable"], cost["fixed"]
        lines += [f"Cost of writability (FINN estimates, dataflow partition, target_fps {cost['target_fps']:,}): est. LUT "
                  f"{w['LUT']:,.0f} against {f['LUT']:,.0f} fixed, BRAM_18K {w['BRAM_18K']:,.0f} against "
                  f"{f['BRAM_18K']:,.0f}, latency {w['latency_us']:.2f} µs against {f['latency_us']:.2f} µs.", ""]
    lines += ["| student | method | bits | seed | software return | hardware return | agreement with Brevitas | "
              "policy sha256 | verdict |", "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- | --- |"]
    for r in record["rows"]:
        if r["status"] != "compared":
            continue
        lines.append(f"| {r['key']}{' (rerun)' if r.get('rerun') else ''} | {METHOD_NAMES.get(r['method'], r['method'])} | {r['bits']} | {r['seed']} | "
                     f"{r['software_return']:.2f} | {r['hardware_return']:.2f} ± {r['hardware_std']:.2f} | "
                     f"{100 * r['agreement_with_brevitas']:.2f} % | `{r['policy_sha256'][:12]}` | "
                     f"{'passed' if r['verdict'] else 'FAILED'} |")
    skipped = [r for r in record["rows"] if r["status"] != "compared"]
    if skipped:
        by_reason: dict[str, list[str]] = {}
        for r in skipped:
            by_reason.setdefault(r["reason"], []).append(r["key"])
        lines += ["", f"Skipped ({len(skipped)} trials of the grid), by reason:", ""]
        lines += [f"- {reason}: {', '.join(keys)}" for reason, keys in by_reason.items()]
    lines += ["", f"Made by: `{record['command']}`", ""]
    return "\n".join(lines)

