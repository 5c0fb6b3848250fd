"""One truth for commands: the Makefile's variables, ``make help`` and the command-line flags.

For every target: each variable its recipe reads (through the Makefile's helper variables)
is named in its ``make help`` line, and each one named there is read; each one, set on the
make command line, changes the command ``make -n`` prints, and where that command is one of
our command lines, changes what its argparse parser makes of it (the variable reaches a
flag). And a variable make does not know is named in a warning.
"""

from __future__ import annotations

import re
import shlex
import subprocess
from functools import cache

import pytest

from flow.make_help import describe, destination, documented_targets
from tests.conftest import REPO

MAKEFILE = (REPO / "Makefile").read_text()
#: The environment's own variables (where the venvs and Pythons are), not a target's settings.
TOOLS = {"PY", "VENV", "HOST_VENV", "PYTHON_BASE", "PYTHON_HOST", "BOARD_PYTHON", "STAMP", "HOST_STAMP", "MAKE",
         "SHELL", "MAKEFILE_LIST", "SERVE_PYTHON"}
#: A value for each variable that every flag it feeds accepts and that is no default.
PROBE = {"ENV": "Acrobot-v1", "SEED": "5", "EPISODES": "7", "RUN": "runs/x", "STEPS": "99", "FORCE": "1",
         "ALGO": "sac", "BITS": "3", "ABITS": "3", "INPUT_BITS": "6", "WIDTH": "24", "DEPTH": "3", "CONV": "4",
         "KERNEL": "5", "STRIDE": "2", "NARROW": "1", "METHOD": "direct", "SCHEDULE": "8,3", "UPDATES": "123",
         "TEACHER": "t.zip", "CONFIG": "c.yml", "JOBS": "3", "EXECUTOR": "ray", "SEEDS": "4,5", "METHODS": "qpd",
         "OUT": "o", "QAT_PPO_BITS": "8", "VARIANTS": "qpd", "WIDTHS": "8", "CHANNELS": "4", "DIR": "d2",
         "DESIGN": "probe-design", "TARGET_FPS": "1000", "CLOCK_NS": "5", "INPUT": "float", "OBJECTIVE": "fastest",
         "LATENCY_US": "3", "IMPL": "rtl", "STATES": "11", "HIDDEN": "16,16", "BACKEND": "remote",
         "NUM_ENVS": "2", "BOARD": "h:1", "BOARD_DIR": "y", "PORT": "6000", "RUNS": "a,b", "BITSTREAM": "1",
         "DEPLOY_DIR": "x", "BENCH_DESIGN": "bd", "FIRST_BITS": "8", "LAST_BITS": "6", "OUTPUT_AFFINE": "1",
         "ALLOW_DISAGREEMENT": "1", "KEYS": "k", "HOST": "0.0.0.0", "ALL": "1",
         "WEIGHTS": "runtime", "POLICY": "pol", "ALLOW_LOAD": "1"}
#: What a target needs to print its command at all (its required variables).
BASE = {"eval": {"RUN": "runs/r"}, "render": {"DIR": "d"}, "export": {"RUN": "runs/r"},
        "estimate": {"DESIGN": "d"}, "codegen": {"DESIGN": "d"}, "bitstream": {"DESIGN": "d"},
        "rtlsim": {"DESIGN": "d"}, "synth": {"DESIGN": "d"}, "verify": {"DESIGN": "d"}, "compare": {"DESIGN": "d"}, "serve": {"DESIGN": "d"},
        "designs": {"RUNS": "r"}, "deploy-folder": {"DESIGN": "d"}, "deploy": {"DESIGN": "d", "BOARD": "u@b"},
        "board-eval": {"DESIGN": "d"}, "load-policy": {"DESIGN": "d"}, "board-table": {"DESIGN": "d", "DIR": "g"}}
