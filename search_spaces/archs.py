"""Architectures as JSON: reading and writing lists of arch dicts (one JSON object per line)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable, Mapping


def arch_to_json(arch: Mapping[str, Any]) -> str:
    """Compact JSON text of one arch (gene order kept)."""
    return json.dumps(dict(arch), separators=(",", ":"))


def arch_from_json(text: str) -> dict[str, Any]:
    """Parse one arch; ValueError with the reason when the text is not a JSON object."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"architecture is not valid JSON: {exc.msg} at column {exc.colno}") from None
    if not isinstance(value, dict):
        raise ValueError(f"architecture JSON must be an object, got {type(value).__name__}")
    return value


def write_archs(path: str | Path, archs: Iterable[Mapping[str, Any]]) -> None:
    Path(path).write_text("".join(arch_to_json(a) + "\n" for a in archs))


def read_archs(path: str | Path) -> list[dict[str, Any]]:
    lines = Path(path).read_text().splitlines()
    return [arch_from_json(line) for line in lines if line.strip()]
