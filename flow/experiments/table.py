"""The QPD results table: QPD against every baseline, across bit widths and seeds.

``make qpd-table ENV=<id>`` builds the trials of :mod:`flow.experiments.trials` (float students first,
since ``float-ptq`` shares one per seed), then writes ``qpd_table.json``, ``qpd_table.md`` and
``qpd_table.png`` (return against bits, a band per method over seeds, the teacher's return
± std as a band).
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Any

import numpy as np

from training import atomic
from training.errors import FlowError
from training.runs import RESULTS_FILE
from training.students.size import teacher_size
from training.students.student import dense_label, student_act_bits
from training.teacher.policy import TeacherPolicy
from flow.experiments.trials import (DISTILLED_AS, TABLE_METHODS, Trial, distill_method, grid_extra, run_trials,
                                    trial_qpd_config)

#: One colour per method, the same in every plot whatever methods a table holds.
METHOD_COLOURS = {"ptq": "tab:blue", "qat-ppo": "tab:orange", "float-ptq": "tab:green", "direct": "tab:red",
                  "qpd": "tab:purple"}
METHOD_LABELS = {
    "ptq": "PTQ of the teacher",
    "qat-ppo": "QAT PPO from scratch (student actor, float critic)",
    "float-ptq": "float distillation, then PTQ",
    "direct": "distillation at target bits (no transition)",
    "qpd": "QPD",
}


def made_by(verb: str, make_target: str, env_id: str) -> str:
    """The command that made a grid's files: this process's ``python -m flow <verb> ...``
    line when it was called that way, else ``make <make_target> ENV=<env_id>``. Where the trials
    ran (``--executor``) is left out: it does not change what they compute."""
    if sys.argv[1:2] == [verb]:
        args, kept = sys.argv[1:], []
        skip = False
        for arg in args:
            if skip or arg.startswith("--executor="):
                skip = False
                continue
            if arg == "--executor":
                skip = True
                continue
            kept.append(arg)
        return "python -m flow " + " ".join(shlex.quote(a) for a in kept)
    return f"make {make_target} ENV={env_id}"


def teacher_record(teacher_dir: Path, env_id: str) -> dict[str, Any]:
    """The teacher's evaluated return and actor size."""
    path = teacher_dir / RESULTS_FILE
    if not path.exists():
        raise FlowError(f"teacher run {teacher_dir} has no {RESULTS_FILE}: train it first (make teacher ENV={env_id})")
    results = json.loads(path.read_text())
    policy = TeacherPolicy.load(teacher_dir, env_id)
    record = {"run": str(teacher_dir), "algo": policy.algo, "mean_return": results["mean_return"],
              "std_return": results["std_return"], "n_episodes": results["n_episodes"],
              "size_bits": teacher_size(policy).total_bits, "weights_sha256": policy.fingerprint()}
    if "returns" in results and "seeds" in results:  # for the paired test on the same seeds
        record.update(returns=results["returns"], seeds=results["seeds"])
    return record


#: Methods whose trials never read the teacher: QAT PPO trains its student from scratch.
TEACHERLESS_METHODS = ("qat-ppo",)


def recorded_teacher(teacher_dir: Path, env_id: str, out_dir: Path, trials: list[Trial]) -> dict[str, Any] | None:
    """The teacher record of the table already in ``out_dir``, where the teacher's run folder is gone
    (run folders do not travel between machines; tables are committed) and no trial left to run needs it.

    So a table can gain its teacherless rows (QAT PPO, a teacher's budget per trial) on a fresh
    machine without training the teacher again. None where the run is there, the folder holds no
    table of this teacher, or a trial that reads the teacher is not cached yet.
    """
    table = out_dir / "qpd_table.json"
    if (teacher_dir / RESULTS_FILE).exists() or not table.exists():
        return None
    data = json.loads(table.read_text())
    teacher = data.get("teacher") or {}
    if data.get("env_id") != env_id or teacher.get("run") != str(teacher_dir):
        return None
    if any(t.method not in TEACHERLESS_METHODS and not (out_dir / "trials" / f"{t.key}.json").exists()
           for t in trials):
        return None
    return teacher


#: A seed keeps the teacher by the paired test when its returns are not below the teacher's at this level.
PAIRED_ALPHA = 0.05


