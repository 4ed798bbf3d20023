"""The one exception type for user-facing failures: a message that names the culprit, no traceback."""


class ForesightError(Exception):
    """Bad input or configuration. Stages print its message on one line and exit 2."""
