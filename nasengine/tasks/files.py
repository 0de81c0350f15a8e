"""The data files a task records: their SHA-256, and the check that a task rebuilt from its spec reads the same
bytes it was trained on (so a changed or missing file is named, never silently used)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Mapping

from nasengine.errors import UserError


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def check_recorded_files(files: Mapping[str, str], sha256: Mapping[str, str]) -> None:
    """UserError naming the first file (role -> path) that is missing or whose bytes changed since it was recorded."""
    for key, path in files.items():
        if not Path(path).is_file():
            raise UserError(f"the {key} file {path} that this model was trained with is missing")
        if sha256_file(Path(path)) != sha256[key]:
            raise UserError(f"data changed since training: {path} is changed (retrain, or restore the file)")
