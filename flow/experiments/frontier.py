"""The size/return frontier: QPD and direct distillation over student widths × bit widths.

Writes ``frontier.json``, ``frontier.md`` and ``frontier.png`` (return against student size in
bits, log scale, with the teacher's return ± std as a band, the smallest student that keeps
the teacher's return marked for each method).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from training import atomic
from training.students.student import student_act_bits
from flow.experiments.table import aggregate, bits_label, made_by, settings_note, teacher_record, validate_trials
from flow.experiments.trials import Trial, run_trials, trial_extra

FRONTIER_METHODS = ("qpd", "direct")


def smallest_keeping_teacher(rows: list[dict[str, Any]], method: str) -> dict[str, Any] | None:
    """The smallest student of ``method`` whose every seed keeps the teacher's return."""
    keeping = [r for r in rows if r["method"] == method and r["seeds_keeping_teacher"] == len(r["seeds"])]
    return min(keeping, key=lambda r: r["size_bits"]) if keeping else None


def frontier(env_id: str, teacher_dir: Path, *, widths: list[int], bits: list[int], seeds: list[int],
             methods: list[str], depth: int, updates: int, episodes: int, jobs: int, out_dir: Path,
             runs_dir: Path, settings: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run (or read) the grid and write the frontier's files into ``out_dir``.

    ``settings``: distillation settings for every trial (see :func:`training.table.grid_settings`).
    """
    teacher = teacher_record(teacher_dir, env_id)
    trials = [Trial(env_id=env_id, method=m, bits=b, seed=s, hidden=(w,) * depth, updates=updates, episodes=episodes,
                    teacher_dir=str(teacher_dir), runs_dir=str(runs_dir), extra=trial_extra(settings))
              for w in widths for b in bits for m in methods for s in seeds]
    validate_trials(trials)
    records = run_trials(trials, out_dir / "trials", jobs, desc=f"{env_id} frontier")
    for rec in records:
        rec["width"] = rec["hidden"][0]
    rows = aggregate(records, teacher, ("method", "width", "bits"))
    best = {m: smallest_keeping_teacher(rows, m) for m in methods}
    command = made_by("frontier", "frontier", env_id)
    data = {"env_id": env_id, "teacher": teacher, "rows": rows, "smallest_keeping_teacher": best, "trials": records,
            "settings": {"widths": widths, "bits": bits, "seeds": seeds, "methods": methods, "depth": depth,
                         "updates": updates, "episodes": episodes, "distill_settings": settings or {}},
            "command": command}
    lines = write_frontier(data, out_dir)
    print("\n".join(lines[4:4 + len(methods)]))
    return data


def write_frontier(data: dict[str, Any], out_dir: Path) -> list[str]:
    """Write ``frontier.png``, ``.md`` and ``.json`` from the frontier's data; return the markdown lines."""
    from training.plots import plt, save_figure

    env_id, teacher, rows, best = data["env_id"], data["teacher"], data["rows"], data["smallest_keeping_teacher"]
    settings = data["settings"]
    widths, bits, methods, depth = settings["widths"], settings["bits"], settings["methods"], settings["depth"]

    fig, ax = plt.subplots(figsize=(7.2, 4.6))
    lo, hi = teacher["mean_return"] - teacher["std_return"], teacher["mean_return"] + teacher["std_return"]
    ax.axhspan(lo, hi, color="grey", alpha=0.2, label="teacher ± std")
    markers = {"qpd": "o", "direct": "s"}
    for method in methods:
        rs = [r for r in rows if r["method"] == method]
        sc = ax.scatter([r["size_bits"] for r in rs], [r["mean_return"] for r in rs], marker=markers.get(method, "^"),
                        c=[r["bits"] for r in rs], cmap="viridis", vmin=min(bits), vmax=max(bits), s=28,
                        edgecolors="k" if method == "qpd" else "none", linewidths=0.5, label=method)
        b = best[method]
        if b is not None:
            ax.annotate(f"smallest keeping teacher ({method}):\n{depth}×{b['width']} w{b['bits']}, "
                        f"{b['size_bits']:,} bits", (b["size_bits"], b["mean_return"]), xytext=(10, -40 if method == "qpd" else -70),
                        textcoords="offset points", fontsize=7, arrowprops={"arrowstyle": "->", "lw": 0.8})
    fig.colorbar(sc, ax=ax, label="bits")
    ax.axvline(0.005 * teacher["size_bits"], color="tab:red", ls=":", lw=1, label="0.5 % of the teacher")
    ax.set_xscale("log")
    ax.set_xlabel("student actor size (bits, log scale)")
    ax.set_ylabel("mean return")
    ax.set_title(f"{env_id}: size/return frontier (widths {widths}, bits {bits})")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, loc="lower right")
    save_figure(fig, out_dir / "frontier.png")

    lines = [f"# Size/return frontier: {env_id}", "",
             f"Teacher {teacher['mean_return']:.2f} ± {teacher['std_return']:.2f}, {teacher['size_bits']:,} bits. "
             f"Students {depth} hidden layers; a configuration *keeps the teacher's return* when every seed's mean is "
             f"≥ {lo:.2f}.", "", *settings_note(settings["distill_settings"])]
    for method in methods:
        b = best[method]
        lines.append(f"- smallest {method} student keeping the teacher's return: " + (
            f"{depth}×{b['width']} at w{b['bits']}a{student_act_bits(b['bits'])}, {b['size_bits']:,} bits ({100 * b['ratio']:.3f} % of the teacher), "
            f"return {b['mean_return']:.2f}" if b else "none in this grid"))
    lines += ["", "| width | bits (w/a) | method | size (bits) | % of teacher | return (mean ± std over seeds) | keeps teacher |",
              "| ---: | ---: | --- | ---: | ---: | --- | ---: |"]
    for r in sorted(rows, key=lambda r: (r["width"], r["bits"], r["method"])):
        lines.append(f"| {r['width']} | {bits_label(r['bits'], r['method'])} | {r['method']} | {r['size_bits']:,} | {100 * r['ratio']:.3f} | "
                     f"{r['mean_return']:.2f} ± {r['std_over_seeds']:.2f} | {r['seeds_keeping_teacher']}/{len(r['seeds'])} |")
    lines += ["", f"Made by: `{data['command']}`", ""]
    atomic.write_text(out_dir / "frontier.md", "\n".join(lines))
    atomic.write_json(out_dir / "frontier.json", data)
    return lines


def rerender_frontier(out_dir: Path) -> dict[str, Any]:
    """Re-render a frontier's files from the trials and teacher record in its ``frontier.json`` (nothing is run)."""
    data = json.loads((out_dir / "frontier.json").read_text())
    data["rows"] = aggregate(data["trials"], data["teacher"], ("method", "width", "bits"))
    data["smallest_keeping_teacher"] = {m: smallest_keeping_teacher(data["rows"], m) for m in data["settings"]["methods"]}
    write_frontier(data, out_dir)
    return data
