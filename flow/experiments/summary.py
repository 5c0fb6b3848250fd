"""Results at a glance: one entry per environment of every committed results table.

``make summary`` (``python -m flow summary``) reads the committed tables
(``docs/results/<env>/qpd_table.json``) and writes ``docs/results/summary.json`` and
``summary.md``. Nothing is run: the summary is a function of the committed JSON, so it
re-renders byte for byte (a test checks it).

Per environment, over every row of its table whose student the fabric holds (QPD, direct
distillation, float distillation + PTQ, QAT PPO; sizes are *deployed* bits, the architecture
bound of ``make cost``, against the teacher's float actor bits):

- ``smallest_keeping``: the smallest student that keeps the teacher on every seed, by the paired
  test where the table has the teacher's per-episode returns (else by the one-std rule, and the
  entry says so); None where no row does;
- ``best_within_half_percent``: among students at ≤ 0.5 % of the teacher's bits, the one that
  keeps the teacher on the most seeds, then with the highest mean return; None where none is
  that small.

Both choices are made on the grids' evaluation episodes (seeds 1000–1099). Where ``make
summary-fresh`` has filed the chosen student's returns on fresh episodes (``summary_fresh.json``,
:mod:`flow.experiments.summary_fresh`), the entry reports those (``fresh_seeds`` true, the
evaluation-seed figures under ``selected_on``); elsewhere it reports the evaluation-seed figures
and says so.

The committed frontiers of the same environment and teacher (``docs/results/<env>/*/frontier.json``)
add their rows as candidates where they ran at least :data:`MIN_GRID_SEEDS` seeds (a one-seed
frontier row is not a claim); each entry names the grid it comes from (``source``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from training import atomic

#: The headline bound: a student at most 0.5 % of the teacher's float actor bits.
HALF_PERCENT = 0.005
SUMMARY_JSON, SUMMARY_MD = "summary.json", "summary.md"
#: Seeds a frontier's row needs to be a candidate (the tables' own count).
MIN_GRID_SEEDS = 3


def seeds_kept(row: dict[str, Any]) -> tuple[int, str]:
    """Seeds keeping the teacher by the strictest test the row holds, and the test's name."""
    if row.get("seeds_keeping_teacher_paired") is not None:
        return int(row["seeds_keeping_teacher_paired"]), "paired"
    return int(row["seeds_keeping_teacher"]), "one-std"


def _row_trials(data: dict[str, Any], row: dict[str, Any], source: str, **match: Any) -> list[str]:
    """The ``<source>/<key>`` names of a grid row's trials, in seed order."""
    recs = [t for t in data.get("trials", []) if t["method"] == row["method"] and t.get("bits") == row["bits"]
            and all(t.get(k) == v for k, v in match.items())]
    return [f"{source}/{t['key']}" for t in sorted(recs, key=lambda t: t["seed"])]


def table_candidates(data: dict[str, Any], source: str = "qpd_table") -> list[dict[str, Any]]:
    """Every row of a ``qpd_table.json`` whose student has a hardware cost, as summary entries."""
    from flow.experiments.hardware import arch_key, layer_options, row_cost
    from training.students.student import student_act_bits

    settings, teacher = data["settings"], data["teacher"]
    hidden, conv, input_bits = settings["hidden"], settings.get("conv") or (), settings.get("input_bits", 8)
    distill = settings.get("distill_settings")
    layers = layer_options(distill)
    out = []
    for row in data["rows"]:
        if row.get("bits") is None:
            continue
        act_bits = student_act_bits(row["bits"], (distill or {}).get("act_bits"))
        cost = row_cost(data.get("hardware"), row["method"], hidden, row["bits"], input_bits, conv, act_bits, **layers)
        if cost is None:
            continue
        student = arch_key(hidden, row["bits"], act_bits, input_bits, conv, **layers)
        out.append(_candidate(row, student, cost, teacher, source, _row_trials(data, row, source)))
    return out


