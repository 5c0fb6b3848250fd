"""What each student architecture in a grid costs on the fabric.

A grid's students of one architecture (hidden widths, weight and activation bits) share one
hardware cost: :func:`hw_build.arch_cost.architecture_cost` compiles a probe of the
architecture with FINN (estimate only, no Vivado) at the default build choice (input quantized
on the host, the smallest folding within ``DEFAULT_LATENCY_US``) and with worst-case
accumulator and threshold widths, so the deployed bits are an upper bound for every trained
student of that architecture and LUT/BRAM/DSP/latency are FINN estimates. Each architecture is
compiled once and cached under ``build/arch-cost/``; the grid's json keeps the figures, so a
re-render needs no FINN.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

from training import atomic
from training.students.student import student_act_bits

#: Methods whose student is the grid's quantized MLP; PTQ keeps the teacher's architecture.
STUDENT_METHODS = ("qpd", "direct", "float-ptq", "qat-ppo")
BASIS = ("architecture bound (as make cost): deployed bits with worst-case accumulator and threshold widths; "
         "LUT, BRAM_18K, DSP and latency are FINN estimates of the dataflow partition, input quantized on the "
         "host, the smallest folding within {latency_us:g} µs (where FINN's folding reaches none, its fastest, "
         "marked over budget)")
#: Bump when what architecture_cost computes changes, so cached figures are not reused.
CACHE_VERSION = 3  # 2: pixel students take the frame as UINT2 (hw_build.export.BINARY_FRAME_DATATYPE); 3: the
# folding search widens FINN's weight stream where the default reaches no folding within the budget


#: The grid settings that change a student's layers (and so its hardware) beyond widths and bits.
LAYER_SETTINGS = ("first_bits", "last_bits", "output_affine", "kernel", "stride")


def layer_options(settings: dict[str, Any] | None) -> dict[str, Any]:
    """The per-layer options of a grid's distillation settings (first/last-layer bits, output affine,
    a pixel student's kernel and stride)."""
    return {k: settings[k] for k in LAYER_SETTINGS if (settings or {}).get(k) not in (None, False)}


def arch_key(hidden: Iterable[int], weight_bits: int, act_bits: int, input_bits: int = 8,
             conv: Iterable[int] = (), first_bits: int | None = None, last_bits: int | None = None,
             output_affine: bool = False, kernel: int = 3, stride: int = 1) -> str:
    """``2x32-w2a2`` (``-i6`` appended for a non-default input width; ``c8-1x16-w2a2`` for a pixel
    student, ``c8s2-1x16-w2a2`` with stride 2; ``2x32-w3a3-f8l8-oa`` where the first/output layers
    differ, as the students are named)."""
    from training.qpd.config import layer_bits_suffix
    from training.students.student import arch_label

    arch = arch_label(hidden, conv, kernel, stride)
    return (f"{arch}-w{weight_bits}a{act_bits}" + layer_bits_suffix(weight_bits, first_bits, last_bits, output_affine)
            + ("" if input_bits == 8 else f"-i{input_bits}"))


def _summary(record: dict[str, Any]) -> dict[str, Any]:
    res = record["est_resources"]
    return {"deployed_bits": record["deployed_bits"], "LUT": res["LUT"], "BRAM_18K": res["BRAM_18K"], "DSP": res["DSP"],
            "latency_us": record["est_latency_us"], "fits": record["fits"]}


def architecture_costs(env_id: str, archs: list[tuple[tuple[int, ...], int, tuple[int, ...]]], input_bits: int = 8,
                       cache_dir: Path = Path("build") / "arch-cost", act_bits: int | None = None,
                       **layers: Any) -> dict[str, Any]:
    """The ``hardware`` record of a grid: the basis and one summary per ``(hidden, weight_bits, conv)``.

    Activation bits: ``act_bits`` (the grid's setting) for every architecture, else the students'
    rule (:func:`student_act_bits`); ``layers``: the grid's per-layer options (:func:`layer_options`),
    the same for every architecture.
    """
    from tqdm.auto import tqdm

    from hw_build.arch_cost import architecture_cost
    from hw_build.folding import DEFAULT_LATENCY_US, PIXEL_LATENCY_US

    wanted = {arch_key(h, b, student_act_bits(b, act_bits), input_bits, c, **layers): (tuple(h), b, tuple(c))
              for h, b, c in archs}
    out: dict[str, Any] = {}
    for key, (hidden, bits, conv) in tqdm(sorted(wanted.items()), desc=f"{env_id} hardware cost", unit="arch"):
        latency = PIXEL_LATENCY_US if conv else DEFAULT_LATENCY_US
        path = cache_dir / f"{env_id.replace('/', '_')}-{key}-lat{latency:g}-v{CACHE_VERSION}.json"
        if path.exists():
            record = json.loads(path.read_text())
        else:
            record = architecture_cost(env_id, list(hidden), bits, student_act_bits(bits, act_bits), input_bits=input_bits,
                                       conv=list(conv), **layers)
            atomic.write_json(path, record)
        out[key] = _summary(record)
    pixels = any(c for _, _, c in archs)
    budget = PIXEL_LATENCY_US if pixels else DEFAULT_LATENCY_US
    return {"basis": BASIS.format(latency_us=budget) + ("; binary frames go in as they are" if pixels else ""),
            "latency_budget_us": budget, "architectures": out}


def trial_settings(trial: dict[str, Any]) -> dict[str, Any]:
    """A trial record's grid settings beyond its key (``extra``: ``conv``, ``kernel``, ``act_bits``, ...)."""
    return {k: v for k, v in trial.get("extra") or []}


def trial_conv(trial: dict[str, Any]) -> tuple[int, ...]:
    """A trial record's convolution channels (pixel students), from its grid settings."""
    return tuple(trial_settings(trial).get("conv") or ())


def trial_student(trial: dict[str, Any]) -> str:
    """A trial record's student name (``2x32``, ``c8k4s2-1x64``), from its shape and grid settings."""
    from training.students.student import arch_label

    settings = trial_settings(trial)
    return arch_label(trial["hidden"], trial_conv(trial), settings.get("kernel", 3), settings.get("stride", 1))


def grid_archs(trials: list[dict[str, Any]]) -> list[tuple[tuple[int, ...], int, tuple[int, ...]]]:
    """The student architectures ``(hidden, weight_bits, conv)`` of a grid's trials, in first-seen order."""
    seen: dict[tuple[tuple[int, ...], int, tuple[int, ...]], None] = {}
    for t in trials:
        if t["method"] in STUDENT_METHODS:
            seen.setdefault((tuple(t["hidden"]), t["bits"], trial_conv(t)), None)
    return list(seen)


def row_cost(hardware: dict[str, Any] | None, method: str, hidden: Iterable[int], bits: int,
             input_bits: int = 8, conv: Iterable[int] = (), act_bits: int | None = None,
             **layers: Any) -> dict[str, Any] | None:
    """A row's architecture summary, or None (PTQ of the teacher, or a grid without costs)."""
    if not hardware or method not in STUDENT_METHODS:
        return None
    return hardware["architectures"].get(arch_key(hidden, bits, student_act_bits(bits, act_bits), input_bits, conv,
                                                  **layers))
