"""Name -> supernet builder registry, in the style of timm: one file per family, one decorator each."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

from supernets.base import Supernet

Builder = Callable[..., Supernet]


@dataclass(frozen=True)
class Entry:
    name: str
    builder: Builder
    task: str
    summary: str


_REGISTRY: dict[str, Entry] = {}


def register(name: str, task: str, summary: str = "") -> Callable[[Builder], Builder]:
    """Decorator: make `builder(**kwargs) -> Supernet` available as `create(name)`; `task` is its default data."""

    def wrap(builder: Builder) -> Builder:
        if name in _REGISTRY:
            raise ValueError(f"supernet {name!r} is registered twice")
        _REGISTRY[name] = Entry(name, builder, task, summary or (builder.__doc__ or "").strip().splitlines()[0])
        return builder

    return wrap


def entry(name: str) -> Entry:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown supernet {name!r}; available: {', '.join(sorted(_REGISTRY)) or 'none'}") from None


def create(name: str, **kwargs: Any) -> Supernet:
    """Build a registered supernet; keyword arguments override its defaults."""
    net = entry(name).builder(**kwargs)
    net.name = name
    return net


def available() -> list[str]:
    return sorted(_REGISTRY)


def from_config(config: Mapping[str, Any]) -> Supernet:
    """Rebuild from the `{"supernet": name, "kwargs": {...}}` form stored in config.json."""
    if "supernet" not in config:
        raise ValueError("config has no 'supernet' entry")
    return create(str(config["supernet"]), **dict(config.get("kwargs", {})))
