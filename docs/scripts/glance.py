"""Print the README's "Results at a glance" table from the committed QPD tables.

Usage: ``.venv/bin/python docs/scripts/glance.py [docs/results]``. The table is judged on
*deployed* bits (what the accelerator and the host's input stage store; the architecture
bound of ``make cost``), not on parameter bits. ``tests/test_docs.py`` checks that the README
holds exactly what this prints, so re-rendering a committed table without updating the README
fails the tests.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

TARGET = 0.005  # the headline: at most 0.5 % of the teacher's float actor bits


def keeps(row: dict[str, Any]) -> tuple[int, str]:
    """Seeds keeping the teacher by the strictest test the table holds, and which test that is
    (the summary's rule, :func:`flow.experiments.summary.seeds_kept`)."""
    from flow.experiments.summary import seeds_kept

    kept, test = seeds_kept(row)
    return kept, {"paired": "paired test", "one-std": "one-std rule"}[test]


def qpd_rows(data: dict[str, Any]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """Each QPD row with its architecture's hardware record (deployed bits, FINN estimates)."""
    from flow.experiments.hardware import row_cost

    settings = data["settings"]
    out = []
    for row in data["rows"]:
        if row["method"] != "qpd":
            continue
        cost = row_cost(data.get("hardware"), "qpd", settings["hidden"], row["bits"],
                        settings.get("input_bits", 8), settings.get("conv") or ())
        if cost is None:
            raise SystemExit(f"{data['env_id']}: the committed table has no deployed bits for QPD at "
                             f"{row['bits']} bits; re-render it with make render DIR=<its folder>")
        out.append((row, cost))
    return out


def student_label(data: dict[str, Any], row: dict[str, Any]) -> str:
    """``2×32 w3a3`` or ``c8-1x16 w2a2``."""
    from flow.experiments.hardware import arch_key
    from training.students.student import student_act_bits

    s = data["settings"]
    key = arch_key(s["hidden"], row["bits"], student_act_bits(row["bits"]), s.get("input_bits", 8), s.get("conv") or ())
    arch, _, widths = key.rpartition("-")
    return f"{arch.replace('x', '×') if not s.get('conv') else arch} {widths}"


def glance_row(data: dict[str, Any]) -> str:
    """One environment: the widest QPD student within 0.5 % (deployed) and whether it keeps the teacher."""
    teacher = data["teacher"]
    rows = qpd_rows(data)
    within = [(r, c) for r, c in rows if c["deployed_bits"] <= TARGET * teacher["size_bits"]]
    if not within:
        raise SystemExit(f"{data['env_id']}: no QPD student of the table is within 0.5 % of the teacher")
    row, cost = max(within, key=lambda rc: (rc[0]["bits"], rc[0]["mean_return"]))
    kept, test = keeps(row)
    n = len(row["seeds"])
    every = [(c["deployed_bits"], r["bits"], r, c) for r, c in rows if keeps(r)[0] == len(r["seeds"])]
    if every:
        bits, _, r2, c2 = min(every, key=lambda t: (t[0], -t[1]))
        smallest = f"{student_label(data, r2)}, {bits:,} ({100 * bits / teacher['size_bits']:.2f} %)"
    else:
        smallest = "none in the table"
    return (f"| {data['env_id']} | {teacher['mean_return']:,.2f} ± {teacher['std_return']:,.2f} | "
            f"{student_label(data, row)} | {cost['deployed_bits']:,} ({100 * cost['deployed_bits'] / teacher['size_bits']:.2f} %) | "
            f"{row['mean_return']:,.2f} | {kept}/{n} ({test}) | {cost['LUT']:,.0f} / {cost['BRAM_18K']:,.0f} | {smallest} |")


def glance(results: Path) -> str:
    """The whole table, one row per committed ``qpd_table.json`` under ``results``."""
    lines = ["| environment | teacher return | QPD student within 0.5 % | deployed bits (% of teacher) | "
             "student return (3 seeds) | seeds keeping the teacher | est. LUT / BRAM_18K | smallest QPD student "
             "keeping it on every seed: deployed bits |",
             "| --- | ---: | --- | ---: | ---: | --- | ---: | --- |"]
    for path in sorted(results.glob("*/qpd_table.json")):
        lines.append(glance_row(json.loads(path.read_text())))
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(glance(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/results")))
