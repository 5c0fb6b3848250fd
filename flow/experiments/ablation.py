"""The QPD ablation: what each of QPD's ideas buys, on the same student, budget and seeds.

The method (docs/method.md) makes each named idea of QPD switchable so that a table can show what it buys.
``make ablation ENV=<id>`` runs QPD and QPD with one idea switched off at a time:

- ``qpd``: everything on (the defaults);
- ``no-transition``: one stage straight at the target bits (the ``direct`` method);
- ``no-value-term``: the policy KL alone (``loss.value_coef: 0``), so the critic head no longer
  shapes the shared quantized trunk;
- ``no-student-states``: teacher-visited states only (``dagger: false``), no DAgger mix.

and QPD with one part of the recipe for hard tasks switched on at a time (training/qpd/config.py
says what each does), all of them together (``recipe``), and a float student of the same shape
(``float-student``, the control: what the shape reaches without quantization):

- ``log-std-teacher``, ``clip-targets``, ``separate-critic``, ``float-warm-start``,
  ``global-lr`` (one cosine over all stages, down to 1 % of the rate), ``more-student-states``
  (DAgger share 25 % → 75 %), ``output-affine`` (continuous actions only), ``first-last-8``
  (first and output layers at 8 bits: more deployed bits; ``first-8`` and ``last-8`` each alone), ``recipe`` (every recipe part but
  ``first-last-8``), ``core`` (the parts that helped alone on HalfCheetah: log-std from the
  teacher, separate critic, one schedule, output affine) and ``recipe-first-last-8``;
  ``rl-finetune`` (200k steps of PPO with a KL term towards the teacher after distillation,
  training/qpd/finetune.py) and ``first-last-8-rl-finetune``.

It writes ``ablation.md`` (with each variant's return minus QPD's at the same bits),
``ablation.json`` and ``ablation.png`` (return against bits, a band per variant). Each variant's
trial records and run folders live in a sub-folder of their own: a variant changes what a trial
computes, not its name.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from training import atomic
from training.errors import FlowError
from training.students.student import dense_label
from flow.experiments.table import (IQM_NOTE, iqm_cell, iqm_cells, aggregate, bits_label, made_by, plot_return_against_bits, settings_note, teacher_record,
                                    validate_trials)
from flow.experiments.trials import Trial, grid_extra, run_trials


@dataclass(frozen=True)
class Variant:
    """QPD with (at most) one idea switched off."""

    label: str
    method: str
    settings: dict[str, Any] = field(default_factory=dict)
    colour: str = "tab:grey"


VARIANTS: dict[str, Variant] = {
    "qpd": Variant("QPD (all on)", "qpd", colour="tab:purple"),
    "no-transition": Variant("no precision transition (direct)", "direct", colour="tab:red"),
    "no-value-term": Variant("no value term (policy KL only)", "qpd", {"loss": {"value_coef": 0.0}}, "tab:cyan"),
    "no-student-states": Variant("no student-visited states (no DAgger)", "qpd", {"dagger": False}, "tab:olive"),
    "log-std-teacher": Variant("+ student log-std from the teacher's", "qpd", {"log_std_init": "teacher"}, "tab:blue"),
    "clip-targets": Variant("+ teacher means clipped to the action range", "qpd", {"clip_targets": True}, "tab:orange"),
    "separate-critic": Variant("+ separate float critic (off the low-bit trunk)", "qpd", {"critic": "separate"}, "tab:green"),
    "float-warm-start": Variant("+ float warm start", "qpd", {"float_warm_start": True}, "tab:brown"),
    "global-lr": Variant("+ one learning-rate schedule over all stages", "qpd",
                         {"lr_schedule": "global", "lr_final_factor": 0.01}, "tab:pink"),
    "more-student-states": Variant("+ more student-visited states (25 % → 75 %)", "qpd",
                                   {"mix_start": 0.25, "mix_end": 0.75}, "tab:gray"),
    "output-affine": Variant("+ per-action output scale and bias (host)", "qpd", {"output_affine": True}, "gold"),
    "first-last-8": Variant("+ first and output layers at 8 bits", "qpd", {"first_bits": 8, "last_bits": 8}, "navy"),
    "first-8": Variant("+ first layer at 8 bits", "qpd", {"first_bits": 8}, "steelblue"),
    "last-8": Variant("+ output layer at 8 bits", "qpd", {"last_bits": 8}, "slateblue"),
    "recipe": Variant("recipe: every + above but first/last at 8 bits", "qpd", RECIPE := {
        "log_std_init": "teacher", "clip_targets": True, "critic": "separate", "float_warm_start": True,
        "lr_schedule": "global", "lr_final_factor": 0.01, "mix_start": 0.25, "mix_end": 0.75, "output_affine": True},
        "black"),
    "core": Variant("core: log-std from the teacher, separate critic, one lr schedule, output affine", "qpd", CORE := {
        "log_std_init": "teacher", "critic": "separate", "lr_schedule": "global", "lr_final_factor": 0.01,
        "output_affine": True}, "crimson"),
    "recipe-first-last-8": Variant("recipe + first and output layers at 8 bits", "qpd",
                                   {**RECIPE, "first_bits": 8, "last_bits": 8}, "darkgreen"),
    "rl-finetune": Variant("+ RL fine-tuning (PPO + KL to the teacher, 200k steps)", "qpd", FINETUNE := {
        "finetune": {"steps": 200_000}}, "teal"),
    "first-last-8-rl-finetune": Variant("+ first and output layers at 8 bits + RL fine-tuning", "qpd",
                                        {**FINETUNE, "first_bits": 8, "last_bits": 8}, "darkcyan"),
    "float-student": Variant("float student of the same shape (control)", "float", colour="silver"),
}
#: Variants that only apply to continuous actions (dropped, with a note, on discrete environments).
CONTINUOUS_ONLY = {"output-affine"}


def check_variants(names: list[str]) -> list[str]:
    """``names`` if every one is a known variant, else :class:`FlowError` naming the known ones."""
    unknown = [v for v in names if v not in VARIANTS]
    if unknown or not names:
        raise FlowError(f"unknown ablation variant(s) {', '.join(unknown) or '(none given)'}; known: {', '.join(VARIANTS)}")
    return names


def build_ablation_trials(env_id: str, teacher_dir: Path, bits: list[int], seeds: list[int], variants: list[str],
                          hidden: list[int], updates: int, episodes: int, runs_dir: Path,
                          settings: dict[str, Any] | None = None) -> dict[str, list[Trial]]:
    """Every variant's trials (bits × seeds), checked before any runs; ``settings`` (a grid config,
    see :func:`flow.experiments.table.grid_settings`) reach every variant, whose own switch wins."""
    check_variants(variants)
    from training.envs import env_info

    if env_info(env_id).discrete:  # a per-action output affine is for continuous actions; recipes drop it there
        variants = [v for v in variants if v not in CONTINUOUS_ONLY]

    def variant_settings(name: str) -> dict[str, Any]:
        own = dict(VARIANTS[name].settings)
        if env_info(env_id).discrete:
            own.pop("output_affine", None)
        return own

    trials = {name: [Trial(env_id=env_id, method=VARIANTS[name].method, bits=b, seed=s, hidden=tuple(hidden),
                           updates=updates, episodes=episodes, teacher_dir=str(teacher_dir),
                           runs_dir=str(runs_dir / name), extra=grid_extra(env_id, {**(settings or {}), **variant_settings(name)}))
                     for b in bits for s in seeds]
              for name in variants}
    validate_trials([t for ts in trials.values() for t in ts])
    return trials


def with_gain_over_qpd(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Add ``vs_qpd``: a row's mean return minus the full QPD row's at the same bits (None without one)."""
    qpd = {r["bits"]: r["mean_return"] for r in rows if r["variant"] == "qpd"}
    return [{**r, "vs_qpd": r["mean_return"] - qpd[r["bits"]] if r["bits"] in qpd else None} for r in rows]