def keeps_teacher_paired(record: dict[str, Any], teacher: dict[str, Any]) -> tuple[bool, float] | None:
    """Paired sign-flip permutation test of one trial's returns against the teacher's on the same
    seeds: ``(keeps, p)``, keeping when the mean difference is not negative or ``p >= PAIRED_ALPHA``;
    None where the teacher record has no per-episode returns on these seeds (tables made before)."""
    from host.loop.report import paired_permutation_test

    if teacher.get("seeds") is None or record.get("seeds") != teacher["seeds"]:
        return None
    test = paired_permutation_test(record["returns"], teacher["returns"])
    return bool(test["mean_difference"] >= 0 or test["p_value"] >= PAIRED_ALPHA), float(test["p_value"])


def aggregate(records: list[dict[str, Any]], teacher: dict[str, Any], key_fields: tuple[str, ...]) -> list[dict[str, Any]]:
    """One row per distinct ``key_fields`` value: statistics over seeds of the per-seed mean returns."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for rec in records:
        groups.setdefault(tuple(rec[k] if not isinstance(rec[k], list) else tuple(rec[k]) for k in key_fields), []).append(rec)
    floor = teacher["mean_return"] - teacher["std_return"]
    rows = []
    for key, recs in groups.items():
        means = np.array([r["mean_return"] for r in recs])
        rows.append({
            **dict(zip(key_fields, key)),
            "seeds": [r["seed"] for r in recs],
            "per_seed_mean": means.tolist(),
            "mean_return": float(means.mean()),
            "std_over_seeds": float(means.std()),
            "worst_seed_mean": float(means.min()),
            "seeds_keeping_teacher": int((means >= floor).sum()),
            "size_bits": recs[0]["size_bits"],
            "ratio": recs[0]["size_bits"] / teacher["size_bits"],
            "agreement": float(np.mean([r["agreement"] for r in recs])) if all("agreement" in r for r in recs) else None,
        })
        if all(r.get("returns") for r in recs):  # every episode of every seed: the IQM and its bootstrap CI
            iqm, low, high = iqm_with_ci([x for r in recs for x in r["returns"]])
            rows[-1].update(iqm=iqm, iqm_ci=[low, high])
        paired = [keeps_teacher_paired(r, teacher) for r in recs]
        if all(t is not None for t in paired):
            rows[-1].update(seeds_keeping_teacher_paired=int(sum(k for k, _ in paired)),
                            paired_p=[p for _, p in paired])
    return rows


#: Bootstrap resamples of the IQM's confidence interval (a fixed generator: a re-render gives the same table).
IQM_RESAMPLES = 10_000


def iqm_with_ci(returns: list[float]) -> tuple[float, float, float]:
    """``(IQM, low, high)``: the interquartile mean of the returns (rliable's statistic, scipy's
    ``trim_mean`` at 25 %) and its 95 % percentile bootstrap interval (``scipy.stats.bootstrap``)."""
    from scipy.stats import bootstrap, trim_mean

    x = np.asarray(returns, dtype=np.float64)

    def statistic(sample: np.ndarray, axis: int = -1) -> np.ndarray:
        return trim_mean(sample, 0.25, axis=axis)

    iqm = float(statistic(x))
    if np.ptp(x) == 0:  # every episode the same return: no spread to resample
        return iqm, iqm, iqm
    ci = bootstrap((x,), statistic, confidence_level=0.95, n_resamples=IQM_RESAMPLES, method="percentile",
                   vectorized=True, rng=np.random.default_rng(0)).confidence_interval
    return iqm, float(ci.low), float(ci.high)


def optional_column(rows: list[dict[str, Any]], key: str, header: str, align: str) -> tuple[str, str, str]:
    """A column only some grids have: its header, alignment and a truthy switch for the cell maker,
    or three empty strings where any row lacks ``key`` (grids recorded before it existed)."""
    if not rows or not all(key in r for r in rows):
        return "", "", ""
    return header, align, key


def iqm_cells(rows: list[dict[str, Any]]) -> tuple[str, str, str]:
    """The IQM column's header, its alignment and a row's cell maker (empty where a row lacks it:
    grids recorded before per-episode returns)."""
    return optional_column(rows, "iqm", " IQM [95 % CI] |", " --- |")


def iqm_cell(row: dict[str, Any], on: str) -> str:
    """A row's IQM cell (``on``: the third item of :func:`iqm_cells`; empty: no cell)."""
    return f" {row['iqm']:.2f} [{row['iqm_ci'][0]:.2f}, {row['iqm_ci'][1]:.2f}] |" if on else ""


