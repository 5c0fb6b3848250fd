"""The size/return frontier: QPD and direct distillation over student widths × bit widths
(and, for pixel students, convolution channels × widths × bit widths).

Writes ``frontier.json``, ``frontier.md`` and ``frontier.png`` (return against student size in
bits, log scale, with the teacher's return ± std as a band, the smallest student that keeps
the teacher's return marked for each method).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

from flow.experiments.hardware import layer_options, row_cost
from training import atomic
from training.students.student import student_act_bits
from flow.experiments.table import IQM_NOTE, PAIRED_NOTE, paired_cell, paired_cells, iqm_cell, iqm_cells, aggregate, bits_label, made_by, settings_note, teacher_record, validate_trials
from flow.experiments.trials import Trial, grid_extra, run_trials

FRONTIER_METHODS = ("qpd", "direct")


def keeps_on_every_seed(row: dict[str, Any]) -> bool:
    """Whether every seed of a row keeps the teacher, by the strictest test the row holds (the
    paired test where the teacher's per-episode returns are known, else the one-std rule)."""
    from flow.experiments.summary import seeds_kept

    return seeds_kept(row)[0] == len(row["seeds"])


def smallest_keeping_teacher(rows: list[dict[str, Any]], method: str) -> dict[str, Any] | None:
    """The smallest student of ``method`` whose every seed keeps the teacher's return (:func:`keeps_on_every_seed`)."""
    keeping = [r for r in rows if r["method"] == method and keeps_on_every_seed(r)]
    return min(keeping, key=lambda r: r["size_bits"]) if keeping else None


def row_conv(row: dict[str, Any], settings: dict[str, Any]) -> tuple[int, ...]:
    """A frontier row's convolution channels: the grid's (``CHANNELS=``, one convolution each) or
    its recipe's (``conv: [16, 16]``: a row keeps only the first channel count)."""
    if not row.get("channels"):
        return ()
    conv = (settings.get("distill_settings") or {}).get("conv")
    return tuple(conv) if conv and not settings.get("channels") else (row["channels"],)


def _arch(row: dict[str, Any], depth: int, settings: dict[str, Any]) -> str:
    """``2×32``, or ``c8-1×16`` for a pixel student (``c8k4s2-1×32`` where the grid's kernel and
    stride are not 3 and 1, as the students are named)."""
    from training.students.student import arch_label

    layers = settings.get("distill_settings") or {}
    return arch_label([row["width"]] * depth, row_conv(row, settings), layers.get("kernel", 3),
                      layers.get("stride", 1)).replace("x", "×")


def _students(settings: dict[str, Any], depth: int) -> str:
    if settings.get("channels"):
        then = f"then {depth} hidden layer(s)" if depth else "read out by the output layer (no dense layer)"
        return f"one convolution (its channels in the width column) on the binary frame, {then}"
    if depth == 0:
        return "convolutions (their channels in the width column) on the binary frame, read out by the output layer (no dense layer)"
    return f"{depth} hidden layers"


def _width_cell(row: dict[str, Any], settings: dict[str, Any]) -> str:
    if row.get("channels"):
        conv = "-".join(map(str, row_conv(row, settings)))
        return f"{row['width']} (conv {conv})" if row["width"] else f"conv {conv}"
    return str(row["width"])


def _order(row: dict[str, Any]) -> tuple:
    return (row.get("channels") or 0, row["width"], row["bits"], row["method"])


def _keys(trials: list[dict[str, Any]]) -> tuple[str, ...]:
    """What a frontier's rows are grouped by: method, width, bits, and the channels of pixel students."""
    from flow.experiments.hardware import trial_conv

    for rec in trials:
        rec["width"] = rec["hidden"][0] if rec["hidden"] else 0  # 0: no dense layer
        if trial_conv(rec):
            rec["channels"] = trial_conv(rec)[0]
    return ("method", "channels", "width", "bits") if any("channels" in r for r in trials) else ("method", "width", "bits")


def frontier(env_id: str, teacher_dir: Path, *, widths: list[int], bits: list[int], seeds: list[int],
             methods: list[str], depth: int, updates: int, episodes: int, jobs: int, out_dir: Path,
             runs_dir: Path, settings: dict[str, Any] | None = None, hardware: bool = True,
             executor: str = "process", channels: list[int] | None = None) -> dict[str, Any]:
    """Run (or read) the grid and write the frontier's files into ``out_dir``.

    ``executor``: where the trials run (see :func:`flow.experiments.trials.run_trials`);
    ``settings``: distillation settings for every trial (see :func:`flow.experiments.table.grid_settings`);
    ``hardware``: add what each architecture costs on the fabric (FINN estimate, cached);
    ``channels``: the single convolution's channel counts of pixel students (default: the default student's).
    """
    from training.envs import env_info
    from training.errors import FlowError

    teacher = teacher_record(teacher_dir, env_id)
    if channels and not env_info(env_id).pixels:
        raise FlowError(f"{env_id} has flat observations: its students have no convolution channels to vary")
    extras = [grid_extra(env_id, {**(settings or {}), "conv": [c]}) for c in channels] if channels else \
        [grid_extra(env_id, settings)]
    trials = [Trial(env_id=env_id, method=m, bits=b, seed=s, hidden=(w,) * depth, updates=updates, episodes=episodes,
                    teacher_dir=str(teacher_dir), runs_dir=str(runs_dir), extra=extra)
              for extra in extras for w in widths for b in bits for m in methods for s in seeds]
    validate_trials(trials)
    records = run_trials(trials, out_dir / "trials", jobs, desc=f"{env_id} frontier", executor=executor)
    rows = aggregate(records, teacher, _keys(records))
    best = {m: smallest_keeping_teacher(rows, m) for m in methods}
    command = made_by("frontier", "frontier", env_id)
    data = {"env_id": env_id, "teacher": teacher, "rows": rows, "smallest_keeping_teacher": best, "trials": records,
            "settings": {"widths": widths, "bits": bits, "seeds": seeds, "methods": methods, "depth": depth,
                         **({"channels": channels} if channels else {}),
                         "updates": updates, "episodes": episodes, "distill_settings": settings or {}},
            "command": command}
    if hardware:
        add_hardware(data)
    print("\n".join(write_frontier(data, out_dir)))
    return data


def fewest_keeping_teacher(rows: list[dict[str, Any]], method: str, cost: Callable[[dict[str, Any]], float | None]
                           ) -> dict[str, Any] | None:
    """The student of ``method`` keeping the teacher's return on every seed with the lowest ``cost``
    (ties: fewer parameter bits); rows without a cost are left out."""
    keeping = [r for r in rows if r["method"] == method and keeps_on_every_seed(r) and cost(r) is not None]
    return min(keeping, key=lambda r: (cost(r), r["size_bits"])) if keeping else None


def _row_cost(data: dict[str, Any], row: dict[str, Any]) -> dict[str, Any] | None:
    settings = data["settings"]
    return row_cost(data.get("hardware"), row["method"], (row["width"],) * settings["depth"], row["bits"],
                    settings["distill_settings"].get("input_bits", 8), row_conv(row, settings),
                    act_bits=settings["distill_settings"].get("act_bits"), **layer_options(settings["distill_settings"]))


def _acts(bits: int, settings: dict[str, Any]) -> int:
    """A grid row's activation bits (the grid's ``act_bits``, else the students' rule)."""
    return student_act_bits(bits, settings["distill_settings"].get("act_bits"))


def add_hardware(data: dict[str, Any]) -> None:
    """Add the frontier's ``hardware`` record (FINN once per architecture, cached) and the students
    with the fewest deployed bits and the fewest est. LUT that keep the teacher's return."""
    from flow.experiments.hardware import arch_key, architecture_costs, grid_archs

    distill = data["settings"]["distill_settings"]
    input_bits = distill.get("input_bits", 8)
    layers = layer_options(distill)
    archs = grid_archs(data["trials"])
    known = (data.get("hardware") or {}).get("architectures", {})
    if not all(arch_key(h, b, student_act_bits(b, distill.get("act_bits")), input_bits, c, **layers) in known for h, b, c in archs):
        data["hardware"] = architecture_costs(data["env_id"], archs, input_bits, act_bits=distill.get("act_bits"),
                                              **layers)
    methods = data["settings"]["methods"]
    data["fewest_deployed_bits_keeping_teacher"] = {m: fewest_keeping_teacher(
        data["rows"], m, lambda r: (_row_cost(data, r) or {}).get("deployed_bits")) for m in methods}
    data["fewest_lut_keeping_teacher"] = {m: fewest_keeping_teacher(
        data["rows"], m, lambda r: (_row_cost(data, r) or {}).get("LUT")) for m in methods}


def _strictest(rows: list[dict[str, Any]]) -> str:
    """The sentence's end where rows hold the paired test, which then decides what keeps the teacher."""
    return (" (one-std rule), or, where the teacher's per-episode returns are known as here, when every seed "
            "passes the paired test (the column *paired test*; the lines below use it)") if paired_cells(rows)[2] else ""


def _plot_panel(ax, data: dict[str, Any], x_of: Callable[[dict[str, Any]], float | None], best: dict[str, Any],
                best_text: Callable[[dict[str, Any]], str], xlabel: str):
    """One return-against-cost scatter (log x), a marker per method, colour = bits; returns the colour mapping."""
    teacher, rows, settings = data["teacher"], data["rows"], data["settings"]
    bits, methods = settings["bits"], settings["methods"]
    lo, hi = teacher["mean_return"] - teacher["std_return"], teacher["mean_return"] + teacher["std_return"]
    ax.axhspan(lo, hi, color="grey", alpha=0.2, label="teacher ± std")
    markers = {"qpd": "o", "direct": "s"}
    sc = None
    for method in methods:
        rs = [r for r in rows if r["method"] == method and x_of(r) is not None]
        sc = ax.scatter([x_of(r) for r in rs], [r["mean_return"] for r in rs], marker=markers.get(method, "^"),
                        c=[r["bits"] for r in rs], cmap="viridis", vmin=min(bits), vmax=max(bits), s=28,
                        edgecolors="k" if method == "qpd" else "none", linewidths=0.5, label=method)
        b = best.get(method)
        if b is not None:
            ax.annotate(best_text(b), (x_of(b), b["mean_return"]), xytext=(10, -40 if method == "qpd" else -70),
                        textcoords="offset points", fontsize=7, arrowprops={"arrowstyle": "->", "lw": 0.8})
    ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.grid(alpha=0.3, which="both")
    return sc


def write_frontier(data: dict[str, Any], out_dir: Path) -> list[str]:
    """Write ``frontier.png``, ``.md`` and ``.json`` from the frontier's data; return the summary lines.

    With a ``hardware`` record (see :func:`add_hardware`) the plot has a second panel, return
    against est. LUT, the x axis of the first is deployed bits, and the table and summary show
    deployed bits and FINN's estimates beside parameter bits.
    """
    if data.get("hardware"):
        return write_frontier_with_hardware(data, out_dir)
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
            ax.annotate(f"smallest keeping teacher ({method}):\n{_arch(b, depth, settings)} w{b['bits']}, "
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
             f"Students {_students(settings, depth)}; a configuration *keeps the teacher's return* when every seed's mean is "
             f"≥ {lo:.2f}{_strictest(rows)}.", "", *settings_note(settings["distill_settings"])]
    for method in methods:
        b = best[method]
        lines.append(f"- smallest {method} student keeping the teacher's return: " + (
            f"{_arch(b, depth, settings)} at w{b['bits']}a{_acts(b['bits'], settings)}, {b['size_bits']:,} bits ({100 * b['ratio']:.3f} % of the teacher), "
            f"return {b['mean_return']:.2f}" if b else "none in this grid"))
    iqm_head, iqm_align, iqm_on = iqm_cells(rows)
    p_head, p_align, p_on = paired_cells(rows)
    lines += ["", *([IQM_NOTE] if iqm_on else []), *(["", PAIRED_NOTE] if p_on else []),
              "", "| width | bits (w/a) | method | size (bits) | % of teacher | return (mean ± std over seeds) |" + iqm_head
              + " keeps teacher |" + p_head, "| ---: | ---: | --- | ---: | ---: | --- |" + iqm_align + " ---: |" + p_align]
    for r in sorted(rows, key=_order):
        lines.append(f"| {_width_cell(r, settings)} | {bits_label(r['bits'], r['method'], _acts(r['bits'], settings))} | {r['method']} | {r['size_bits']:,} | {100 * r['ratio']:.3f} | "
                     f"{r['mean_return']:.2f} ± {r['std_over_seeds']:.2f} |{iqm_cell(r, iqm_on)} "
                     f"{r['seeds_keeping_teacher']}/{len(r['seeds'])} |{paired_cell(r, p_on)}")
    lines += ["", f"Made by: `{data['command']}`", ""]
    atomic.write_text(out_dir / "frontier.md", "\n".join(lines))
    atomic.write_json(out_dir / "frontier.json", data)
    return lines[4:4 + len(methods)]




def write_frontier_with_hardware(data: dict[str, Any], out_dir: Path) -> list[str]:
    """:func:`write_frontier` for a frontier with its hardware record."""
    from training.plots import plt, save_figure

    env_id, teacher, rows = data["env_id"], data["teacher"], data["rows"]
    settings = data["settings"]
    widths, bits, methods, depth = settings["widths"], settings["bits"], settings["methods"], settings["depth"]
    by_bits, by_lut = data["fewest_deployed_bits_keeping_teacher"], data["fewest_lut_keeping_teacher"]

    def deployed(r):
        return (_row_cost(data, r) or {}).get("deployed_bits")

    def lut(r):
        return (_row_cost(data, r) or {}).get("LUT")

    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(12.8, 4.8), sharey=True)
    _plot_panel(ax, data, deployed, by_bits, lambda b: f"fewest deployed bits keeping teacher:\n{_arch(b, depth, settings)} "
                f"w{b['bits']}, {deployed(b):,} bits", "deployed bits (architecture bound, log scale)")
    ax.axvline(0.005 * teacher["size_bits"], color="tab:red", ls=":", lw=1, label="0.5 % of the teacher")
    ax.set_ylabel("mean return")
    ax.legend(fontsize=7, loc="lower right")
    sc = _plot_panel(ax2, data, lut, by_lut, lambda b: f"fewest est. LUT keeping teacher:\n{_arch(b, depth, settings)} "
                     f"w{b['bits']}, {lut(b):,.0f} LUT", "est. LUT (FINN estimate, dataflow partition; log scale)")
    fig.colorbar(sc, ax=[ax, ax2], label="weight bits")
    fig.suptitle(f"{env_id}: return against what the fabric stores and costs (widths {widths}, bits {bits})")
    save_figure(fig, out_dir / "frontier.png")

    lo = teacher["mean_return"] - teacher["std_return"]
    lines = [f"# Size/return frontier: {env_id}", "",
             f"Teacher {teacher['mean_return']:.2f} ± {teacher['std_return']:.2f}, {teacher['size_bits']:,} bits. "
             f"Students {_students(settings, depth)}; a configuration *keeps the teacher's return* when every seed's mean is "
             f"≥ {lo:.2f}{_strictest(rows)}. Deployed bits (what the accelerator stores; the ≤ 0.5 % target, "
             f"{0.005 * teacher['size_bits']:,.0f} bits, is judged on them) and est. LUT/BRAM: {data['hardware']['basis']}.",
             "", *settings_note(settings["distill_settings"])]
    summary = []
    for method in methods:
        b, d, f = data["smallest_keeping_teacher"][method], by_bits[method], by_lut[method]
        summary.append(f"- {method}, fewest deployed bits keeping the teacher's return: " + (
            f"{_arch(d, depth, settings)} at w{d['bits']}a{_acts(d['bits'], settings)}, {deployed(d):,} deployed bits "
            f"({100 * deployed(d) / teacher['size_bits']:.3f} % of the teacher; {d['size_bits']:,} parameter bits), "
            f"est. {lut(d):,.0f} LUT, return {d['mean_return']:.2f}" if d else "none in this grid"))
        summary.append(f"- {method}, fewest est. LUT keeping the teacher's return: " + (
            f"{_arch(f, depth, settings)} at w{f['bits']}a{_acts(f['bits'], settings)}, est. {lut(f):,.0f} LUT, "
            f"{_row_cost(data, f)['BRAM_18K']:,.0f} BRAM_18K, {_row_cost(data, f)['DSP']:,.0f} DSP, "
            f"{deployed(f):,} deployed bits, return {f['mean_return']:.2f}" if f else "none in this grid"))
        summary.append(f"- {method}, fewest parameter bits keeping the teacher's return: " + (
            f"{_arch(b, depth, settings)} at w{b['bits']}a{_acts(b['bits'], settings)}, {b['size_bits']:,} bits "
            f"({100 * b['ratio']:.3f} % of the teacher)" if b else "none in this grid"))
    lines += summary
    iqm_head, iqm_align, iqm_on = iqm_cells(rows)
    p_head, p_align, p_on = paired_cells(rows)
    lines += ["", *([IQM_NOTE] if iqm_on else []), *(["", PAIRED_NOTE] if p_on else []),
              "", "| width | bits (w/a) | method | parameter bits | % of teacher | deployed bits (≤) | % of teacher | "
              "est. LUT | est. BRAM_18K | est. DSP | return (mean ± std over seeds) |" + iqm_head + " keeps teacher |"
              + p_head,
              "| ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |" + iqm_align + " ---: |" + p_align]
    for r in sorted(rows, key=_order):
        c = _row_cost(data, r)
        hw_cells = (f"{c['deployed_bits']:,} | {100 * c['deployed_bits'] / teacher['size_bits']:.3f} | {c['LUT']:,.0f} | "
                    f"{c['BRAM_18K']:,.0f} | {c['DSP']:,.0f}" if c else "– | – | – | – | –")
        lines.append(f"| {_width_cell(r, settings)} | {bits_label(r['bits'], r['method'], _acts(r['bits'], settings))} | {r['method']} | {r['size_bits']:,} | "
                     f"{100 * r['ratio']:.3f} | {hw_cells} | {r['mean_return']:.2f} ± {r['std_over_seeds']:.2f} |"
                     f"{iqm_cell(r, iqm_on)} {r['seeds_keeping_teacher']}/{len(r['seeds'])} |{paired_cell(r, p_on)}")
    lines += ["", f"Made by: `{data['command']}`", ""]
    atomic.write_text(out_dir / "frontier.md", "\n".join(lines))
    atomic.write_json(out_dir / "frontier.json", data)
    return summary


def rerender_frontier(out_dir: Path, hardware: bool = False) -> dict[str, Any]:
    """Re-render a frontier's files from the trials and teacher record in its ``frontier.json``
    (nothing is trained; ``hardware``: add the hardware record where it is missing, FINN once per architecture)."""
    data = json.loads((out_dir / "frontier.json").read_text())
    data["rows"] = aggregate(data["trials"], data["teacher"], _keys(data["trials"]))
    data["smallest_keeping_teacher"] = {m: smallest_keeping_teacher(data["rows"], m) for m in data["settings"]["methods"]}
    if hardware or data.get("hardware"):
        add_hardware(data)
    write_frontier(data, out_dir)
    return data