def markdown(env_id: str, teacher: dict[str, Any], rows: list[dict[str, Any]], command: str, hidden: list[int],
             settings: dict[str, Any] | None = None) -> str:
    """The ablation table a person reads (``settings``: the grid's distillation settings, named)."""
    floor = teacher["mean_return"] - teacher["std_return"]
    order = list(VARIANTS)
    lines = [
        f"# QPD ablation: {env_id}",
        "",
        f"Teacher {teacher['mean_return']:.2f} ± {teacher['std_return']:.2f} over {teacher['n_episodes']} episodes. "
        f"Students {dense_label(hidden)} (8-bit input), same updates and seeds for every variant; each variant "
        f"switches one idea of QPD off (no-…) or one part of the recipe on (+ …). A seed keeps the teacher's return "
        f"when its mean is ≥ {floor:.2f}. *vs QPD*: the variant's mean return minus QPD's at the same bits.",
        "",
        *settings_note(settings),
        *([IQM_NOTE, ""] if iqm_cells(rows)[2] else []),
        "| bits (w/a) | variant | return |" + iqm_cells(rows)[0] + " worst seed | seeds keeping teacher | "
        "agreement with teacher | vs QPD |",
        "| ---: | --- | --- |" + iqm_cells(rows)[1] + " ---: | ---: | ---: | ---: |",
    ]
    iqm_on = iqm_cells(rows)[2]
    for row in sorted(rows, key=lambda r: (-r["bits"], order.index(r["variant"]))):
        delta = "–" if row["variant"] == "qpd" or row["vs_qpd"] is None else f"{row['vs_qpd']:+.2f}"
        agree = f"{100 * row['agreement']:.1f} %" if row["agreement"] is not None else "–"
        lines.append(f"| {bits_label(row['bits'], 'qpd')} | {VARIANTS[row['variant']].label} | "
                     f"{row['mean_return']:.2f} ± {row['std_over_seeds']:.2f} |{iqm_cell(row, iqm_on)} "
                     f"{row['worst_seed_mean']:.2f} | {row['seeds_keeping_teacher']}/{len(row['seeds'])} | {agree} | {delta} |")
    lines += ["", f"Made by: `{command}`", ""]
    return "\n".join(lines)


