"""User-facing errors: the CLI prints them as one line and exits with code 2."""


class UserError(Exception):
    """Bad input or a state the user must resolve (message is shown as is, without a traceback)."""


def one_line(text: str) -> str:
    """A message on one line, whatever the code that raised it put in it (CLI errors, recorded run failures)."""
    return " ".join(part.strip() for part in text.splitlines() if part.strip())