#: Variables that only mean something together with another one.
#: (The variable itself in there: its value in the command compared against.)
TOGETHER = {("compare", "BACKEND"): {"BOARD": "h:1"}, ("compare", "BOARD"): {"BACKEND": "remote", "BOARD": "h:2"},
            ("rtlsim", "IMPL"): {"IMPL": "hls"}, ("compare", "KEYS"): {"BACKEND": "remote", "BOARD": "h:1"},
            ("board-table", "BOARD"): {"BACKEND": "remote", "BOARD": "h:2"},
            ("board-table", "KEYS"): {"BACKEND": "remote", "BOARD": "h:1"}}
#: Where a target's default or choices differ from the probe above.
PROBE_FOR = {("input-precision", "BITS"): "4", ("serve", "BACKEND"): "emulated", ("board-table", "BACKEND"): "pynq"}
#: Our command lines, by ``python -m`` module.
PARSERS = {"training": "training.cli", "flow": "flow.cli", "hw_build": "hw_build.cli", "host": "host.cli"}


def _joined(text: str) -> str:
    return text.replace("\\\n", " ")


def _definitions() -> dict[str, str]:
    """The Makefile's variable definitions (the last of each name)."""
    defs = {}
    for line in _joined(MAKEFILE).splitlines():
        m = re.match(r"^([A-Za-z_]+)\s*(?:\?=|:=|=)(.*)$", line)
        if m:
            defs[m.group(1)] = m.group(2)
    return defs


def _targets() -> dict[str, tuple[str, str]]:
    """``{target: (help text, recipe)}`` for every documented target."""
    return documented_targets()


def _read(text: str, defs: dict[str, str], seen: set[str] | None = None) -> set[str]:
    """The upper-case variables ``text`` reads, through the lower-case helpers it uses."""
    seen = set() if seen is None else seen
    names = set(re.findall(r"\$\(([A-Za-z_]+)\)", text))
    names |= set(re.findall(r"\$\(call opt,([A-Z_]+),", text))
    names |= set(re.findall(r"\$\(origin ([A-Z_]+)\)", text))
    names |= set(re.findall(r"\$\(call given,([A-Z_]+)\)", text))
    found = set()
    for name in names:
        if name.islower() or name in ("opt", "given"):
            if name not in seen and name in defs:
                seen.add(name)
                found |= _read(defs[name], defs, seen)
        else:
            found.add(name)
    return found - TOOLS


def _named(help_text: str) -> set[str]:
    return set(re.findall(r"\b([A-Z][A-Z_]+)=", help_text))


TARGETS = _targets()


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_help_names_every_variable_the_recipe_reads_and_no_other(target):
    help_text, recipe = TARGETS[target]
    read = _read(recipe, _definitions())
    assert read == _named(help_text), f"make {target}: read {sorted(read)}, named {sorted(_named(help_text))}"


def test_every_variable_a_user_may_set_is_known_to_the_typo_warning():
    defs = _definitions()
    declared = set(defs["USER_VARIABLES"].split())
    used = set().union(*(_read(recipe, defs) for _, recipe in TARGETS.values()))
    assert declared == used


@cache
def _parser(module: str):
    import importlib

    return importlib.import_module(PARSERS[module]).build_parser()