def ablation(env_id: str, teacher_dir: Path, *, bits: list[int], seeds: list[int], variants: list[str],
             hidden: list[int], updates: int, episodes: int, jobs: int, out_dir: Path, runs_dir: Path,
             executor: str = "process", settings: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run (or read) every variant's trials and write the ablation's files into ``out_dir``
    (``executor``: where the trials run, see :func:`flow.experiments.trials.run_trials`;
    ``settings``: distillation settings for every variant, see :func:`build_ablation_trials`)."""
    teacher = teacher_record(teacher_dir, env_id)
    trials = build_ablation_trials(env_id, teacher_dir, bits, seeds, variants, hidden, updates, episodes, runs_dir,
                                   settings)
    variants = list(trials)  # without the variants that do not apply to this environment
    # One call for every variant's trials (each filed under its variant), so every job stays busy to the end.
    # A trial's variant is the last part of its runs_dir (build_ablation_trials puts it there).
    every = [t for ts in trials.values() for t in ts]
    done = run_trials(every, out_dir / "trials", jobs, desc=f"{env_id} ablation", executor=executor,
                      cache_name=lambda t: f"{Path(t.runs_dir).name}/{t.key}")
    records = [{**rec, "variant": Path(t.runs_dir).name} for t, rec in zip(every, done)]
    rows = with_gain_over_qpd(aggregate(records, teacher, ("variant", "bits")))
    command = made_by("ablation", "ablation", env_id)
    data = {"env_id": env_id, "teacher": teacher, "variants": {n: {"method": VARIANTS[n].method,
            "settings": VARIANTS[n].settings} for n in variants},
            "settings": {"bits": bits, "seeds": seeds, "hidden": hidden, "updates": updates, "episodes": episodes,
                         **({"distill_settings": settings} if settings else {})},
            "rows": rows, "trials": records, "command": command}
    write_ablation(data, out_dir)
    return data


def write_ablation(data: dict[str, Any], out_dir: Path) -> None:
    """Write ``ablation.json``, ``.md`` and ``.png`` from the ablation's data."""
    env_id, teacher, rows = data["env_id"], data["teacher"], data["rows"]
    atomic.write_json(out_dir / "ablation.json", data)
    atomic.write_text(out_dir / "ablation.md", markdown(env_id, teacher, rows, data["command"], data["settings"]["hidden"],
                                                        data["settings"].get("distill_settings")))
    series = [(VARIANTS[n].label, VARIANTS[n].colour, [r for r in rows if r["variant"] == n]) for n in data["variants"]]
    plot_return_against_bits(f"{env_id}: QPD ablation", teacher, series, out_dir / "ablation.png")


def rerender_ablation(out_dir: Path) -> dict[str, Any]:
    """Re-render an ablation's files from the trials and teacher record in its ``ablation.json`` (nothing is run)."""
    data = json.loads((out_dir / "ablation.json").read_text())
    data["rows"] = with_gain_over_qpd(aggregate(data["trials"], data["teacher"], ("variant", "bits")))
    write_ablation(data, out_dir)
    return data
