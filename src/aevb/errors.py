"""The one exception type that the command line turns into a one-line message and exit code 2."""


class AevbError(Exception):
    """A problem with the user's input or environment: the message names it and says what to do."""
