"""Output directories that never silently mix runs: resume when the settings match, else a clear error."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Mapping

from nasengine.errors import UserError
from supernets.training.checkpoint import atomic_write_text


def prepare_output(directory: Path, marker: str, identity: Mapping[str, Any], overwrite: bool,
                   what: str) -> dict[str, Any] | None:
    """Create or reopen `directory`, whose `marker` JSON file records the settings that made it.

    Returns the existing marker contents when resuming (same identity), None for a fresh directory.
    Raises UserError when the directory holds something else or other settings, unless `overwrite`.
    """
    directory = Path(directory)
    if overwrite and directory.exists():
        shutil.rmtree(directory)
    marker_path = directory / marker
    if directory.exists() and not directory.is_dir():
        raise UserError(f"{directory} exists and is not a directory")
    if marker_path.exists():
        try:
            existing = json.loads(marker_path.read_text())
        except json.JSONDecodeError:
            raise UserError(f"{marker_path} is unreadable; use --overwrite to start afresh") from None
        recorded = existing.get("identity", {})
        diffs = [k for k in sorted(set(recorded) | set(identity)) if recorded.get(k) != identity.get(k)]
        if diffs:
            key = diffs[0]
            raise UserError(f"{directory} holds a {what} made with {key}={recorded.get(key)!r} "
                            f"(now {identity.get(key)!r}); use the same options to resume, or --overwrite")
        return existing
    if directory.exists() and any(directory.iterdir()):
        raise UserError(f"{directory} exists and is not a {what} directory; choose another path or --overwrite")
    directory.mkdir(parents=True, exist_ok=True)
    write_marker(directory / marker, {"identity": dict(identity), "status": "running"})
    return None


def write_marker(path: Path, data: Mapping[str, Any]) -> None:
    atomic_write_text(path, json.dumps(dict(data), indent=2, default=str))


def update_marker(path: Path, **fields: Any) -> dict[str, Any]:
    data = json.loads(path.read_text())
    data.update(fields)
    write_marker(path, data)
    return data
