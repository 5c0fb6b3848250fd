"""The end-to-end flow on one environment: teacher, QPD, export, estimate, verify, compare.

``make demo`` runs it on CartPole-v1 (``make demo ENV=MinAtar/Breakout-v1``: a pixel student).
It drives every stage (training, hw_build, host), which is why it lives here, above them.
"""

from __future__ import annotations

import time


#: States of the verification ladder of the all-RTL demo (levels 4 and 4b simulate every one in Verilator).
RTL_DEMO_STATES = 2000


def run_demo(env: str, seed: int = 0, weights: str = "fixed", impl: str = "hls") -> None:
    """Run the whole flow on ``env`` with student seed ``seed`` and print a summary at the end.

    ``weights="runtime"``: the design is writable (design ``demo-<env>-runtime``), and its comparison
    writes the student into the accelerator over AXI-lite first (``make load-policy``).
    ``impl="rtl"``: the all-RTL design (``demo-<env>-rtl``): the student is distilled with narrow-range
    weights (FINN's RTL MVU needs them on the xc7z020), every layer is RTL, the argmax of a discrete
    policy is the host's; the ladder adds levels 4 and 4b (each layer, then the whole dataflow
    partition stitched with FINN's FIFOs and width converters, in Verilator under random stalls)
    and ``make synth`` counts it with Yosys."""
    from hw_build.compile import BuildChoice, estimate_design
    from hw_build.export import export_design
    from hw_build.verify import verify_design
    from training.qpd.distill import distill
    from training.qpd.config import load_qpd_config
    from training.teacher.train import train_teacher
    from training.errors import FlowError

    t0 = time.perf_counter()

    def stage(text: str) -> None:
        print(f"\n== [{time.perf_counter() - t0:5.0f} s] {text} ==")

    stage(f"1/6 PPO teacher on {env}")
    from training.runs import teacher_run_dir
    from training.teacher.committed import restore_committed_teacher

    restore_committed_teacher(env, teacher_run_dir(env, 0))  # the committed teacher, where there is one
    teacher = train_teacher(env, 0)
    cfg = load_qpd_config(env_id=env, seed=seed, narrow_weights=True if impl == "rtl" else None)
    ladder = " -> ".join(str(w) for w, _ in cfg.stages())
    stage(f"2/6 QPD: {cfg.arch_label()} student, {ladder} bits")
    from flow.experiments.trials import teacher_fingerprint
    from training.qpd.distill import other_run, student_run_dir

    run_dir = student_run_dir(cfg)
    stale = other_run(run_dir, cfg, teacher_fingerprint(str(teacher_run_dir(env, 0))))
    if stale:
        print(f"{run_dir} holds {stale} (an older default, or a retrained teacher?): distilling it again")
    student = distill(cfg, teacher_run_dir(env, 0), force=bool(stale))
    design = f"demo-{env.replace('/', '-')}" + ("-rtl" if impl == "rtl" else "") + ("-runtime" if weights == "runtime" else "")
    stage(f"3/6 export to QONNX (design {design})")
    export_design(student_run_dir(cfg), design, force=True)
    from hw_build.design import QONNX_FILE, existing_design_dir
    from hw_build.folding import default_latency_us

    budget = default_latency_us(existing_design_dir(design) / QONNX_FILE)
    stage(f"4/6 FINN estimate for the PYNQ-Z2: the smallest folding within {budget:g} µs"
          + (", binary frames as they are" if cfg.conv else ", input quantized on the host"))
    est = estimate_design(design, choice=BuildChoice(weights=weights, impl=impl),
                          kind="codegen" if impl == "rtl" else "estimate")
    if impl == "rtl":
        stage(f"5/6 verification ladder on {RTL_DEMO_STATES:,} states (Brevitas, QONNX, FINN graphs; each RTL layer "
              "and the stitched dataflow in Verilator), then Yosys")
        verify_design(design, n_states=RTL_DEMO_STATES)
        rtl_line = rtl_summary(design)
    else:
        rtl_line = rtl_variant(student_run_dir(cfg), design)
        print(f"  {rtl_line}")
        stage("5/6 verification ladder (Brevitas, QONNX, FINN graphs)")
        verify_design(design)
    stage("6/6 environment loop against the emulated accelerator vs software, 100 episodes")
    from flow.cli import build_parser
    from flow.compare import workstation_references
    from host.cli import compare

    if weights == "runtime":
        from flow.api import compare_args

        rep = compare_args(build_parser().parse_args(["compare", "--design", design, "--episodes", "100",
                                                      "--run", str(student_run_dir(cfg))])).report
    else:
        rep = compare(build_parser().parse_args(["compare", "--design", design, "--episodes", "100"]),
                      workstation_references, prog="python -m flow")
    if not rep["verdict"]["passed"]:
        raise FlowError(f"the demo's comparison failed ({rep['verdict']['line']})")
    brevitas = rep["software"].get("Brevitas student", {})
    deployed = rep["deployed"]
    teacher_bits = student["size"]["teacher"]["total_bits"]
    print(f"\n== demo done in {time.perf_counter() - t0:.0f} s ==\n"
          f"teacher {teacher['mean_return']:.1f} ± {teacher['std_return']:.1f}; QPD student {student['student']} "
          f"{student['mean_return']:.1f} ± {student['std_return']:.1f}, deployed in {deployed['total_bits']:,} bits "
          f"({100 * deployed['total_bits'] / teacher_bits:.2f} % of the teacher's {teacher_bits:,}; every weight and "
          f"threshold{'' if cfg.conv else ', the host input quantizer included'}); est. {est.resources['LUT']:,.0f} LUT, "
          f"{est.resources['BRAM_18K']:,.0f} BRAM_18K, {est.resources['DSP']:,.0f} DSP, {est.latency_ns / 1000:.2f} µs; "
          f"emulated accelerator {rep['hardware']['mean_return']:.1f} ± {rep['hardware']['std_return']:.1f}, agreeing with the "
          f"Brevitas student on {100 * brevitas.get('step_agreement', float('nan')):.2f} % of steps and "
          f"{brevitas.get('identical_returns', 0)}/{rep['episodes']} episode returns\n{rtl_line}")