IQM_NOTE = (f"*IQM*: interquartile mean of the returns of every evaluation episode of every seed (episodes × seeds "
            f"pooled), with its 95 % percentile bootstrap confidence interval ({IQM_RESAMPLES:,} resamples; "
            f"rliable's statistic, computed with scipy.stats.trim_mean and scipy.stats.bootstrap).")


def paired_cells(rows: list[dict[str, Any]]) -> tuple[str, str, str]:
    """The paired-test column's header, its alignment and a row's cell maker (empty where no row has it)."""
    return optional_column(rows, "seeds_keeping_teacher_paired", " seeds keeping teacher (paired test) |", " ---: |")


def paired_cell(row: dict[str, Any], on: str) -> str:
    """A row's paired-test cell (``on``: the third item of :func:`paired_cells`; empty: no cell)."""
    return f" {row['seeds_keeping_teacher_paired']}/{len(row['seeds'])} |" if on else ""


PAIRED_NOTE = (f"*Paired test*: each seed's returns against the teacher's on the same evaluation episodes (paired "
               f"sign-flip permutation test); a seed keeps the teacher when its mean is not below the teacher's at "
               f"p < {PAIRED_ALPHA}.")


#: Settings a grid sets for each trial itself; a grid config may not set them.
GRID_OWNED_SETTINGS = ("env_id", "seed", "method", "hidden", "weight_bits", "act_bits", "updates", "eval_episodes",
                       "schedule")


def grid_settings(path: str | Path | None) -> dict[str, Any]:
    """Distillation settings for every distilling trial of a grid, from a YAML file (``CONFIG=``).

    For comparing a variant of QPD across a whole grid, e.g. ``final_stage_share: 0.6``. The
    settings a grid varies per trial are refused; a bad value is refused before anything runs.
    """
    from training.qpd.config import read_settings

    if path is None:
        return {}
    settings = read_settings(path)
    owned = sorted(set(settings) & set(GRID_OWNED_SETTINGS))
    if owned:
        raise FlowError(f"{path} sets {', '.join(owned)}, which the grid sets per trial: use the grid's own options "
                        "(--bits, --seeds, --width, --updates, --episodes)")
    return settings


def build_trials(env_id: str, teacher_dir: Path, bits: list[int], seeds: list[int], methods: list[str],
                 hidden: list[int], updates: int, episodes: int, runs_dir: Path,
                 settings: dict[str, Any] | None = None,
                 qat_ppo_bits: list[int] | None = None) -> tuple[list[Trial], list[Trial]]:
    """The float-student trials (phase 1) and the table's trials (phase 2).

    ``qat_ppo_bits``: the widths QAT PPO from scratch runs at (default: all of ``bits``); each of
    its trials costs a teacher's training budget, so a grid may run it at a few widths only.
    """
    qat_bits = set(bits if qat_ppo_bits is None else qat_ppo_bits)
    if not qat_bits <= set(bits):
        raise FlowError(f"QAT PPO bits {sorted(qat_bits - set(bits))} are not among the table's bits {bits}")
    common = dict(env_id=env_id, hidden=tuple(hidden), updates=updates, episodes=episodes,
                  teacher_dir=str(teacher_dir), runs_dir=str(runs_dir))
    extra = grid_extra(env_id, settings)
    conv_only = tuple(item for item in extra if item[0] == "conv")  # QAT PPO trains the same student architecture
    floats = [Trial(method="float", bits=None, seed=s, extra=extra, **common)
              for s in seeds] if "float-ptq" in methods else []
    table = [Trial(method=m, bits=b, seed=s, extra=extra if m in DISTILLED_AS else conv_only if m == "qat-ppo" else (),
                   **common)
             for b in bits for m in methods for s in seeds if m != "qat-ppo" or b in qat_bits]
    validate_trials(floats + table)
    return floats, table


def grid_conv(trials: list[Trial]) -> list[int]:
    """The convolution channels of a grid's students (none for flat observations).

    Read from any distilled trial: PTQ of the teacher carries no student settings, and it comes
    first in a grid's order.
    """
    return next((list(t.conv) for t in trials if t.conv), [])


def validate_trials(trials: list[Trial]) -> None:
    """Refuse a grid with an impossible distillation config before running any of it."""
    for t in trials:
        if distill_method(t) is not None:
            trial_qpd_config(t)


