"""Output directories that never silently mix runs: resume when the settings match, else a clear error."""

from __future__ import annotations

import json
import os
import shutil
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Mapping

from nasengine.errors import UserError, one_line
from nasengine.supernets.training.checkpoint import atomic_write_text


def recorded_identity(directory: Path, marker: str) -> dict[str, Any] | None:
    """The identity that `directory`'s marker records (what a rerun must match to resume), None when there is no
    readable one."""
    try:
        existing = json.loads((Path(directory) / marker).read_text())
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    identity = existing.get("identity") if isinstance(existing, dict) else None
    return identity if isinstance(identity, dict) else None


def prepare_output(directory: Path, marker: str, identity: Mapping[str, Any], overwrite: bool,
                   what: str) -> dict[str, Any] | None:
    """Create or reopen `directory`, whose `marker` JSON file records the settings that made it.

    Returns the existing marker contents when resuming (same identity), None for a fresh directory.
    Raises UserError when the directory holds something else or other settings, unless `overwrite`.
    """
    directory = Path(directory)
    check_output(directory, marker, what, overwrite)
    if overwrite and directory.exists():
        shutil.rmtree(directory)
    marker_path = directory / marker
    if marker_path.exists():
        try:
            existing = json.loads(marker_path.read_text())
        except (OSError, UnicodeDecodeError, ValueError):
            existing = None
        if not isinstance(existing, dict):
            raise UserError(f"{marker_path} is unreadable; use --overwrite to start afresh") from None
        recorded = existing.get("identity") if isinstance(existing.get("identity"), dict) else {}
        diffs = [k for k in sorted(set(recorded) | set(identity)) if recorded.get(k) != identity.get(k)]
        if diffs:
            key = diffs[0]
            raise UserError(f"{directory} holds a {what} made with {key}={recorded.get(key)!r} "
                            f"(now {identity.get(key)!r}); use the same options to resume, or --overwrite")
        return existing
    if not directory.exists():
        # created complete with its marker in one rename, so processes started together on the same output
        # (several search workers) find either nothing or a prepared directory, never a half-made one
        try:
            directory.parent.mkdir(parents=True, exist_ok=True)
            staging = directory.parent / f".{directory.name}.{uuid.uuid4().hex}.tmp"
            staging.mkdir()
        except OSError as exc:
            raise UserError(f"cannot create {directory}: {exc.strerror or exc}") from None
        write_marker(staging / marker, {"identity": dict(identity), "status": "running"})
        try:
            staging.rename(directory)
            return None
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)
            return prepare_output(directory, marker, identity, False, what)  # another process made it first
    write_marker(directory / marker, {"identity": dict(identity), "status": "running"})
    return None



def check_output(directory: Path, marker: str, what: str, overwrite: bool) -> None:
    """The refusals of prepare_output that need no identity, made without writing anything: for a caller with slow
    work to do before it can prepare the directory (a training timing its steps first)."""
    directory = Path(directory)
    check_creatable(directory)
    if directory.exists() and not directory.is_dir():
        raise UserError(f"{directory} exists and is not a directory")
    if not overwrite and directory.is_dir() and not (directory / marker).exists() and any(directory.iterdir()):
        raise UserError(f"{directory} exists and is not a {what} directory; choose another path or --overwrite")


def check_creatable(path: Path, option: str = "--out") -> None:
    """UserError (before anything is written) when `path` could not be created: an ancestor is a regular
    file, or the nearest existing ancestor is not writable."""
    path = Path(path)
    if path.is_dir():
        return
    if path.exists() or path.is_symlink():
        return  # an existing file: the caller says what is wrong with it
    ancestor = path.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise UserError(f"{option} {path} cannot be created: {ancestor} is a file, not a directory")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise UserError(f"{option} {path} cannot be created: no permission to write in {ancestor}")


def failure_text(exc: BaseException) -> str:
    """How a run records why it failed: a user error as it was said, anything else with its type in front."""
    return one_line(str(exc)) if isinstance(exc, UserError) else one_line(f"{type(exc).__name__}: {exc}")


@contextmanager
def recorded_status(marker: Path, enabled: bool = True) -> Iterator[None]:
    """The one run-status writer: a run whose block raises is marked `interrupted` (Ctrl-C) or `failed` with the
    reason in its marker file, then the exception goes on (`enabled` False: another process writes the marker)."""
    try:
        yield
    except KeyboardInterrupt:
        if enabled:
            update_marker(marker, status="interrupted")
        raise
    except Exception as exc:
        if enabled:
            update_marker(marker, status="failed", error=failure_text(exc))
        raise


def write_marker(path: Path, data: Mapping[str, Any]) -> None:
    atomic_write_text(path, json.dumps(dict(data), indent=2, default=str))


def update_marker(path: Path, **fields: Any) -> dict[str, Any]:
    data = json.loads(path.read_text())
    data.update(fields)
    write_marker(path, data)
    return data
