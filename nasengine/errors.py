"""User-facing errors: the CLI prints them as one line and exits with code 2."""

from nasengine.search_spaces.messages import first_line, one_line

__all__ = ["UserError", "first_line", "one_line"]


class UserError(Exception):
    """Bad input or a state the user must resolve (message is shown as is, without a traceback)."""
