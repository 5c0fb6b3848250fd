"""The comparison report: ``compare.json``, ``compare.md`` and plots (the product's proof), and its verdict.

Returns are paired by seed; a paired sign-flip permutation test (numpy only: the board has no
scipy guarantee) says whether the hardware's returns differ from each software policy's.

The verdict (:func:`verdict`) is what makes the comparison a check: it fails when the hardware's
actions differ from the verdict's reference on any step (discrete: another index; continuous:
more than one output step apart), when any episode stopped on an accelerator timeout, or when
no step ran at all. The reference is the Brevitas student fed float observations where a
workstation has it (it shares nothing with the host's input quantizer, so a wrong quantizer in
accel.json is caught); on the board, the independent reference it has.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from host.loop.episodes import LoopResult

PERMUTATIONS = 20_000


def paired_permutation_test(a: list[float], b: list[float], seed: int = 0) -> dict[str, Any]:
    """Two-sided paired test of mean(a - b) = 0 by random sign flips of the differences."""
    diff = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    observed = abs(diff.mean())
    if not diff.any():
        return {"test": "paired sign-flip permutation", "mean_difference": 0.0, "p_value": 1.0,
                "identical": True, "n": len(diff)}
    rng = np.random.default_rng(seed)
    signs = rng.choice([-1.0, 1.0], size=(PERMUTATIONS, len(diff)))
    extreme = np.count_nonzero(np.abs((signs * diff).mean(axis=1)) >= observed - 1e-12)
    return {"test": "paired sign-flip permutation", "mean_difference": float(diff.mean()),
            "p_value": float((extreme + 1) / (PERMUTATIONS + 1)), "identical": False, "n": len(diff),
            "permutations": PERMUTATIONS}


def format_p(test: dict[str, Any]) -> str:
    """A p-value as text; at the permutation test's floor, ``p < 1/(N+1)`` rather than a number."""
    floor = 1 / (test.get("permutations", PERMUTATIONS) + 1)
    if test["p_value"] <= floor:
        return f"p < 1/{test.get('permutations', PERMUTATIONS) + 1:,}"
    return f"p = {test['p_value']:.3g}"


def percentiles(values: list[float]) -> dict[str, float]:
    """p50 / p99 / mean in microseconds."""
    if not values:
        return {}
    us = np.asarray(values) * 1e6
    return {"p50_us": float(np.percentile(us, 50)), "p99_us": float(np.percentile(us, 99)), "mean_us": float(us.mean()),
            "calls": len(us)}


#: How the report names the parts of a hardware call (``pack`` includes the host's input quantizer).
CALL_PART_LABELS = {"pack": "quantize + pack", "accel": "accelerator", "network": "network round trip (remote)",
                    "env_step": "env step"}


def build_report(meta: dict[str, Any], hw: LoopResult, software: dict[str, LoopResult]) -> dict[str, Any]:
    """The comparison as data."""
    steps = sum(e.length for e in hw.episodes)
    rep: dict[str, Any] = {
        **meta,
        "episodes": len(hw.episodes),
        "seeds": [e.seed for e in hw.episodes],
        "hardware": {"returns": hw.returns, "lengths": [e.length for e in hw.episodes],
                     "mean_return": float(np.mean(hw.returns)), "std_return": float(np.std(hw.returns)),
                     "steps": steps,
                     "stopped": [{"seed": e.seed, "why": e.stopped, "timeout": e.timed_out}
                                 for e in hw.episodes if e.stopped]},
        "software": {},
        "latency": {key: percentiles(vals) for key, vals in hw.times.items() if vals},
    }
    for name, result in software.items():
        agree = sum(e.agree.get(name, 0) for e in hw.episodes)
        rep["software"][name] = {
            "returns": result.returns, "mean_return": float(np.mean(result.returns)),
            "std_return": float(np.std(result.returns)),
            "identical_returns": int(sum(a == b for a, b in zip(hw.returns, result.returns))),
            "agreeing_steps": int(agree),
            "step_agreement": agree / steps if steps else 0.0,
            "episodes_fully_agreeing": int(sum(e.agree.get(name, 0) == e.length for e in hw.episodes)),
            "paired_test": paired_permutation_test(hw.returns, result.returns),
            "latency": percentiles(hw.times.get(f"shadow:{name}", [])),
        }
    return rep


