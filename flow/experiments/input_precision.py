"""The input-precision study: QPD at one weight/activation width, the student's input quantizer
at several widths (``make input-precision``).

The closest peer (Kresse & Lampert 2025, arXiv 2511.07046) finds that the input's bit width
matters most when SAC policies for MuJoCo are quantized to 2–3 bits. Here every trial is the same
QPD student (same architecture, weight and activation bits, budget and seeds); only
``input_bits`` changes. Writes ``input_precision.{json,md,png}``: return, the paired test against
the teacher, and the deployed bits of each input width (the host's input quantizer and the first
layer's thresholds change with it).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from training import atomic
from training.errors import FlowError
from training.students.student import MIN_ACT_BITS, MAX_BITS, dense_label, student_act_bits
from flow.experiments.table import (IQM_NOTE, iqm_cell, iqm_cells, PAIRED_NOTE, paired_cell, aggregate, bits_label, made_by, paired_cells,
                                    settings_note, teacher_record, validate_trials)
from flow.experiments.trials import Trial, grid_extra, run_trials

INPUT_BITS = (8, 6, 4, 3)


def build_input_trials(env_id: str, teacher_dir: Path, input_bits: list[int], bits: int, seeds: list[int],
                       hidden: list[int], updates: int, episodes: int, runs_dir: Path,
                       settings: dict[str, Any] | None = None) -> dict[int, list[Trial]]:
    """Every input width's QPD trials (one per seed), checked before any runs."""
    from training.envs import env_info

    if env_info(env_id).binary_obs:
        raise FlowError(f"{env_id} has binary frames: its students take them as they are, with no input quantizer")
    if not input_bits or any(not MIN_ACT_BITS <= b <= MAX_BITS for b in input_bits):
        raise FlowError(f"input bits must be {MIN_ACT_BITS} to {MAX_BITS}, got {input_bits}")
    if "input_bits" in (settings or {}):
        raise FlowError("the grid sets input_bits per trial: use --input-bits, not the config")
    trials = {ib: [Trial(env_id=env_id, method="qpd", bits=bits, seed=s, hidden=tuple(hidden), updates=updates,
                         episodes=episodes, teacher_dir=str(teacher_dir), runs_dir=str(runs_dir / f"input{ib}"),
                         extra=grid_extra(env_id, {**(settings or {}), "input_bits": ib}))
                   for s in seeds]
              for ib in input_bits}
    validate_trials([t for ts in trials.values() for t in ts])
    return trials


def trial_input_bits(trial: Trial) -> int:
    """The input quantizer's width a study trial runs at (a grid setting in its ``extra``)."""
    return dict(trial.extra)["input_bits"]


def input_precision(env_id: str, teacher_dir: Path, *, input_bits: list[int], bits: int, seeds: list[int],
                    hidden: list[int], updates: int, episodes: int, jobs: int, out_dir: Path, runs_dir: Path,
                    settings: dict[str, Any] | None = None, hardware: bool = True,
                    executor: str = "process") -> dict[str, Any]:
    """Run (or read) every input width's trials and write the study's files into ``out_dir``.

    ``hardware``: the deployed bits and FINN estimate of each input width's architecture (cached
    under ``build/arch-cost``, as the table's).
    """
    teacher = teacher_record(teacher_dir, env_id)
    trials = build_input_trials(env_id, teacher_dir, input_bits, bits, seeds, hidden, updates, episodes, runs_dir,
                                settings)
    flat = [t for group in trials.values() for t in group]
    # Every width's trials share their keys (the key does not name the input width): one folder each.
    records = [{**rec, "input_bits": trial_input_bits(t)}
               for t, rec in zip(flat, run_trials(flat, out_dir / "trials", jobs, desc=f"{env_id} input precision",
                                                  executor=executor,
                                                  cache_name=lambda t: f"input{trial_input_bits(t)}/{t.key}"))]
    data = {"env_id": env_id, "teacher": teacher,
            "settings": {"input_bits": input_bits, "bits": bits, "seeds": seeds, "hidden": hidden, "updates": updates,
                         "episodes": episodes, **({"distill_settings": settings} if settings else {})},
            "rows": aggregate(records, teacher, ("input_bits",)), "trials": records,
            "command": made_by("input-precision", "input-precision", env_id)}
    if hardware:
        from flow.experiments.hardware import architecture_costs, layer_options

        data["hardware"] = {str(ib): architecture_costs(env_id, [(tuple(hidden), bits, ())], ib, **layer_options(settings))
                            for ib in input_bits}
    write_input_precision(data, out_dir)
    return data