def _dry_run(target: str, variables: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(["make", "-n", "--no-print-directory", "-o", ".venv/.installed", "-o",
                           ".venv-host/.installed", target, *(f"{k}={v}" for k, v in variables.items())],
                          cwd=REPO, capture_output=True, text=True, timeout=60)


def _commands(output: str) -> list[str]:
    return _joined(output).splitlines()


def _ours(line: str) -> list[str] | None:
    """The arguments of a ``python -m <ours>`` command line, with the module first; else None."""
    if " -m " not in line:
        return None
    words = shlex.split(line)
    i = words.index("-m")
    return words[i + 1:] if words[i + 1] in PARSERS else None


def _parsed(lines: list[str]) -> list:
    """What our parsers make of each ``python -m <ours>`` command among ``lines``."""
    parsed = []
    for line in lines:
        words = _ours(line)
        if words:
            parsed.append(vars(_parser(words[0]).parse_args(words[1:])))
    return parsed


CASES = [(t, v) for t, (h, _) in sorted(TARGETS.items()) for v in sorted(_named(h))]


@pytest.mark.parametrize("target,variable", CASES, ids=[f"{t}-{v}" for t, v in CASES])
def test_each_variable_reaches_the_command_and_its_flag(target, variable):
    base = {**BASE.get(target, {}), **TOGETHER.get((target, variable), {})}
    probe = {**base, variable: PROBE_FOR.get((target, variable), PROBE[variable])}
    before, after = _dry_run(target, base), _dry_run(target, probe)
    assert before.returncode == 0 and after.returncode == 0, before.stderr + after.stderr
    assert "unknown variable" not in after.stderr
    old, new = _commands(before.stdout), _commands(after.stdout)
    changed = [line for line in new if line not in old]
    assert changed, f"make {target} {variable}=... changes nothing"
    if all(_ours(line) for line in changed):  # our command lines: the value must reach its own option
        moved = {k for a, b in zip(_parsed(old), _parsed(new)) for k in b if a.get(k) != b[k]}
        assert destination(variable) in moved, (f"make {target} {variable}=... should set the option "
                                                f"{destination(variable)} (make help-{target} says so); it moved {moved}")


def test_an_unknown_variable_is_named_in_a_warning():
    done = _dry_run("distill", {"BIT": "3"})
    assert done.returncode == 0
    assert "unknown variable(s) on the command line, ignored: BIT " in done.stderr
    assert "unknown variable" not in _dry_run("distill", {"BITS": "3"}).stderr


def test_designs_jobs_and_distill_episodes_reach_their_flags():
    """Two drifts the issue found: JOBS was read as DESIGN_JOBS, EPISODES never reached distill."""
    (designs,) = _parsed(_commands(_dry_run("designs", {"RUNS": "a", "JOBS": "4"}).stdout))
    assert designs["jobs"] == 4
    (distill,) = _parsed(_commands(_dry_run("distill", {"EPISODES": "9"}).stdout))
    assert distill["episodes"] == 9
    (teacher,) = _parsed(_commands(_dry_run("teacher", {"EPISODES": "9"}).stdout))
    assert teacher["episodes"] == 9


def test_rtlsim_runs_codegen_first_where_the_design_has_no_sources(tmp_path, monkeypatch, capsys):
    """make rtlsim on a design without generated sources: codegen (IMPL=rtl unless told) first, then rtlsim."""
    import hw_build.api
    import hw_build.rtlsim
    from hw_build.cli import main

    (tmp_path / "d").mkdir()
    monkeypatch.setenv("QPD_BITSTREAMS", str(tmp_path))
    calls = []
    monkeypatch.setattr(hw_build.api, "estimate", lambda design, **kw: calls.append(("codegen", design, kw)))
    monkeypatch.setattr(hw_build.rtlsim, "rtlsim_design", lambda design, **kw: calls.append(("rtlsim", design, kw)))
    assert main(["rtlsim", "--design", "d", "--states", "5"]) == 0
    assert [c[0] for c in calls] == ["codegen", "rtlsim"]
    assert calls[0][2]["kind"] == "codegen" and calls[0][2]["impl"] == "rtl"
    assert "no generated sources: running codegen (IMPL=rtl) first" in capsys.readouterr().out
    (tmp_path / "d" / "intermediate_models").mkdir()
    (tmp_path / "d" / "intermediate_models" / "step_hw_codegen.onnx").write_bytes(b"")
    from hw_build.compile import HW_SOURCES

    (tmp_path / "d" / HW_SOURCES).mkdir()
    calls.clear()
    assert main(["rtlsim", "--design", "d"]) == 0
    assert [c[0] for c in calls] == ["rtlsim"]  # sources there: no codegen


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_make_help_target_names_each_variable_with_its_options_help(target):
    """make help-<target>: the variables' help is the parser's own (help text of the option each one sets)."""
    text = describe(target)
    for var in _named(TARGETS[target][0]):
        assert re.search(rf"^  {var} ", text, re.M), f"make help-{target} does not list {var}"
    if "-m training distill" in TARGETS[target][1]:
        assert re.search(r"^  TEACHER +--teacher +teacher: a run folder", text, re.M)