def _candidate(row: dict[str, Any], student: str, cost: dict[str, Any], teacher: dict[str, Any], source: str,
               trials: list[str]) -> dict[str, Any]:
    """A grid row as a summary entry: its student's name and cost, the seeds keeping the teacher."""
    kept, test = seeds_kept(row)
    return {"method": row["method"], "student": student,
            "deployed_bits": int(cost["deployed_bits"]), "teacher_bits": int(teacher["size_bits"]),
            "seeds": len(row["seeds"]), "seeds_kept_paired": kept if test == "paired" else None,
            "seeds_kept": kept, "test": test,
            "mean_return": round(float(row["mean_return"]), 2), "teacher_return": round(float(teacher["mean_return"]), 2),
            "est_lut": round(float(cost["LUT"])), "fresh_seeds": False, "source": source, "trials": trials}


def frontier_candidates(data: dict[str, Any], source: str = "frontier") -> list[dict[str, Any]]:
    """Every row of a ``frontier.json`` with :data:`MIN_GRID_SEEDS` seeds or more and a hardware cost,
    as summary entries (as :func:`table_candidates`)."""
    from flow.experiments.frontier import _row_cost, row_conv
    from flow.experiments.hardware import arch_key, layer_options
    from training.students.student import student_act_bits

    settings, teacher = data["settings"], data["teacher"]
    distill = settings.get("distill_settings") or {}
    out = []
    for row in data["rows"]:
        cost = _row_cost(data, row)
        if cost is None or len(row["seeds"]) < MIN_GRID_SEEDS:
            continue
        conv = row_conv(row, settings)
        student = arch_key((row["width"],) * settings["depth"], row["bits"], student_act_bits(row["bits"], distill.get("act_bits")),
                           distill.get("input_bits", 8), conv, **layer_options(distill))
        trials = _row_trials(data, row, source, width=row["width"], channels=row.get("channels"))
        out.append(_candidate(row, student, cost, teacher, source, trials))
    return out


