"""Backends by name and devices by name: built-ins here, more from config files or `register_device`."""

from __future__ import annotations

from typing import Callable

from nasengine.devices.base import Device, DeviceConfig
from nasengine.errors import UserError
from search_spaces.registry import Registry, RegistryError

_BACKENDS: Registry[type[Device]] = Registry("device backend")
_DEVICES: Registry[DeviceConfig] = Registry("device")
_FILES_LOADED: list[bool] = [False]
Resolver = Callable[[str, dict], DeviceConfig]
_RESOLVERS: Registry[Resolver] = Registry("device prefix")


def register_resolver(prefix: str, resolver: Resolver) -> None:
    """Names `prefix:rest` resolve through `resolver(rest, context)` (e.g. `lut:ort-cpu-1t` -> the supernet's table)."""
    _RESOLVERS.add(prefix, resolver)


def _load_files_once() -> None:
    """Devices declared in configuration files join the built-ins on first use (never at import time)."""
    if _FILES_LOADED[0]:
        return
    _FILES_LOADED[0] = True
    from nasengine.devices.config_files import default_paths, load_device_files

    for config in load_device_files(default_paths()):
        register_device(config, replace=True)


def register_backend(name: str) -> Callable[[type[Device]], type[Device]]:
    """Class decorator: a backend becomes usable in device configs under `name`."""

    return _BACKENDS.register(name)


def register_device(config: DeviceConfig, replace: bool = False) -> None:
    """Make a device available by name (a config file entry or a Python registration)."""
    if config.backend not in _BACKENDS:
        raise RegistryError(f"device {config.name!r}: unknown backend {config.backend!r}; "
                            f"available: {', '.join(_BACKENDS.names())}")
    _DEVICES.add(config.name, config, replace)


def get_device(name: str, **context: object) -> Device:
    """The device called `name`; `context` (e.g. supernet_dir) lets prefixed names resolve to derived devices."""
    _load_files_once()
    prefix, sep, rest = name.partition(":")
    if sep and prefix in _RESOLVERS:
        config = _RESOLVERS.get(prefix)(rest, dict(context))
    elif name in _DEVICES:
        config = _DEVICES.get(name)
    else:
        derived = "".join(f", {p}:DEVICE" for p in _RESOLVERS.names())
        raise RegistryError(f"unknown device {name!r}; available: {', '.join(_DEVICES.names())}{derived}")
    try:
        return _BACKENDS.get(config.backend)(config)
    except (TypeError, ValueError) as exc:
        raise UserError(f"device {name!r}: {exc}") from None


def device_configs() -> list[DeviceConfig]:
    _load_files_once()
    return [_DEVICES.get(name) for name in _DEVICES.names()]
