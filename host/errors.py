"""User-facing errors: one sentence on stderr and a non-zero exit, never a traceback.

Shared by the three command lines (``python -m training|hw_build|host``); the training side's
``FlowError`` is a :class:`UserError` too. host/ keeps it because the board gets host/ alone.
"""

from __future__ import annotations

import sys
from typing import Callable

EXIT_CHECK_FAILED = 1
EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130


class UserError(Exception):
    """Bad input or setup, reported as ``error: <sentence>`` and exit code 2."""


class HostError(UserError):
    """Bad input or a failing accelerator on the host side."""


class AcceleratorTimeout(HostError):
    """The accelerator did not finish within the driver's timeout."""


def run_command(action: Callable[[], int | None]) -> int:
    """Run a command's body; turn user errors and Ctrl-C into a sentence and an exit code."""
    try:
        return action() or 0
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except ModuleNotFoundError as exc:  # an optional module (gymnasium, pynq, ...): say how to get it
        from host.board import missing_module_sentence

        sentence = missing_module_sentence(exc.name)
        if sentence is None:
            raise
        print(f"error: {sentence}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt as exc:
        print(f"\n{str(exc) or 'interrupted'}", file=sys.stderr)
        return EXIT_INTERRUPTED
