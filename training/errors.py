"""The one exception type a user sees as a sentence rather than a traceback."""


class FlowError(Exception):
    """A problem with the user's input or setup, reported as one sentence and a non-zero exit.

    Raise it wherever bad input is detected (unknown environment, missing or corrupt
    checkpoint, mismatching run folder ...). The command line prints ``str(error)`` and exits
    with :data:`EXIT_USER_ERROR`.
    """


EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130
