"""The host's user-facing error: one sentence, non-zero exit (never a traceback)."""


class HostError(Exception):
    """Bad input or a failing accelerator, reported as one sentence by the command line."""


class AcceleratorTimeout(HostError):
    """The accelerator did not finish within the driver's timeout."""


EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130
