"""Name -> supernet builder registry, in the style of timm: one file per family, one decorator each.

A builder is `builder(**kwargs) -> Supernet`. The engine calls it with the task's `in_channels`,
`num_classes` and `input_size` (native (H, W) of the data) plus the user's overrides, so a family never
names a data set; a family may still name a default data set (`task=`) for `nasengine train NAME`.
"""

from __future__ import annotations

import inspect
import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from nasengine.search_spaces.registry import Registry, RegistryError
from nasengine.supernets.base import Supernet

Builder = Callable[..., Supernet]
TASK_ARGUMENTS = ("in_channels", "num_classes", "input_size")


@dataclass(frozen=True)
class Entry:
    name: str
    builder: Builder
    task: str | None
    summary: str
    # a family grown from a pretrained checkpoint: where its default checkpoint is (None when not installed)
    pretrained: Callable[[], Any] | None = None
    # training defaults of the family (epochs, lr, warmup share) where the generic ones do not fit: fine-tuning
    # a pretrained model wants a small learning rate and one or two epochs
    train_defaults: Mapping[str, Any] = field(default_factory=dict)
    # the family's constructor settings (a FamilyConfig dataclass), when the builder forwards **kwargs to it
    config: type | None = None

    def arguments(self) -> set[str] | None:
        """The keyword arguments the builder takes: its named parameters plus its config's fields; None when it
        forwards **kwargs and declares no config (then any key may be meant)."""
        params = inspect.signature(self.builder).parameters
        named = {n for n, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
        if self.config is not None:
            return named | {f.name for f in dataclasses.fields(self.config)}
        return None if any(p.kind is p.VAR_KEYWORD for p in params.values()) else named

    @property
    def module(self) -> str:
        """The Python module that registered the builder (recorded so commands can reload user plugins)."""
        return str(getattr(self.builder, "__module__", ""))


_REGISTRY: Registry[Entry] = Registry("supernet")


TRAIN_DEFAULT_KEYS = ("epochs", "lr", "warmup", "label_smoothing")


def register(name: str, task: str | None = None, summary: str = "",
             pretrained: Callable[[], Any] | None = None,
             train_defaults: Mapping[str, Any] | None = None,
             config: type | None = None) -> Callable[[Builder], Builder]:
    """Decorator: make `builder(**kwargs) -> Supernet` available as `create(name)`.

    `task` optionally names the data set used when `nasengine train NAME` is given no `--data`. A family grown
    from a pretrained checkpoint takes `checkpoint=DIR` and names with `pretrained()` its default directory.
    `train_defaults` sets the family's own defaults for `epochs`, `lr` and `warmup` (a share of all steps).
    `config` names the dataclass (a FamilyConfig) a builder taking **kwargs builds from, so only its keys are
    handed over and `--set` can list them.
    """
    unknown = sorted(set(train_defaults or {}) - set(TRAIN_DEFAULT_KEYS))
    if unknown:
        raise RegistryError(f"supernet {name!r}: train_defaults takes {', '.join(TRAIN_DEFAULT_KEYS)}, "
                            f"not {unknown[0]!r}")

    def wrap(builder: Builder) -> Builder:
        first = _REGISTRY.find(name)
        if first is not None:
            raise RegistryError(f"supernet {name!r} is registered twice (first by {first.module})")
        doc = (builder.__doc__ or "").strip().splitlines()
        _REGISTRY.add(name, Entry(name, builder, task, summary or (doc[0] if doc else ""), pretrained,
                                  dict(train_defaults or {}), config))
        return builder

    return wrap


def entry(name: str) -> Entry:
    return _REGISTRY.get(name)


def create(name: str, **kwargs: Any) -> Supernet:
    """Build a registered supernet; keyword arguments override its defaults."""
    net = entry(name).builder(**kwargs)
    if not isinstance(net, Supernet):
        raise TypeError(f"the builder of {name!r} returned {type(net).__name__}, not a Supernet")
    net.name = name
    return net


def create_for_task(name: str, in_channels: int, num_classes: int, input_size: tuple[int, int] | None,
                    **overrides: Any) -> Supernet:
    """Build `name` for a task's data: its channels, classes and native image size, then the user's overrides.

    Task arguments the builder does not accept are left out, so a builder may ignore `input_size`. A builder that
    forwards **kwargs and declares no config (a plugin wrapping a family) gets `input_size` only if what it wraps
    takes it: when the build refuses that one optional argument, it is built again without it.
    """
    given = {"in_channels": in_channels, "num_classes": num_classes, "input_size": input_size}
    accepted = entry(name).arguments()
    task_kwargs = {k: v for k, v in given.items() if v is not None and (accepted is None or k in accepted)}
    try:
        return create(name, **{**task_kwargs, **overrides})
    except TypeError as exc:
        if accepted is not None or "input_size" not in task_kwargs or "input_size" in overrides \
                or "'input_size'" not in str(exc):
            raise
        del task_kwargs["input_size"]  # the native size is a hint; channels and classes are not optional
        return create(name, **{**task_kwargs, **overrides})


def available() -> list[str]:
    return _REGISTRY.names()


def from_config(config: Mapping[str, Any]) -> Supernet:
    """Rebuild from the `{"supernet": name, "kwargs": {...}}` form stored in config.json."""
    if "supernet" not in config:
        raise ValueError("config has no 'supernet' entry")
    return create(str(config["supernet"]), **dict(config.get("kwargs", {})))
