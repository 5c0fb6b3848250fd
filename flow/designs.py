"""Many designs at once: export + estimate (+ bitstream where Vivado is) for a list of runs.

Each run becomes the design its single-design targets would make (``make export RUN=<run>``
then ``make estimate DESIGN=<env>-<run name>``, and ``make bitstream`` with ``--bitstream``):
the same folder under ``bitstreams/``, made by the same functions. The designs are independent
tasks on an executor (:mod:`flow.executors`: local processes, or Ray tasks on a cluster's
build servers); a design that fails is reported with its exit code (2 for bad input, 1 for a
crash) and the others go on; a design whose worker has no Vivado is made up to its sources and
reported with exit code 3, as ``make bitstream`` does. The summary (``designs.md``/``.json``
under ``build/designs/``, or ``--out``) lists each design with its est. LUT/BRAM_18K/DSP and
latency (FINN estimates) and what happened to it.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from flow.executors import TaskRunner
from training import atomic
from training.errors import FlowError

EXIT_NO_VIVADO = 3  # as hw_build.compile.EXIT_NO_VIVADO (not imported here: flow imports hw_build lazily)


def build_design(run: str, bitstream: bool, force: bool) -> dict[str, Any]:
    """Export ``run``'s student and estimate its design (and build its bitstream with ``bitstream``).

    Returns the design's summary record, with ``exit_code`` 3 where a bitstream was asked for
    and this machine has no Vivado (everything else is made then, as by ``make bitstream``).
    """
    import torch

    from hw_build.compile import bitstream_design, estimate_design
    from hw_build.export import export_design

    torch.set_num_threads(1)
    name = export_design(run, force=force)["design"]
    est = estimate_design(name, quiet=True)
    record = {"run": run, "design": name, "LUT": est.with_shell["LUT"], "BRAM_18K": est.with_shell["BRAM_18K"],
              "DSP": est.with_shell["DSP"], "latency_us": est.latency_ns / 1000, "fits": est.fits,
              "worker": platform.node(), "status": "estimated", "exit_code": 0}
    if bitstream:
        if bitstream_design(name) == EXIT_NO_VIVADO:
            record.update(status=f"no Vivado on {platform.node()}: estimates and HLS/RTL sources only",
                          exit_code=EXIT_NO_VIVADO)
        else:
            record["status"] = "bitstream built"
    return record


def build_designs(runs: list[str], *, bitstream: bool = False, force: bool = False, executor: str = "process",
                  jobs: int = 1, out: Path | None = None) -> int:
    """Build every run's design on ``executor``; write the summary; return the exit code
    (0, or the highest exit code of a failed design: 3 where only Vivado was missing)."""
    if not runs:
        raise FlowError("no runs given: RUNS=<run folder>,<run folder>,...")
    missing = [r for r in runs if not Path(r).is_dir()]
    if missing:
        raise FlowError(f"no run folder {', '.join(missing)}")
    runner = TaskRunner(executor, jobs)
    results, failures = {}, {}
    bar = tqdm(total=len(runs), desc="designs", unit="design", dynamic_ncols=True)
    for outcome in runner.run(build_design, runs, lambda r: (str(r), bitstream, force)):
        if outcome.error is None:
            results[outcome.item] = outcome.result
            if outcome.result["exit_code"]:
                tqdm.write(f"{outcome.item}: exit {outcome.result['exit_code']}: {outcome.result['status']}")
        else:
            failures[outcome.item] = (outcome.error, outcome.exit_code or 1)
            tqdm.write(f"{outcome.item}: failed (exit {outcome.exit_code}): {outcome.error}")
        bar.update(1)
        bar.set_postfix_str(f"failed {len(failures)}")
    bar.close()
    rows = [results[r] if r in results else
            {"run": r, "status": "failed", "exit_code": failures[r][1], "error": failures[r][0]} for r in runs]
    out = out or Path("build") / "designs"
    atomic.write_json(out / "designs.json", {"format_version": 1, "executor": executor, "bitstream": bitstream,
                                             "designs": rows})
    atomic.write_text(out / "designs.md", markdown(rows))
    print(markdown(rows))
    print(f"written: {out}/designs.md, designs.json")
    return max((row["exit_code"] for row in rows), default=0)


def markdown(rows: list[dict[str, Any]]) -> str:
    """The summary as a markdown table (FINN estimates, the Zynq shell counted)."""
    lines = ["| run | design | status | est. LUT | est. BRAM_18K | est. DSP | est. latency | exit |",
             "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    for row in rows:
        if row["status"] == "failed":
            lines.append(f"| {row['run']} | – | failed: {row['error']} | – | – | – | – | {row['exit_code']} |")
        else:
            lines.append(f"| {row['run']} | {row['design']} | {row['status']} | {row['LUT']:,.0f} | "
                         f"{row['BRAM_18K']:g} | {row['DSP']:g} | {row['latency_us']:.2f} µs | {row['exit_code']} |")
    return "\n".join(lines) + "\n"


def default_design_jobs() -> int:
    """One design at a time per two cores (a FINN build uses more than one)."""
    return max(1, (os.cpu_count() or 1) // 2)
