"""User-facing errors: the CLI prints them as one line and exits with code 2."""


class UserError(Exception):
    """Bad input or a state the user must resolve (message is shown as is, without a traceback)."""