def bits_label(weight_bits: int, method: str, act_bits: int | None = None) -> str:
    """``"4"`` where weights and activations share the width, ``"1/2"`` where they differ.

    Students keep activations at 2 bits or more (a 1-bit QuantReLU exports as a bipolar
    quantizer) unless a grid sets them (``act_bits``, e.g. ``"8/4"``); PTQ of the teacher
    binarises its tanh activations at 1 bit.
    """
    act_bits = weight_bits if method == "ptq" else student_act_bits(weight_bits, act_bits)
    return str(weight_bits) if act_bits == weight_bits else f"{weight_bits}/{act_bits}"


def settings_note(settings: dict[str, Any] | None) -> list[str]:
    """Markdown lines naming a grid's non-default distillation settings (none: no lines)."""
    if not settings:
        return []
    return ["Distillation settings changed from the defaults for this grid: "
            + ", ".join(f"`{k}: {v}`" for k, v in sorted(settings.items())) + ".", ""]


def partial_methods_note(rows: list[dict[str, Any]]) -> list[str]:
    """Markdown lines saying which methods ran at some of the table's widths only (none: no lines)."""
    widths = {r["bits"] for r in rows}
    lines = []
    for method in TABLE_METHODS:
        ran = sorted({r["bits"] for r in rows if r["method"] == method}, reverse=True)
        if ran and set(ran) != widths:
            why = ": each of its trials costs a teacher's training budget" if method == "qat-ppo" else ""
            lines.append(f"{METHOD_LABELS[method]} was run at {', '.join(map(str, ran))} bits only{why}.")
    return [" ".join(lines), ""] if lines else []


def teacher_algo(teacher: dict[str, Any]) -> str:
    """The algorithm that trained the teacher, as the table names it (records made before it was kept were PPO)."""
    return teacher.get("algo", "ppo").upper()


def teacher_sentence(teacher: dict[str, Any], teacher_words: str, student_words: str) -> str:
    """The table's opening line: the teacher, the students, and the one-std rule's floor."""
    floor = teacher["mean_return"] - teacher["std_return"]
    return (f"Teacher: {teacher_algo(teacher)}, {teacher_words}, {teacher['size_bits']:,} bits (float32 actor), "
            f"{teacher['mean_return']:.2f} ± {teacher['std_return']:.2f} over {teacher['n_episodes']} seeded episodes. "
            f"Students: {student_words}. A seed *keeps the teacher's return* when its mean "
            f"over the evaluation episodes is ≥ teacher mean − teacher std = {floor:.2f}.")


def architecture_words(env_id: str, hidden: list[int], conv: list[int], input_bits: int,
                       settings: dict[str, Any] | None = None) -> tuple[str, str]:
    """How the table names the teacher's and the students' architectures (``settings``: the grid's,
    for a convolution's kernel and stride)."""
    if conv:
        k, stride = (settings or {}).get("kernel", 3), (settings or {}).get("stride", 1)
        window = f"{k}×{k}" + (f" stride-{stride}" if stride != 1 else "")
        return ("MinAtar CNN actor (3×3 conv of 16, 128 units)",
                (f"{conv[0]}-channel {window} convolution" if len(conv) == 1 else
                 f"{window} convolutions of {', '.join(map(str, conv))} channels")
                + f" then {dense_label(hidden)} (binary frames as input)")
    return "2×256 actor", f"{dense_label(hidden)} MLP ({input_bits}-bit input)"