def verdict(rep: dict[str, Any], reference: str, allow_disagreement: bool = False,
            problems: list[str] | None = None) -> dict[str, Any]:
    """The comparison's verdict against the software policy ``reference`` (a key of ``rep["software"]``).

    ``problems``: where the design's files differ from its FINN graph (a workstation checks), each a cause.
    ``causes`` lists every failure (empty when it passed); ``line`` is the one line a person or a
    script reads; ``passed`` is False on any cause, unless ``allow_disagreement`` (a study of faulty
    hardware) turned the failure into a warning (``allowed``).
    """
    hw = rep["hardware"]
    steps, episodes = hw["steps"], rep["episodes"]
    causes = []
    if steps == 0:
        causes.append(f"no step ran in {episodes} episode(s): the hardware never returned an action")
    timeouts = [s for s in hw["stopped"] if s.get("timeout")]
    if timeouts:
        causes.append(f"{len(timeouts)} of {episodes} episode(s) stopped on an accelerator timeout "
                      f"(first: seed {timeouts[0]['seed']})")
    sw = rep["software"].get(reference)
    if sw is None:
        causes.append(f"the verdict's reference, {reference}, did not run")
    elif steps and sw["agreeing_steps"] < steps:
        causes.append(f"the hardware's actions differ from the {reference}'s on {steps - sw['agreeing_steps']} of "
                      f"{steps} steps (agreement {100 * sw['step_agreement']:.2f} %)")
    if problems:
        causes.append(f"the design's files differ from its FINN graph ({'; '.join(problems[:3])}"
                      f"{'; ...' if len(problems) > 3 else ''})")
    if not causes:
        line = (f"verdict: PASSED: the hardware's actions are the {reference}'s on all {steps} steps of "
                f"{episodes} episodes, no timeout")
    elif allow_disagreement:
        line = "verdict: WARNING (failure allowed by ALLOW_DISAGREEMENT): " + "; ".join(causes)
    else:
        line = "verdict: FAILED: " + "; ".join(causes)
    return {"reference": reference, "passed": not causes or allow_disagreement, "allowed": bool(causes) and
            allow_disagreement, "causes": causes, "line": line,
            "rule": "every step's action equal (discrete) or within one output step (continuous), no accelerator "
                    "timeout, at least one step"}


def headline(rep: dict[str, Any]) -> str:
    """The one paragraph a person reads first."""
    hw = rep["hardware"]
    served = f" ({rep['fabric']} fabric at {rep['board']})" if rep["backend"] == "remote" and rep.get("fabric") else ""
    lines = [f"{rep['env_id']}, design {rep['design']}, backend {rep['backend']}{served}, {rep['episodes']} seeded episodes: "
             f"hardware {hw['mean_return']:.2f} ± {hw['std_return']:.2f}"]
    policy = rep.get("policy")
    if policy:  # a writable design: the student that ran, by the hash of the words read back from the accelerator
        lines.append(f"  policy {policy['name']} (sha256 {policy['policy_sha256']}) written over AXI-lite, read back "
                     "equal, flushed")
    for name, sw in rep["software"].items():
        test = sw["paired_test"]
        verdict = "identical returns on every episode" if test["identical"] else \
            f"mean difference {test['mean_difference']:+.2f}, {format_p(test)}"
        lines.append(f"  vs {name}: {sw['mean_return']:.2f} ± {sw['std_return']:.2f}; action agreement "
                     f"{100 * sw['step_agreement']:.2f} % of steps; {verdict}")
    accel = rep["latency"].get("policy", {})
    if accel:
        lines.append(f"  hardware policy call p50 {accel['p50_us']:.1f} µs, p99 {accel['p99_us']:.1f} µs "
                     f"({rep['backend']} backend)")
    return "\n".join(lines)


