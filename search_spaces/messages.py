"""The one way an error becomes a line of text: the CLI's one-line errors, run records and agent replies all use it
(every package may: this is the lowest layer)."""

from __future__ import annotations


def one_line(text: str) -> str:
    """A message on one line, whatever the code that raised it put in it (CLI errors, recorded run failures)."""
    return " ".join(part.strip() for part in str(text).splitlines() if part.strip())


def first_line(exc: BaseException, limit: int | None = None) -> str:
    """The first non-blank line of an exception's message (its type's name when it says nothing), at most
    `limit` characters: how a third-party error is quoted inside one of ours."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = lines[0] if lines else type(exc).__name__
    return text if limit is None else text[:limit]