def rtl_summary(design: str) -> str:
    """The all-RTL demo's hardware line: the stitched simulation's latency and Yosys's counts
    (``make synth``, run here), each labelled with where it comes from."""
    from hw_build.design import existing_design_dir
    from hw_build.stitch import simulated_latency
    from hw_build.synth import summary, synth_design

    record = synth_design(design, quiet=True)
    print(summary(record))
    best = record["best"]
    sim = simulated_latency(existing_design_dir(design))
    latency = (f"one frame {sim['latency_us']:.2f} µs, {sim['cycles_per_frame']} cycles/frame "
               f"(simulated (Verilator), {'whole dataflow partition' if sim['whole_partition'] else 'RTL part'}, "
               f"{sim['states']:,} states; FINN est. {sim['finn_estimated_latency_us']:.2f} µs)" if sim
               else "no stitched simulation (see make rtlsim)")
    return (f"all-RTL design {design}: {latency}; {best['LUT']:,.0f} LUT, {best['DSP']:,.0f} DSP, "
            f"{best['BRAM_18K']:,.0f} BRAM_18K ({best['figures']})")


def rtl_variant(run_dir, design: str) -> str:
    """The demo's line on the same student built with ``IMPL=rtl`` (FINN estimates; the default
    design stays HLS, see docs/hardware.md "HLS or all-RTL"), as design ``<design>-same-student-rtl``
    (``demo-<env>-rtl`` is ``make demo IMPL=rtl``'s all-RTL design of a narrow-range student)."""
    import json

    from hw_build.compile import BuildChoice, estimate_design
    from hw_build.design import ESTIMATE_FILE, existing_design_dir
    from hw_build.export import export_design
    from training.errors import FlowError

    name = f"{design}-same-student-rtl"
    try:
        export_design(run_dir, name, force=True, n_states=200)
        est = estimate_design(name, choice=BuildChoice(impl="rtl"), quiet=True)
    except FlowError as exc:
        return f"IMPL=rtl variant of this student could not be built: {exc}"
    kept = json.loads((existing_design_dir(name) / ESTIMATE_FILE).read_text()).get("kept_in_hls", [])
    layers = (f"{len(kept)} layer(s) kept in HLS by FINN ({kept[0]['why']})" if kept
              else "every layer RTL, the argmax on the host")
    return (f"IMPL=rtl variant of this student ({name}): est. {est.resources['LUT']:,.0f} LUT, "
            f"{est.resources['BRAM_18K']:,.0f} BRAM_18K, {est.resources['DSP']:,.0f} DSP, {est.latency_ns / 1000:.2f} µs; "
            f"{layers}; make demo IMPL=rtl: the all-RTL design, simulated whole and counted by Yosys")


