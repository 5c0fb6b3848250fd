"""``make help-<target>``: each variable of a make target with the option it becomes, and that
option's help, read from the command line's own argparse parser.

A variable ``FOO_BAR`` becomes the option whose destination is ``foo_bar`` (``--foo-bar``), except
the few in :data:`DESTINATIONS`; ``tests/test_make_cli.py`` checks that every variable reaches
exactly that option, so this help cannot drift from what the recipe does.

Usage: ``python -m flow.make_help <target>`` (the Makefile's ``help-%`` rule).
"""

from __future__ import annotations

import argparse
import importlib
import re
import sys
from pathlib import Path

MAKEFILE = Path(__file__).resolve().parents[1] / "Makefile"
#: The command lines' parsers, by ``python -m`` module.
PARSERS = {"training": "training.cli", "flow": "flow.cli", "hw_build": "hw_build.cli", "host": "host.cli"}
#: Variables whose option's destination is not their lower-cased name.
DESTINATIONS = {"DIR": "folder", "DEPLOY_DIR": "out"}


def destination(variable: str) -> str:
    """The argparse destination a make variable feeds."""
    return DESTINATIONS.get(variable, variable.lower())


def documented_targets(makefile: Path = MAKEFILE) -> dict[str, tuple[str, str]]:
    """``{target: (help text, recipe)}`` for every target with a ``##`` help line (recipe lines joined)."""
    targets, lines = {}, makefile.read_text().replace("\\\n", " ").splitlines()
    for i, line in enumerate(lines):
        m = re.match(r"^([a-z-]+):.*## (.*)$", line)
        if m:
            recipe = []
            for follow in lines[i + 1:]:
                if not follow.startswith("\t"):
                    break
                recipe.append(follow)
            targets[m.group(1)] = (m.group(2), "\n".join(recipe))
    return targets


def target_lines(target: str, makefile: Path = MAKEFILE) -> tuple[str, str]:
    """``(help text, recipe)`` of a documented target (recipe lines joined)."""
    found = documented_targets(makefile).get(target)
    if found is None:
        raise SystemExit(f"make has no documented target '{target}' (make help lists them)")
    return found


def variables(help_text: str) -> list[str]:
    """The variables a target's ``make help`` line names, in order."""
    return list(dict.fromkeys(re.findall(r"\b([A-Z][A-Z_]+)=", help_text)))


def verb_parser(recipe: str) -> tuple[str, argparse.ArgumentParser] | None:
    """``(command, parser)`` of the recipe's ``python -m <ours> <verb>`` command; None where it has none."""
    m = re.search(r"-m (training|flow|hw_build|host) ([a-z-]+)", recipe)
    if m is None:
        return None
    parser = importlib.import_module(PARSERS[m.group(1)]).build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return f"python -m {m.group(1)} {m.group(2)}", sub.choices[m.group(2)]


def describe(target: str) -> str:
    """The text ``make help-<target>`` prints."""
    help_text, recipe = target_lines(target)
    found = verb_parser(recipe)
    lines = [f"make {target}: {help_text}"]
    if found is None:
        return "\n".join(lines + ["no command line of ours: each variable is the recipe's own (see the line above)"]
                         + [f"  {var:<13} (make only)" for var in variables(help_text)])
    command, parser = found
    actions = {a.dest: a for a in parser._actions}
    lines.append(f"runs {command}; each variable becomes its option (see {command} --help):")
    for var in variables(help_text):
        action = actions.get(destination(var))
        if action is None:
            lines.append(f"  {var:<13} (make only: used by the recipe itself)")
            continue
        option = ", ".join(action.option_strings) or f"<{action.dest}>"
        text = (action.help or "").replace("%%", "%")
        lines.append(f"  {var:<13} {option:<16} {text}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Print the help of each target named in ``argv``."""
    targets = sys.argv[1:] if argv is None else argv
    if not targets:
        print("usage: python -m flow.make_help <target> ... (make help-<target>)", file=sys.stderr)
        return 2
    print("\n\n".join(describe(t) for t in targets))
    return 0


if __name__ == "__main__":
    sys.exit(main())
