"""Imports go one way: host ← training ← hw_build ← flow (docs/getting-started.md, "Layout"), and inside host and training too.

Every import statement is read from the source, those inside functions included (a lazy import
that goes the wrong way is still a dependency that goes the wrong way), so the test needs no
import to succeed and runs in a second.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
#: A package may import the packages of its own rank or below.
RANK = {"host": 0, "training": 1, "hw_build": 2, "flow": 3}
#: Inside training: the teacher and the students are separate stages; QPD builds on both.
#: Inside host: the datapath is the base, a design's spec builds on it, the backends on both, and
#: the environment loop drives any policy, so it knows no backend (host/README.md).
FORBIDDEN_INSIDE = {
    "training.teacher": ("training.students", "training.qpd"),
    "training.students": ("training.teacher", "training.qpd"),
    "host.datapath": ("host.design", "host.backends", "host.loop"),
    "host.design": ("host.backends", "host.loop"),
    "host.loop": ("host.backends",),
}


def module_name(path: Path, root: Path) -> str:
    """``<root>/training/qpd/distill.py`` → ``training.qpd.distill``."""
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """``(line, module)`` for every absolute import in a file, at any depth."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            # ``from training import atomic`` imports training.atomic: count the submodule too.
            found += [(node.lineno, node.module)] + [(node.lineno, f"{node.module}.{a.name}") for a in node.names]
    return found


def wrong_way_imports(root: Path = REPO) -> list[str]:
    """Every import in the stage packages that goes against the layering, as readable lines."""
    wrong: dict[str, str] = {}  # one line per offending import statement
    for package, rank in RANK.items():
        for path in sorted((root / package).rglob("*.py")):
            name = module_name(path, root)
            for line, target in imported_modules(path):
                top = target.partition(".")[0]
                if top in RANK and RANK[top] > rank:
                    wrong.setdefault(f"{path}:{line}", f"{path.relative_to(root)}:{line} ({package}) imports {target} ({top} is above it)")
                for inside, forbidden in FORBIDDEN_INSIDE.items():
                    if (name == inside or name.startswith(inside + ".")) and any(
                            target == f or target.startswith(f + ".") for f in forbidden):
                        wrong.setdefault(f"{path}:{line}", f"{path.relative_to(root)}:{line} ({inside}) imports {target}")
    return list(wrong.values())


def test_stage_packages_import_downwards_only():
    wrong = wrong_way_imports()
    assert not wrong, "imports that go the wrong way:\n" + "\n".join(wrong)


@pytest.mark.parametrize("package, source, expected", [
    ("host", "def f():\n    from training.errors import FlowError\n", "(host) imports training.errors"),
    ("training", "import hw_build.export\n", "training) imports hw_build.export"),
    ("hw_build", "from flow import demo\n", "hw_build) imports flow"),
    ("training/students", "from training.qpd.loss import distillation_loss\n", "(training.students) imports training.qpd.loss"),
    ("host/loop", "from host.backends.driver import CallTimes\n", "(host.loop) imports host.backends.driver"),
    ("host/datapath", "from host.design import spec\n", "(host.datapath) imports host.design"),
])
def test_a_wrong_way_import_is_caught(tmp_path: Path, package: str, source: str, expected: str):
    for name in RANK:
        (tmp_path / name).mkdir()
    (tmp_path / package).mkdir(parents=True, exist_ok=True)
    (tmp_path / package / "bad.py").write_text(source)
    wrong = wrong_way_imports(tmp_path)
    assert len(wrong) >= 1 and expected in wrong[0], wrong


def test_a_downward_import_is_allowed(tmp_path: Path):
    (tmp_path / "flow").mkdir()
    (tmp_path / "flow" / "ok.py").write_text("from host.errors import run_command\nimport hw_build.compile\nimport numpy\n")
    assert wrong_way_imports(tmp_path) == []
