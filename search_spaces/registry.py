"""One registry helper for every name -> object table in the code base (supernets, tasks, devices, ...).

Same rules everywhere: a name registered twice is refused (unless `replace=True` is asked for), and an
unknown name raises `RegistryError` listing what is available. It lives in the lowest package so that
every other package can use it.
"""

from __future__ import annotations

from typing import Callable, Generic, Iterator, TypeVar

T = TypeVar("T")


class RegistryError(ValueError):
    """An unknown or duplicate name (one line, shown as is by the CLI)."""


class Registry(Generic[T]):
    """Named entries of one kind ("supernet", "device", ...), in registration order."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, T] = {}

    def add(self, name: str, entry: T, replace: bool = False) -> T:
        if not isinstance(name, str) or not name:
            raise RegistryError(f"a {self.kind} needs a non-empty string name, got {name!r}")
        if name in self._entries and not replace:
            raise RegistryError(f"{self.kind} {name!r} is registered twice")
        self._entries[name] = entry
        return entry

    def register(self, name: str, replace: bool = False) -> Callable[[T], T]:
        """Decorator form of `add`."""

        def wrap(entry: T) -> T:
            return self.add(name, entry, replace)

        return wrap

    def get(self, name: str) -> T:
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            raise RegistryError(f"unknown {self.kind} {name!r}; available: "
                                f"{', '.join(sorted(self._entries)) or 'none'}") from None

    def copy(self) -> "Registry[T]":
        """An independent registry with the same entries (e.g. for registrations that must not outlive a test)."""
        other: Registry[T] = Registry(self.kind)
        other._entries = dict(self._entries)
        return other

    def find(self, name: str) -> T | None:
        return self._entries.get(name)

    def remove(self, name: str) -> None:
        self._entries.pop(name, None)

    def names(self) -> list[str]:
        return sorted(self._entries)

    def values(self) -> list[T]:
        return list(self._entries.values())

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._entries))

    def __len__(self) -> int:
        return len(self._entries)
