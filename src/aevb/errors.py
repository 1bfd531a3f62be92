"""The one exception type that the command line turns into a one-line message and exit code 2."""


class AevbError(Exception):
    """A problem with the user's input or environment: the message names it and says what to do."""


class Interrupted(AevbError):
    """Training stopped by SIGINT or SIGTERM after saving a checkpoint; the command line exits 130
    and prints `stopped` with the command that continues the run."""

    def __init__(self, stopped: str, resume_with: str | None = None):
        self.stopped = stopped
        super().__init__(stopped if resume_with is None else f"{stopped}; continue it with `{resume_with}`")
