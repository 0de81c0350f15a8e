"""The agent's wire protocol: header names, defaults and the validation of per-request measurement settings.

Stdlib only, so both the agent and the `remote` device client import it without pulling in onnxruntime.
"""

from __future__ import annotations

import json
import urllib.parse
from typing import Any, Mapping

from nasengine import __version__

AGENT_VERSION = __version__
SETTINGS_HEADER = "X-Nasengine-Settings"
TOKEN_ENV = "NASENGINE_AGENT_TOKEN"
DEFAULT_PORT = 8765
DEFAULT_MAX_BYTES = 64 * 1024 * 1024
DEFAULT_QUEUE_TIMEOUT_S = 300.0

# Mirrors nasengine.measurement.devices.ort_cpu._OPT_LEVELS (kept here so clients validate without importing
# onnxruntime).
OPT_LEVELS = ("disable", "basic", "extended", "all")

# name -> (type, lowest, highest): what one request may ask of the agent.
_LIMITS: dict[str, tuple[type, float, float]] = {
    "threads": (int, 1, 256),
    "batch_size": (int, 1, 4096),
}
_TIMING_LIMITS: dict[str, tuple[type, float, float]] = {
    "warmup_runs": (int, 0, 10_000),
    "warmup_seconds": (float, 0.0, 60.0),
    "min_repeats": (int, 3, 100_000),
    "min_seconds": (float, 0.0, 60.0),
    "max_repeats": (int, 3, 100_000),
}


def _number(key: str, value: Any, kind: type, lo: float, hi: float) -> int | float:
    """`value` as an int/float within [lo, hi], else a ValueError naming the setting."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and value != int(value)):
        raise ValueError(f"setting {key!r} must be a {'whole ' if kind is int else ''}number, got {value!r}")
    if not lo <= value <= hi:
        raise ValueError(f"setting {key!r} must be between {lo:g} and {hi:g}, got {value!r}")
    return kind(value)


def parse_settings(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Validated settings from a request: threads, opt_level, batch_size and `timing` (nested or flat keys).

    Returns only the keys that were given; unknown keys and out-of-range values raise ValueError.
    """
    out: dict[str, Any] = {}
    timing: dict[str, Any] = {}
    nested = raw.get("timing", {})
    if not isinstance(nested, Mapping):
        raise ValueError("setting 'timing' must be a JSON object")
    for key, value in [*((k, v) for k, v in raw.items() if k != "timing"), *nested.items()]:
        if key in _LIMITS:
            out[key] = _number(key, value, *_LIMITS[key])
        elif key in _TIMING_LIMITS:
            timing[key] = _number(key, value, *_TIMING_LIMITS[key])
        elif key == "opt_level":
            if value not in OPT_LEVELS:
                raise ValueError(f"setting 'opt_level' must be one of {', '.join(OPT_LEVELS)}, got {value!r}")
            out[key] = value
        else:
            known = sorted([*_LIMITS, *_TIMING_LIMITS, "opt_level", "timing"])
            raise ValueError(f"unknown setting {key!r}; known: {', '.join(known)}")
    if timing:
        lo, hi = timing.get("min_repeats", 3), timing.get("max_repeats", _TIMING_LIMITS["max_repeats"][2])
        if hi < lo:
            raise ValueError(f"setting 'max_repeats' ({hi}) must be at least 'min_repeats' ({lo})")
        out["timing"] = timing
    return out


def settings_from_request(header: str | None, query: str) -> dict[str, Any]:
    """Settings from the JSON header and/or the query string (`?threads=2&min_repeats=5`; query wins)."""
    raw: dict[str, Any] = {}
    if header:
        try:
            decoded = json.loads(header)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{SETTINGS_HEADER} header is not valid JSON: {exc.msg}") from None
        if not isinstance(decoded, dict):
            raise ValueError(f"{SETTINGS_HEADER} header must be a JSON object")
        raw.update(decoded)
    for key, values in urllib.parse.parse_qs(query, keep_blank_values=True).items():
        text = values[-1]
        try:
            raw[key] = json.loads(text)
        except json.JSONDecodeError:
            raw[key] = text
    return parse_settings(raw)


def encode_settings(settings: Mapping[str, Any]) -> str:
    """Settings as the compact JSON that goes into the settings header."""
    return json.dumps(dict(settings), separators=(",", ":"), sort_keys=True)