def markdown(rep: dict[str, Any]) -> str:
    """``compare.md``."""
    out = [f"# Hardware vs software: {rep['design']}", "", "```", headline(rep), "```", "",
           "| policy | mean return ± std | identical returns | step agreement with hardware | paired test (p) | p50 call (µs) |",
           "| --- | --- | ---: | ---: | --- | ---: |"]
    hw = rep["hardware"]
    out.append(f"| hardware ({rep['backend']}) | {hw['mean_return']:.2f} ± {hw['std_return']:.2f} | – | – | – | "
               f"{rep['latency'].get('policy', {}).get('p50_us', float('nan')):.1f} |")
    for name, sw in rep["software"].items():
        test = sw["paired_test"]
        p_value = "identical" if test["identical"] else format_p(test)
        out.append(f"| {name} | {sw['mean_return']:.2f} ± {sw['std_return']:.2f} | {sw['identical_returns']}/{rep['episodes']} "
                   f"| {100 * sw['step_agreement']:.2f} % | {p_value} | {sw['latency'].get('p50_us', float('nan')):.1f} |")
    out += ["", "Hardware call split (per call, µs):", "", "| part | p50 | p99 |", "| --- | ---: | ---: |"]
    for key in ("check", "pack", "accel", "unpack", "network", "env_step"):
        lat = rep["latency"].get(key)
        if lat:
            out.append(f"| {CALL_PART_LABELS.get(key, key)} | {lat['p50_us']:.1f} | {lat['p99_us']:.1f} |")
    if hw["stopped"]:
        out += ["", "Stopped episodes:"] + [f"- seed {s['seed']}: {s['why']}" for s in hw["stopped"]]
    if rep.get("verdict"):
        out += ["", f"**{rep['verdict']['line']}** (reference: {rep['verdict']['reference']}; rule: "
                    f"{rep['verdict']['rule']})"]
    out += ["", f"Made by: `{rep['command']}`", ""]
    return "\n".join(out)


def plot(rep: dict[str, Any], path: Path) -> bool:
    """Returns per episode (hardware vs each software policy) and the latency CDF; False without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    hw = rep["hardware"]["returns"]
    for name, sw in rep["software"].items():
        ax1.scatter(sw["returns"], hw, s=12, alpha=0.7, label=name)
    every = hw + [r for sw in rep["software"].values() for r in sw["returns"]]
    lo, hi = min(every), max(every)
    ax1.plot([lo, hi], [lo, hi], color="grey", lw=0.8, ls="--")
    ax1.set_xlabel("software return (same seed)")
    ax1.set_ylabel("hardware return")
    ax1.set_title("return per episode, paired by seed")
    ax1.legend(fontsize=7)
    for key, values in rep.get("_raw_times", {}).items():
        if values:
            us = np.sort(np.asarray(values) * 1e6)
            ax2.plot(us, np.arange(1, len(us) + 1) / len(us), label=key)
    ax2.set_xscale("log")
    ax2.set_xlabel("latency per call (µs, log)")
    ax2.set_ylabel("CDF")
    ax2.set_title(f"latency ({rep['backend']} backend)")
    ax2.legend(fontsize=7)
    ax2.grid(alpha=0.3, which="both")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    path.write_bytes(buf.getvalue())
    return True


REPORT_FILES = ("compare.json", "compare.md", "compare.png")


def write_report(rep: dict[str, Any], raw_times: dict[str, list[float]], out_dir: Path) -> list[Path]:
    """Write ``compare.json``, ``compare.md`` and ``compare.png`` into ``out_dir`` as one unit; return the paths.

    The three are written into a fresh folder beside ``out_dir``, which then replaces it by renames:
    a reader sees the old report or the new one, never a json of one run beside the md of another.
    Files of ours already in ``out_dir`` are replaced; other files there are carried over.
    """
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}.", suffix=".tmp"))
    old = None
    try:
        os.chmod(staging, 0o777 & ~_umask())
        (staging / "compare.json").write_text(json.dumps(rep, indent=2) + "\n")
        (staging / "compare.md").write_text(markdown(rep))
        plot({**rep, "_raw_times": raw_times}, staging / "compare.png")
        if out_dir.is_dir():
            for other in out_dir.iterdir():
                if other.name not in REPORT_FILES and not (staging / other.name).exists():
                    os.link(other, staging / other.name) if other.is_file() else shutil.copytree(other, staging / other.name)
            old = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}")
            os.replace(out_dir, old)
        os.replace(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if old is not None and old.exists() and not out_dir.exists():
            os.replace(old, out_dir)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return [out_dir / name for name in REPORT_FILES if (out_dir / name).exists()]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