def _deployed(data: dict[str, Any], input_bits: int) -> str:
    hw = (data.get("hardware") or {}).get(str(input_bits))
    if not hw:
        return "– | –"
    cost = next(iter(hw["architectures"].values()))
    return f"{cost['deployed_bits']:,} | {cost['LUT']:,.0f}"


def markdown(data: dict[str, Any]) -> str:
    """The study's table a person reads."""
    teacher, rows, st = data["teacher"], data["rows"], data["settings"]
    hidden, bits = st["hidden"], st["bits"]
    floor = teacher["mean_return"] - teacher["std_return"]
    on, iqm_on = paired_cells(rows)[2], iqm_cells(rows)[2]
    lines = [
        f"# Input precision: {data['env_id']}",
        "",
        f"Teacher {teacher['mean_return']:.2f} ± {teacher['std_return']:.2f} over {teacher['n_episodes']} seeded "
        f"episodes. Every row: QPD, {dense_label(hidden)} student at w{bits}a{student_act_bits(bits)} "
        f"({bits_label(bits, 'qpd')} bits), {st['updates']} updates, seeds {', '.join(map(str, st['seeds']))}, "
        f"{st['episodes']} evaluation episodes each; only the input quantizer's width changes. A seed keeps the "
        f"teacher's return when its mean is ≥ {floor:.2f} (teacher mean − std).",
        "",
        *settings_note(st.get("distill_settings")),
        *([PAIRED_NOTE, ""] if on else []),
        *([IQM_NOTE, ""] if iqm_on else []),
        "*Deployed bits*: the architecture bound of `make cost` (every weight and threshold, and the host's input "
        "quantizer); est. LUT: FINN's estimate of the dataflow partition at the default folding (not synthesised).",
        "",
        "| input bits | return |" + iqm_cells(rows)[0] + " worst seed | seeds keeping teacher |" + paired_cells(rows)[0]
        + " agreement with teacher | deployed bits (≤) | est. LUT |",
        "| ---: | --- |" + iqm_cells(rows)[1] + " ---: | ---: |" + paired_cells(rows)[1] + " ---: | ---: | ---: |",
    ]
    for row in sorted(rows, key=lambda r: -r["input_bits"]):
        agree = f"{100 * row['agreement']:.1f} %" if row["agreement"] is not None else "–"
        lines.append(f"| {row['input_bits']} | {row['mean_return']:.2f} ± {row['std_over_seeds']:.2f} |"
                     f"{iqm_cell(row, iqm_on)} {row['worst_seed_mean']:.2f} | {row['seeds_keeping_teacher']}/{len(row['seeds'])} |"
                     f"{paired_cell(row, on)} {agree} | {_deployed(data, row['input_bits'])} |")
    lines += ["", f"Made by: `{data['command']}`", ""]
    return "\n".join(lines)


def plot(data: dict[str, Any], path: Path) -> None:
    """Return against input bits, the band the std over seeds, the teacher as a band."""
    import numpy as np

    from training.plots import plt, save_figure

    teacher, rows = data["teacher"], sorted(data["rows"], key=lambda r: r["input_bits"])
    fig, ax = plt.subplots(figsize=(6.0, 4.0))
    ax.axhspan(teacher["mean_return"] - teacher["std_return"], teacher["mean_return"] + teacher["std_return"],
               color="grey", alpha=0.2, label="teacher ± std")
    x = [r["input_bits"] for r in rows]
    y, s = np.array([r["mean_return"] for r in rows]), np.array([r["std_over_seeds"] for r in rows])
    ax.plot(x, y, marker="o", color="tab:purple", label=f"QPD w{data['settings']['bits']}")
    ax.fill_between(x, y - s, y + s, color="tab:purple", alpha=0.15)
    ax.set_xticks(x)
    ax.set_xlabel("input bits (the host's input quantizer)")
    ax.set_ylabel("mean return (band: std over seeds)")
    ax.set_title(f"{data['env_id']}: return against input precision")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    save_figure(fig, path)


def write_input_precision(data: dict[str, Any], out_dir: Path) -> None:
    """Write ``input_precision.json``, ``.md`` and ``.png``."""
    atomic.write_json(out_dir / "input_precision.json", data)
    atomic.write_text(out_dir / "input_precision.md", markdown(data))
    plot(data, out_dir / "input_precision.png")


def rerender_input_precision(out_dir: Path, hardware: bool = False) -> dict[str, Any]:
    """Re-render the study's files from its json (nothing is trained; the hardware record is kept)."""
    data = json.loads((out_dir / "input_precision.json").read_text())
    data["rows"] = aggregate(data["trials"], data["teacher"], ("input_bits",))
    write_input_precision(data, out_dir)
    return data
