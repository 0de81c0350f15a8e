"""Backends by name and devices by name: built-ins here, more from config files or `register_device`."""

from __future__ import annotations

from typing import Callable

from nasengine.devices.base import Device, DeviceConfig
from nasengine.errors import UserError

_BACKENDS: dict[str, type[Device]] = {}
_DEVICES: dict[str, DeviceConfig] = {}


def register_backend(name: str) -> Callable[[type[Device]], type[Device]]:
    """Class decorator: a backend becomes usable in device configs under `name`."""

    def wrap(cls: type[Device]) -> type[Device]:
        _BACKENDS[name] = cls
        return cls

    return wrap


def register_device(config: DeviceConfig, replace: bool = False) -> None:
    """Make a device available by name (a config file entry or a Python registration)."""
    if config.backend not in _BACKENDS:
        raise UserError(f"device {config.name!r}: unknown backend {config.backend!r}; "
                        f"known: {', '.join(sorted(_BACKENDS))}")
    if config.name in _DEVICES and not replace:
        raise UserError(f"device {config.name!r} is defined twice")
    _DEVICES[config.name] = config


def get_device(name: str) -> Device:
    try:
        config = _DEVICES[name]
    except KeyError:
        raise UserError(f"unknown device {name!r}; available: {', '.join(sorted(_DEVICES))}") from None
    try:
        return _BACKENDS[config.backend](config)
    except (TypeError, ValueError) as exc:
        raise UserError(f"device {name!r}: {exc}") from None


def device_configs() -> list[DeviceConfig]:
    return [_DEVICES[name] for name in sorted(_DEVICES)]
