"""What a student architecture costs on the fabric before (or without) training it.

A probe student of the architecture (random weights, calibrated on random observations) is
exported and compiled like a real design, with FINN's accumulators and thresholds widened to
the worst case their datatypes allow (:func:`hw_build.deployed.worst_case_widths`). The
deployed bits and FINN's resource/latency estimates are therefore an upper bound for every
trained student of that architecture: a real design's accel.json (exact widths from its
weights) never reports more. ``python -m hw_build cost`` prints it.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch


def architecture_cost(env_id: str, hidden: list[int], weight_bits: int, act_bits: int, *, input_bits: int = 8,
                      latency_us: float | None = None, impl: str = "hls", quiet: bool = True,
                      conv: list[int] | None = None, first_bits: int | None = None, last_bits: int | None = None,
                      output_affine: bool = False, kernel: int = 3, stride: int = 1) -> dict[str, Any]:
    """Deployed bits (bound) and FINN's estimates of the default design for a student architecture
    (``conv``: a pixel student's convolution channels; default: the environment's default student's;
    ``kernel``/``stride``: of its convolutions;
    ``first_bits``/``last_bits``: the first and output layers' weight bits; ``output_affine``: a
    continuous student's per-action output scale and bias, on the host)."""
    from hw_build.accel_spec import FINAL_MODEL
    from hw_build.compile import BuildChoice, compile_estimate
    from hw_build.deployed import deployed_bits
    from hw_build.export import export_actor_qonnx
    from hw_build.finn_env import prepare_finn
    from qonnx.core.modelwrapper import ModelWrapper
    from training.envs import env_info
    from training.students.student import QuantStudent, StudentSpec, calibrate

    from training.qpd.config import QPDConfig, default_architecture
    from training.qpd.distill import student_spec_for

    info = env_info(env_id)
    cfg = QPDConfig(env_id=env_id, hidden=list(hidden), weight_bits=weight_bits, act_bits=act_bits, input_bits=input_bits,
                    narrow_weights=impl == "rtl",  # RTL MVUs need narrow weights
                    conv=list(conv) if conv is not None else default_architecture(env_id)[0],
                    first_bits=first_bits, last_bits=last_bits, output_affine=output_affine, kernel=kernel,
                    stride=stride)
    spec = student_spec_for(info, cfg, [], [])
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    probe_states = (rng.random((4096, spec.obs_dim)) < 0.2) if spec.binary_input else rng.normal(size=(4096, spec.obs_dim))
    student = calibrate(QuantStudent(spec), probe_states.astype(np.float32))
    prepare_finn(Path("build") / "finn")
    choice = BuildChoice(latency_us=latency_us, impl=impl)  # None: the design's default budget
    with tempfile.TemporaryDirectory(prefix="arch-cost-", dir=Path("build")) as tmp:
        out = Path(tmp)
        qonnx = export_actor_qonnx(student, out / "policy.qonnx.onnx")
        est, rule, _, _ = compile_estimate(qonnx, out, choice, worst_case=True, search_dir=out / "search")
        model = ModelWrapper(str(out / "intermediate_models" / FINAL_MODEL))
        deployed = deployed_bits(model, host_input_dim=None if spec.binary_input else spec.obs_dim,
                                 host_output_constants=0 if spec.discrete else
                                 (2 * spec.n_out if spec.output_affine else 1))
    record = {"env_id": env_id, "student": spec.label(), "basis": "architecture bound: worst-case accumulator and "
              "threshold widths (FINN datatype-only), FINN estimates", "deployed_bits": deployed["total_bits"],
              "deployed": deployed, "est_resources": {k: est.resources.get(k, 0.0) for k in ("LUT", "BRAM_18K", "DSP")},
              "est_latency_us": est.latency_ns / 1000, "est_with_shell": est.with_shell, "fits": est.fits,
              "folding": rule, "impl": impl}
    if not quiet:
        r = record["est_resources"]
        print(f"{env_id} {spec.label()}: at most {record['deployed_bits']:,} deployed bits "
              f"({deployed['fabric_bits']:,} fabric, {deployed['host_bits']:,} host); est. {r['LUT']:,.0f} LUT, "
              f"{r['BRAM_18K']:,.0f} BRAM_18K, {r['DSP']:,.0f} DSP, {record['est_latency_us']:.2f} µs ({rule}; {impl.upper()})")
    return json.loads(json.dumps(record))