def markdown(env_id: str, teacher: dict[str, Any], rows: list[dict[str, Any]], command: str, hidden: list[int],
             settings: dict[str, Any] | None = None, hardware: dict[str, Any] | None = None,
             conv: list[int] | None = None) -> str:
    """The table a person reads; with ``hardware`` (see :mod:`flow.experiments.hardware`), deployed
    bits beside parameter bits and a table of what each student architecture costs on the fabric."""
    conv = list(conv or [])
    if hardware:
        return markdown_with_hardware(env_id, teacher, rows, command, hidden, settings, hardware, conv)
    teacher_words, student_words = architecture_words(env_id, hidden, conv, 8, settings)
    lines = [
        f"# QPD table: {env_id}",
        "",
        teacher_sentence(teacher, teacher_words, student_words),
        "",
        "Return: mean ± std over seeds of each seed's mean return over the evaluation episodes (seeds 1000..).",
        "",
        *settings_note(settings),
        *partial_methods_note(rows),
        *([PAIRED_NOTE, ""] if paired_cells(rows)[2] else []),
        *([IQM_NOTE, ""] if iqm_cells(rows)[2] else []),
        "| bits (w/a) | method | size (bits) | % of teacher | return |" + iqm_cells(rows)[0]
        + " worst seed | seeds keeping teacher |" + paired_cells(rows)[0] + " agreement with teacher |",
        "| ---: | --- | ---: | ---: | --- |" + iqm_cells(rows)[1] + " ---: | ---: |" + paired_cells(rows)[1] + " ---: |",
    ]
    on, iqm_on = paired_cells(rows)[2], iqm_cells(rows)[2]
    for row in sorted(rows, key=lambda r: (-r["bits"], TABLE_METHODS.index(r["method"]))):
        agree = f"{100 * row['agreement']:.1f} %" if row["agreement"] is not None else "–"
        lines.append(
            f"| {bits_label(row['bits'], row['method'])} | {METHOD_LABELS[row['method']]} | {row['size_bits']:,} | {100 * row['ratio']:.3f} | "
            f"{row['mean_return']:.2f} ± {row['std_over_seeds']:.2f} |{iqm_cell(row, iqm_on)} {row['worst_seed_mean']:.2f} | "
            f"{row['seeds_keeping_teacher']}/{len(row['seeds'])} |{paired_cell(row, on)} {agree} |")
    lines += ["", f"Made by: `{command}`", ""]
    return "\n".join(lines)


