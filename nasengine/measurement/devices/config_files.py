"""Devices from configuration files (TOML or JSON), so a lab's targets are declared once and shared.

Files are read from `$NASENGINE_DEVICES` (paths separated by ':'), then `~/.config/nasengine/devices.toml`
and `./nasengine-devices.toml` when they exist. Each file holds a table per device:

    [devices.pi4]                      # JSON: {"devices": {"pi4": {"backend": "remote", ...}}}
    backend = "remote"
    url = "http://pi4.local:8765"
    token_env = "PI4_TOKEN"
    description = "Raspberry Pi 4 through the measurement agent"
    timing = { min_repeats = 50 }

Every key but `backend` and `description` is a backend setting.
"""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path
from typing import Any, Iterable

from nasengine.measurement.devices.base import DeviceConfig
from nasengine.errors import UserError

ENV_VAR = "NASENGINE_DEVICES"


def default_paths() -> list[Path]:
    paths = [Path(p) for p in os.environ.get(ENV_VAR, "").split(os.pathsep) if p]
    for candidate in (Path.home() / ".config" / "nasengine" / "devices.toml", Path.cwd() / "nasengine-devices.toml"):
        if candidate.is_file():
            paths.append(candidate)
    return paths


def parse_device_file(path: Path) -> list[DeviceConfig]:
    """Device configs declared in one file; UserError naming the file and the device on any mistake."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise UserError(f"device file {path}: {exc.strerror or exc}") from None
    try:
        data = json.loads(text) if str(path).endswith(".json") else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        raise UserError(f"device file {path} is not valid "
                        f"{'JSON' if str(path).endswith('.json') else 'TOML'}: {exc}") from None
    devices = data.get("devices")
    if not isinstance(devices, dict) or not devices:
        raise UserError(f"device file {path} declares no [devices.NAME] tables")
    configs = []
    for name, entry in devices.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("backend"), str):
            raise UserError(f"device file {path}: device {name!r} needs a backend")
        settings: dict[str, Any] = {k: v for k, v in entry.items() if k not in ("backend", "description")}
        configs.append(DeviceConfig(str(name), entry["backend"], settings, str(entry.get("description", ""))))
    return configs


def load_device_files(paths: Iterable[Path]) -> list[DeviceConfig]:
    out: list[DeviceConfig] = []
    for path in paths:
        out += parse_device_file(Path(path))
    return out
