"""Backends by name and devices by name: built-ins here, more from config files or `register_device`."""

from __future__ import annotations

import hashlib
from typing import Callable

from nasengine.measurement.devices.base import Device, DeviceConfig
from nasengine.errors import UserError
from nasengine.search_spaces.registry import Registry, RegistryError

_BACKENDS: Registry[type[Device]] = Registry("device backend")
_DEVICES: Registry[DeviceConfig] = Registry("device")
_FROM_FILES: dict[str, object] = {"key": None, "replaced": {}}  # what the device files registered, and over what
Resolver = Callable[[str, dict], DeviceConfig]
_RESOLVERS: Registry[Resolver] = Registry("device prefix")


def register_resolver(prefix: str, resolver: Resolver) -> None:
    """Names `prefix:rest` resolve through `resolver(rest, context)` (e.g. `lut:ort-cpu-1t` -> the supernet's table)."""
    _RESOLVERS.add(prefix, resolver)


def _files_key(paths: list) -> tuple:
    """Which device files there are, and their versions (a changed file or $NASENGINE_DEVICES is re-read)."""
    key = []
    for path in paths:
        try:
            digest: str | None = hashlib.sha1(path.read_bytes()).hexdigest()  # device files are small
        except OSError:
            digest = None
        key.append((str(path), digest))
    return tuple(key)


def _load_files_once() -> None:
    """Devices declared in configuration files join the built-ins on first use (never at import time), and
    again whenever the set of files or their contents change (e.g. $NASENGINE_DEVICES in a long-lived process).
    A file with any mistake registers nothing and is reported on every use."""
    from nasengine.measurement.devices.config_files import default_paths, load_device_files

    paths = default_paths()
    key = _files_key(paths)
    if _FROM_FILES["key"] == key:
        return
    replaced: dict[str, DeviceConfig | None] = _FROM_FILES["replaced"]  # type: ignore[assignment]
    for name, previous in replaced.items():  # forget what the previous files declared
        _DEVICES.remove(name)
        if previous is not None:
            _DEVICES.add(name, previous)
    _FROM_FILES["replaced"], _FROM_FILES["key"] = {}, None
    configs = load_device_files(paths)
    for config in configs:  # check every backend before registering any device
        if config.backend not in _BACKENDS:
            raise RegistryError(f"device {config.name!r}: unknown backend {config.backend!r}; "
                                f"available: {', '.join(_BACKENDS.names())}")
    now: dict[str, DeviceConfig | None] = {}
    for config in configs:
        now.setdefault(config.name, _DEVICES.find(config.name))
        register_device(config, replace=True)
    _FROM_FILES["replaced"], _FROM_FILES["key"] = now, key


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
        message = str(exc)
        prefix = f"device {config.name!r}: "
        raise UserError(message if message.startswith(prefix) else prefix + message) from None


def at_precision(device: Device, precision: str) -> Device:
    """The same device (name, backend, settings) quantizing every layer to `precision` itself, as the `*-int8`
    devices do: how per-layer tables at other precisions are profiled. UserError when its backend runs no such
    graphs."""
    if precision == device.precision:
        return device
    if not device.runs_quantized_graphs:
        raise UserError(f"device {device.name!r} ({device.backend}) cannot run {precision} graphs")
    config = DeviceConfig(device.name, device.config.backend, {**device.config.settings, "precision": precision},
                          device.config.description)
    try:
        return _BACKENDS.get(config.backend)(config)
    except (TypeError, ValueError) as exc:
        raise UserError(str(exc)) from None


def device_configs() -> list[DeviceConfig]:
    _load_files_once()
    return [_DEVICES.get(name) for name in _DEVICES.names()]