def hardware_lines(teacher: dict[str, Any], hardware: dict[str, Any], keys: list[str]) -> list[str]:
    """Markdown: one row per student architecture with its deployed bits and FINN estimates."""
    lines = [f"Hardware per student architecture — {hardware['basis']}:", "",
             "| student | deployed bits (≤) | % of teacher | est. LUT | est. BRAM_18K | est. DSP | est. latency (µs) | fits with shell |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    budget = hardware.get("latency_budget_us")  # absent from grids costed before it was recorded
    for key in keys:
        c = hardware["architectures"][key]
        over = " (over budget)" if budget is not None and c["latency_us"] > budget else ""
        lines.append(f"| {key} | {c['deployed_bits']:,} | {100 * c['deployed_bits'] / teacher['size_bits']:.3f} | "
                     f"{c['LUT']:,.0f} | {c['BRAM_18K']:,.0f} | {c['DSP']:,.0f} | {c['latency_us']:.2f}{over} | "
                     f"{'yes' if c['fits'] else 'no'} |")
    return lines + [""]


def markdown_with_hardware(env_id: str, teacher: dict[str, Any], rows: list[dict[str, Any]], command: str,
                           hidden: list[int], settings: dict[str, Any] | None, hardware: dict[str, Any],
                           conv: list[int] | None = None) -> str:
    """The table with deployed bits (the ≤ 0.5 % target is judged on them) and the hardware table."""
    from flow.experiments.hardware import arch_key, layer_options, row_cost

    input_bits = (settings or {}).get("input_bits", 8)
    layers = layer_options(settings)
    conv = list(conv or [])
    teacher_words, student_words = architecture_words(env_id, hidden, conv, input_bits, settings)
    lines = [
        f"# QPD table: {env_id}",
        "",
        teacher_sentence(teacher, teacher_words, student_words),
        "",
        "Return: mean ± std over seeds of each seed's mean return over the evaluation episodes (seeds 1000..). "
        "*Parameter bits*: weights and biases at their widths (the paper's measure). *Deployed bits*: what the "
        "accelerator stores, every weight and threshold at its stored width plus the host's input quantizer — "
        f"the ≤ 0.5 % target ({0.005 * teacher['size_bits']:,.0f} bits) is judged on these. PTQ of the teacher keeps "
        f"the teacher's {teacher_words.split(' actor')[0]} architecture and is not compiled (–).",
        "",
        *settings_note(settings),
        *partial_methods_note(rows),
        *([PAIRED_NOTE, ""] if paired_cells(rows)[2] else []),
        *([IQM_NOTE, ""] if iqm_cells(rows)[2] else []),
        "| bits (w/a) | method | parameter bits | % of teacher | deployed bits (≤) | % of teacher | return |"
        + iqm_cells(rows)[0] + " worst seed | seeds keeping teacher |" + paired_cells(rows)[0] + " agreement with teacher |",
        "| ---: | --- | ---: | ---: | ---: | ---: | --- |" + iqm_cells(rows)[1] + " ---: | ---: |" + paired_cells(rows)[1]
        + " ---: |",
    ]
    on, iqm_on = paired_cells(rows)[2], iqm_cells(rows)[2]
    keys: list[str] = []
    for row in sorted(rows, key=lambda r: (-r["bits"], TABLE_METHODS.index(r["method"]))):
        agree = f"{100 * row['agreement']:.1f} %" if row["agreement"] is not None else "–"
        cost = row_cost(hardware, row["method"], hidden, row["bits"], input_bits, conv, **layers)
        deployed = (f"{cost['deployed_bits']:,} | {100 * cost['deployed_bits'] / teacher['size_bits']:.3f}"
                    if cost else "– | –")
        lines.append(
            f"| {bits_label(row['bits'], row['method'])} | {METHOD_LABELS[row['method']]} | {row['size_bits']:,} | "
            f"{100 * row['ratio']:.3f} | {deployed} | {row['mean_return']:.2f} ± {row['std_over_seeds']:.2f} |"
            f"{iqm_cell(row, iqm_on)} {row['worst_seed_mean']:.2f} | {row['seeds_keeping_teacher']}/{len(row['seeds'])} |{paired_cell(row, on)} "
            f"{agree} |")
    for row in sorted(rows, key=lambda r: -r["bits"]):
        key = arch_key(hidden, row["bits"], student_act_bits(row["bits"]), input_bits, conv, **layers)
        if key in hardware["architectures"] and key not in keys:
            keys.append(key)
    lines += ["", *hardware_lines(teacher, hardware, keys), f"Made by: `{command}`", ""]
    return "\n".join(lines)


def plot_return_against_bits(title: str, teacher: dict[str, Any], series: list[tuple[str, str, list[dict[str, Any]]]],
                             path: Path) -> None:
    """Return against bits, one line and band (std over seeds) per ``(label, colour, rows)``, the teacher as a band."""
    from training.plots import plt, save_figure

    fig, ax = plt.subplots(figsize=(7.0, 4.4))
    lo, hi = teacher["mean_return"] - teacher["std_return"], teacher["mean_return"] + teacher["std_return"]
    ax.axhspan(lo, hi, color="grey", alpha=0.2, label="teacher ± std")
    ax.axhline(teacher["mean_return"], color="grey", lw=1)
    for label, colour, rows in series:
        rs = sorted(rows, key=lambda r: r["bits"])
        if not rs:
            continue
        x = [r["bits"] for r in rs]
        y = np.array([r["mean_return"] for r in rs])
        s = np.array([r["std_over_seeds"] for r in rs])
        ax.plot(x, y, marker="o", lw=1.5, label=label, color=colour)
        ax.fill_between(x, y - s, y + s, color=colour, alpha=0.15)
    ax.set_xticks(sorted({r["bits"] for _, _, rows in series for r in rows}))
    ax.set_xlabel("weight bits (activations alike; 1-bit students keep 2-bit activations)")
    ax.set_ylabel("mean return (band: std over seeds)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    # Below the axes: inside, with five methods and their bands, it hid lines wherever it sat.
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, frameon=False)
    save_figure(fig, path)


def plot(env_id: str, teacher: dict[str, Any], rows: list[dict[str, Any]], path: Path) -> None:
    """The table's plot: return against bits, one line and band per method."""
    series = [(METHOD_LABELS[m], METHOD_COLOURS[m], [r for r in rows if r["method"] == m]) for m in TABLE_METHODS]
    plot_return_against_bits(f"{env_id}: return against precision", teacher, series, path)


def qpd_table(env_id: str, teacher_dir: Path, *, bits: list[int], seeds: list[int], methods: list[str],
              hidden: list[int], updates: int, episodes: int, jobs: int, out_dir: Path, runs_dir: Path,
              settings: dict[str, Any] | None = None, hardware: bool = True,
              executor: str = "process", qat_ppo_bits: list[int] | None = None,
              train_missing_teacher: bool = False) -> dict[str, Any]:
    """Run (or read) every trial and write the table's files into ``out_dir``.

    The teacher comes from ``teacher_dir``; where that run is gone, from the record of the table
    already in ``out_dir`` if every trial that reads the teacher is cached (:func:`recorded_teacher`),
    else it is trained first at ``teacher_dir`` (seed 0) when ``train_missing_teacher``.

    ``executor``: where the trials run (see :func:`flow.experiments.trials.run_trials`);
    ``settings``: distillation settings for the distilling methods (see :func:`grid_settings`);
    ``hardware``: add what each student architecture costs on the fabric (FINN estimate, cached);
    ``qat_ppo_bits``: the widths QAT PPO runs at (see :func:`build_trials`).
    """
    unknown = set(methods) - set(TABLE_METHODS)
    if unknown:
        raise FlowError(f"unknown method(s) {', '.join(sorted(unknown))}; known: {', '.join(TABLE_METHODS)}")
    floats, trials = build_trials(env_id, teacher_dir, bits, seeds, methods, hidden, updates, episodes, runs_dir,
                                  settings, qat_ppo_bits)
    teacher = recorded_teacher(teacher_dir, env_id, out_dir, floats + trials)
    if teacher is not None:
        print(f"teacher run {teacher_dir} is gone: using its record in {out_dir / 'qpd_table.json'} "
              "(every trial that reads the teacher is cached)")
    else:
        if train_missing_teacher and not (teacher_dir / RESULTS_FILE).exists():
            from training.teacher.train import train_teacher

            print(f"no teacher in {teacher_dir}: training one first")
            train_teacher(env_id, 0, run_dir=teacher_dir)
        teacher = teacher_record(teacher_dir, env_id)
    cache = out_dir / "trials"
    if floats:
        run_trials(floats, cache, jobs, desc="float students", executor=executor)
    records = run_trials(trials, cache, jobs, desc=f"{env_id} table", executor=executor)
    rows = aggregate(records, teacher, ("method", "bits"))
    command = made_by("table", "qpd-table", env_id)
    conv = grid_conv(trials)
    data = {"env_id": env_id, "teacher": teacher, "settings": {"bits": bits, "seeds": seeds, "methods": methods,
            "hidden": hidden, "updates": updates, "episodes": episodes, "distill_settings": settings or {},
            **({"conv": conv} if conv else {}),
            **({"qat_ppo_bits": qat_ppo_bits} if "qat-ppo" in methods and qat_ppo_bits is not None else {})},
            "rows": rows, "trials": records,
            "command": command}
    if hardware:
        add_hardware(data)
    write_table(data, out_dir)
    return data


def add_hardware(data: dict[str, Any]) -> None:
    """Add the grid's ``hardware`` record: FINN once per student architecture (cached under build/),
    kept as it is where the json already covers every architecture of the grid with its latency budget."""
    from flow.experiments.hardware import arch_key, architecture_costs, grid_archs, layer_options

    input_bits = data["settings"].get("distill_settings", {}).get("input_bits", 8)
    layers = layer_options(data["settings"].get("distill_settings"))
    archs = grid_archs(data["trials"])
    record = data.get("hardware") or {}
    known = record.get("architectures", {})
    if "latency_budget_us" in record and all(arch_key(h, b, student_act_bits(b), input_bits, c, **layers) in known
                                             for h, b, c in archs):
        return
    data["hardware"] = architecture_costs(data["env_id"], archs, input_bits, **layers)


def write_table(data: dict[str, Any], out_dir: Path) -> None:
    """Write ``qpd_table.json``, ``.md`` and ``.png`` from the table's data."""
    settings = data["settings"]
    atomic.write_json(out_dir / "qpd_table.json", data)
    atomic.write_text(out_dir / "qpd_table.md", markdown(data["env_id"], data["teacher"], data["rows"], data["command"],
                                                          settings["hidden"], settings["distill_settings"],
                                                          data.get("hardware"), settings.get("conv", [])))
    plot(data["env_id"], data["teacher"], data["rows"], out_dir / "qpd_table.png")


def rerender_table(out_dir: Path, hardware: bool = False) -> dict[str, Any]:
    """Re-render a table's files from the trials and teacher record in its ``qpd_table.json``.

    Nothing is trained or evaluated: the rows are aggregated again from the stored trials, so a
    change of accounting or layout reaches committed tables without re-running a grid.
    ``hardware``: add the hardware record where it is missing (runs FINN once per architecture).
    """
    data = json.loads((out_dir / "qpd_table.json").read_text())
    data["rows"] = aggregate(data["trials"], data["teacher"], ("method", "bits"))
    if hardware:
        add_hardware(data)
    write_table(data, out_dir)
    return data
