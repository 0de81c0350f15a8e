"""Run the `nasengine` CLI in-process and read its outcome, for tests of commands and their errors."""

from __future__ import annotations

from typing import Any

import pytest

from nasengine.cli.main import main


def run_cli(capsys: pytest.CaptureFixture[str], *args: Any) -> tuple[int, str, str]:
    """Exit code, stdout and stderr of `nasengine ARGS...`."""
    capsys.readouterr()
    try:
        code = main([str(a) for a in args])
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(code: int, err: str) -> str:
    """The single error line of a failed command (exit code 2, no traceback)."""
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, (code, err)
    return lines[0]
