"""The documentation: the site builds in strict mode, and the README stays a short, true front door.

The site build is what CI checks: a broken link, a missing anchor, a page left out of the nav
or a docstring griffe cannot read fails ``mkdocs build --strict`` (mkdocs.yml), and so this test.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


def test_site_builds_in_strict_mode(tmp_path: Path) -> None:
    site = tmp_path / "site"
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for page in ["index.html", "getting-started.html", "install.html", "method.html", "results.html",
                 "hardware.html", "host.html", "benchmarks.html", "design-decisions.html",
                 "reference/host.html", "results/CartPole-v1/qpd_table.png", "img/flow.png"]:
        assert (site / page).is_file(), page
    # the API reference is generated from the docstrings, not empty
    assert "FinnZynqDriver" in (site / "reference" / "host.html").read_text()
    # the results overview includes the README's glance table
    assert "MinAtar/Breakout-v1" in (site / "results.html").read_text()


def readme_glance() -> str:
    text = README.read_text()
    m = re.search(r"<!-- --8<-- \[start:glance\] -->\n(.*?)<!-- --8<-- \[end:glance\] -->", text, re.S)
    assert m, "README.md lost its glance markers"
    return m.group(1)


def test_readme_glance_table_is_what_the_committed_tables_say() -> None:
    sys.path.insert(0, str(ROOT / "docs" / "scripts"))
    try:
        from glance import glance
    finally:
        sys.path.pop(0)
    assert readme_glance() == glance(ROOT / "docs" / "results"), (
        "README.md's glance table differs from the committed tables: paste the output of "
        ".venv/bin/python docs/scripts/glance.py between its markers")


def test_readme_is_a_front_door() -> None:
    lines = README.read_text().splitlines()
    assert len(lines) <= 250, f"README.md has {len(lines)} lines: move detail to a page under docs/"
    text = README.read_text()
    for needed in ["make demo", "make test", "make docs", "make board-eval", "LICENSE", "CITATION.cff",
                   "What could not be done here"]:
        assert needed in text, needed


def test_readme_links_stay_inside_the_repository() -> None:
    text = README.read_text()
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
    assert targets
    for target in targets:
        assert not target.startswith(("http://", "https://", "/", "..")), target
        assert (ROOT / target).exists(), f"README.md links to {target}, which does not exist"


def test_nothing_points_outside_the_repository() -> None:
    outside = "../" + "shared"
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    hits = [f for f in files if (ROOT / f).is_file() and (ROOT / f).suffix in {".py", ".md", ".in", ".lock", ".yml", ""}
            and outside in (ROOT / f).read_text(errors="replace")]
    assert not hits, f"{outside} is not part of the repository, referenced by {hits}"


def test_licence_and_citation_agree_with_pyproject() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "BSD-3-Clause"
    assert (ROOT / "LICENSE").read_text().startswith("BSD 3-Clause License")
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert cff["cff-version"] == "1.2.0"
    assert cff["license"] == project["license"]
    assert cff["version"] == project["version"]
    assert cff["title"] and cff["message"] and cff["authors"][0]["name"]


def test_flow_figure_script_draws_the_committed_figure(tmp_path: Path) -> None:
    out = tmp_path / "flow.png"
    subprocess.run([sys.executable, str(ROOT / "docs" / "scripts" / "flow_figure.py"), str(out)], cwd=ROOT,
                   check=True, timeout=120)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (ROOT / "docs" / "img" / "flow.png").is_file()
