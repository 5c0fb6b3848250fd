"""A minimal reproduction of finn-rtllib's MVU output-queue overflow (hw_build/upstream/).

FINN's ``mvu_vvu_axi`` (finn-plus 1.6.1), configured with one input word per output (SIMD = MW),
is fed an always-valid input and constant weights; only its output's TREADY moves: high for
``ready`` cycles, low for ``stall`` cycles, repeated. The environment keeps every AXI-stream rule,
so a failure is FINN's. Three variants of ``mvu_vvu_axi.sv``:

- ``finn``: as FINN ships it; a TREADY held low long enough (7 cycles at SIMD 4, 6 at SIMD 3)
  stops on FINN's assertion "Overflowing output queue";
- ``finn-no-assert``: the same without the assertion, as silicon would run it: wrong outputs;
- ``patched``: with the fix :func:`hw_build.rtlsim.patch_mvu_output_queue` applies.

``python -m hw_build.mvu_queue_repro`` runs all three at SIMD 4 and 3 (about 20 s of C++ build each).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from training.errors import FlowError

HERE = Path(__file__).resolve().parent / "upstream"
VARIANTS = ("finn", "finn-no-assert", "patched")
ASSERTION = "assert(pop || !push || (OPtr < $signed(MAX_IN_FLIGHT))) else begin"


def build(variant: str, work: Path, simd: int = 4) -> Path:
    """Verilate the reproduction with one variant of ``mvu_vvu_axi.sv`` and ``simd`` (= MW) into
    ``work``; the binary."""
    from hw_build.rtlsim import patch_add_multi, patch_mvu_output_queue, rtllib, verilator

    if variant not in VARIANTS:
        raise FlowError(f"unknown variant {variant!r}: one of {', '.join(VARIANTS)}")
    exe, env = verilator()
    work.mkdir(parents=True, exist_ok=True)
    mvu = rtllib() / "mvu"
    axi = (mvu / "mvu_vvu_axi.sv").read_text()
    if variant == "patched":
        axi = patch_mvu_output_queue(axi)
    elif variant == "finn-no-assert":
        if ASSERTION not in axi:
            raise FlowError("finn-rtllib's mvu_vvu_axi.sv no longer has the output-queue assertion this reproduction removes")
        axi = axi.replace(ASSERTION, "if (0) begin  // assertion removed: what silicon does")
    (work / "mvu_vvu_axi.sv").write_text(axi)
    (work / "add_multi.sv").write_text(patch_add_multi((mvu / "add_multi.sv").read_text()))
    sources = [mvu / "mvu_pkg.sv", work / "add_multi.sv", mvu / "replay_buffer.sv", mvu / "mvu.sv",
               mvu / "mvu_vvu_8sx9_dsp58.sv", work / "mvu_vvu_axi.sv", HERE / "mvu_queue_repro_top.sv"]
    cmd = [str(exe), "--cc", "--exe", "--build", "-j", "2", "--no-timing", "-Wno-fatal", "-Wno-WIDTH",
           "-Wno-INITIALDLY", "-Wno-UNOPTFLAT", f"-GSIMD={simd}", "--top-module", "mvu_queue_repro_top",
           "-Mdir", str(work / "obj"),
           "-o", "sim", *map(str, sources), str(HERE / "mvu_queue_repro.cpp")]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    binary = work / "obj" / "sim"
    if proc.returncode != 0 or not binary.exists():
        raise FlowError(f"Verilator could not build the reproduction: {(proc.stderr or proc.stdout).strip()[-300:]}")
    return binary


def run(binary: Path, ready: int = 20, stall: int = 7, simd: int = 4) -> tuple[bool, str]:
    """One run: TREADY high ``ready`` cycles, low ``stall`` cycles; (passed, the simulator's words)."""
    from hw_build.rtlsim import simulator_message

    proc = subprocess.run([str(binary), str(ready), str(stall), str(simd)], capture_output=True, text=True,
                          timeout=120)
    return proc.returncode == 0, proc.stdout.strip() if proc.returncode == 0 else simulator_message(proc)


def main() -> int:
    """Build and run the three variants at SIMD 4 and 3, TREADY high 20 cycles and low 1 to 12;
    exit 1 unless FINN's file still overflows and the patch passes every pattern."""
    import tempfile

    shown, fixed = True, True
    with tempfile.TemporaryDirectory() as tmp:
        for simd in (4, 3):
            for variant in VARIANTS:
                binary = build(variant, Path(tmp) / f"{variant}-{simd}", simd)
                runs = {stall: run(binary, 20, stall, simd) for stall in range(1, 13)}
                failing = [stall for stall, (ok, _) in runs.items() if not ok]
                said = runs[failing[0]][1] if failing else runs[12][1]
                print(f"SIMD {simd} {variant:<15} first failing TREADY stall: {failing[0] if failing else 'none'}"
                      f" cycles; {said}")
                if variant == "patched":
                    fixed = fixed and not failing
                else:
                    shown = shown and bool(failing)
    print(f"the bug {'reproduces' if shown else 'does NOT reproduce'}; the patch {'fixes' if fixed else 'does NOT fix'} it")
    return 0 if shown and fixed else 1


if __name__ == "__main__":
    sys.exit(main())