def summarise_table(data: dict[str, Any], extra: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """One environment's summary entry from its ``qpd_table.json`` data (and ``extra`` candidates
    from other grids of the same teacher, see :func:`frontier_candidates`)."""
    rows = table_candidates(data) + list(extra or [])
    keeping = [r for r in rows if r["seeds_kept"] == r["seeds"]]
    small = [r for r in rows if r["deployed_bits"] <= HALF_PERCENT * r["teacher_bits"]]
    smallest = min(keeping, key=lambda r: (r["deployed_bits"], -r["mean_return"])) if keeping else None
    best = max(small, key=lambda r: (r["seeds_kept"], r["mean_return"])) if small else None
    smallest, best = _with_ties(smallest, keeping), _with_ties(best, small)
    teacher = {"run": data["teacher"]["run"], "algo": data["teacher"].get("algo"),
               "mean_return": round(float(data["teacher"]["mean_return"]), 2), "bits": int(data["teacher"]["size_bits"]),
               **({"weights_sha256": data["teacher"]["weights_sha256"]} if "weights_sha256" in data["teacher"] else {})}
    return {"env_id": data["env_id"], "teacher": teacher,
            "smallest_keeping": smallest, "best_within_half_percent": best, "candidates": len(rows),
            "source": data.get("command", "")}


def _with_ties(choice: dict[str, Any] | None, rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """``choice`` with ``tied_with``: the other methods whose rows match it in deployed bits, seeds
    kept and mean return (the choice is then the first in table order, which says nothing), and
    ``tied_trials``, their trials by method (``make summary-fresh`` replays them too)."""
    if choice is None:
        return None
    same = ("deployed_bits", "seeds_kept", "mean_return")
    ties = {r["method"]: r["trials"] for r in rows if r is not choice and all(r[k] == choice[k] for k in same)}
    return {**choice, "tied_with": sorted(ties), "tied_trials": {m: ties[m] for m in sorted(ties)}}


def summarise(results_dir: Path, fresh: bool = True) -> dict[str, Any]:
    """The summary of every committed table under ``results_dir``, keyed by env id; with ``fresh``,
    each choice reports its fresh-seed figures where ``summary_fresh.json`` has them."""
    from flow.experiments.summary_fresh import CHOICES, load_fresh, report_fresh

    filed = load_fresh(results_dir)["envs"] if fresh else {}
    out = {}
    for path in sorted(results_dir.glob("*/qpd_table.json")):
        data = json.loads(path.read_text())
        means = {f"qpd_table/{t['key']}": t["mean_return"] for t in data.get("trials", [])}
        extra = []
        for grid in sorted(path.parent.glob("*/frontier.json")):
            frontier = json.loads(grid.read_text())
            if frontier["env_id"] == data["env_id"] and _same_teacher(frontier["teacher"], data["teacher"]):
                source = str(grid.parent.relative_to(path.parent))
                extra += frontier_candidates(frontier, source)
                means.update({f"{source}/{t['key']}": t["mean_return"] for t in frontier.get("trials", [])})
        entry = summarise_table(data, extra)
        if fresh:
            entry.update({c: report_fresh(entry[c], filed.get(data["env_id"]), means) for c in CHOICES})
        entry["table"] = str(path.relative_to(results_dir))
        out[data["env_id"]] = entry
    return out


def _same_teacher(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return a.get("run") == b.get("run") and round(float(a["mean_return"]), 2) == round(float(b["mean_return"]), 2)


def _cell(entry: dict[str, Any] | None) -> str:
    if entry is None:
        return "none"
    pct = 100 * entry["deployed_bits"] / entry["teacher_bits"]
    test = "paired" if entry["test"] == "paired" else "one-std rule"
    where = "" if entry.get("source", "qpd_table") == "qpd_table" else f" [{entry['source']}]"
    also = ""
    if entry.get("tied_with"):
        fresh = entry.get("tied_fresh") or {}
        also = f" (tied with {', '.join(entry['tied_with'])}" + (
            "; on fresh seeds " + ", ".join(f"{m} {f['mean_return']:,.2f}, {f['seeds_kept_paired']}/{entry['seeds']}"
                                           for m, f in fresh.items()) if fresh else "") + ")"
    head = f"{entry['method']}{also} {entry['student']}: {entry['deployed_bits']:,} bits ({pct:.2f} %), "
    if entry.get("fresh_seeds"):
        chosen = entry["selected_on"]
        returns = (f"**fresh seeds: {entry['mean_return']:,.2f} (teacher {entry['teacher_return']:,.2f}), "
                   f"{entry['seeds_kept']}/{entry['seeds']} (paired)**; chosen on evaluation seeds: "
                   f"{chosen['mean_return']:,.2f}, {chosen['seeds_kept']}/{entry['seeds']}")
    else:
        why = f": {entry['fresh_note']}" if entry.get("fresh_note") else ""
        returns = (f"{entry['mean_return']:,.2f}, {entry['seeds_kept']}/{entry['seeds']} ({test}; evaluation seeds, "
                   f"not re-evaluated on fresh ones{why})")
    return f"{head}{returns}, est. {entry['est_lut']:,} LUT{where}"


def markdown(summary: dict[str, Any]) -> str:
    """``summary.md``: one row per environment."""
    lines = [
        "# Results at a glance",
        "",
        "Made by `make summary` from the committed tables (`docs/results/<env>/qpd_table.json`) and the frontiers "
        f"of the same teacher with at least {MIN_GRID_SEEDS} seeds (their folder in brackets); nothing is run. "
        "Sizes are deployed bits (every weight and threshold at the width the accelerator stores it, the host's "
        "input stage included) against the teacher's float actor bits; est. LUT are FINN estimates, not synthesised. "
        "A seed keeps the teacher by the paired test of its 100 episodes against the teacher's on the same seeds "
        "(the one-std rule where the table predates it). Each choice is made on the grids' evaluation seeds "
        "(1000–1099); `make summary-fresh` then plays every seed's student and the teacher on 100 fresh episodes "
        "(2000–2099), and where it has, the figures in bold are those fresh ones: the claim. A choice that keeps "
        "the teacher on fewer seeds there is reported as it is, not replaced by another.",
        "",
        "| environment | teacher (return, bits) | smallest student keeping the teacher on every seed | "
        "best student within 0.5 % of the teacher's bits |",
        "| --- | --- | --- | --- |",
    ]
    for env_id, entry in summary.items():
        t = entry["teacher"]
        lines.append(f"| {env_id} | {t['mean_return']:,.2f}, {t['bits']:,} | {_cell(entry['smallest_keeping'])} | "
                     f"{_cell(entry['best_within_half_percent'])} |")
    return "\n".join(lines) + "\n"


def write_summary(results_dir: Path) -> dict[str, Any]:
    """Write ``summary.json`` and ``summary.md`` into ``results_dir``; return the summary."""
    summary = summarise(results_dir)
    atomic.write_json(results_dir / SUMMARY_JSON, summary)
    atomic.write_text(results_dir / SUMMARY_MD, markdown(summary))
    return summary
