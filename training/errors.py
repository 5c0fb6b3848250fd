"""The one exception type a user sees as a sentence rather than a traceback."""

from host.errors import EXIT_INTERRUPTED, EXIT_USER_ERROR, UserError

__all__ = ["EXIT_INTERRUPTED", "EXIT_USER_ERROR", "FlowError"]


class FlowError(UserError):
    """A problem with the user's input or setup, reported as one sentence and a non-zero exit.

    Raise it wherever bad input is detected (unknown environment, missing or corrupt
    checkpoint, mismatching run folder ...). The command lines print ``str(error)`` and exit
    with ``EXIT_USER_ERROR`` (see :func:`host.errors.run_command`).
    """
