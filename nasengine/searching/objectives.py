"""Metrics, objectives and constraints of a search: named numbers with a direction, chosen by the user.

An evaluation is a set of named metrics (`accuracy`, `error`, `params`, `macs`, `size_mb`,
`latency_ms:<device>`, anything a user registers). An objective is one metric and a direction; a constraint is
one metric and a bound. Every report, plot and pick follows the objectives chosen, never a fixed pair.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from nasengine.errors import UserError
from nasengine.search_spaces.registry import Registry, RegistryError

MINIMIZE, MAXIMIZE = "minimize", "maximize"


@dataclass(frozen=True)
class Metric:
    """A named quantity a search can report, minimise or bound. `per_device` metrics exist once per device
    and are named `<name>:<device>` in rows and reports (e.g. `latency_ms:ort-cpu-1t`)."""

    name: str
    direction: str = MINIMIZE
    label: str = ""
    per_device: bool = False
    aliases: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.direction not in (MINIMIZE, MAXIMIZE):
            raise ValueError(f"metric {self.name!r}: direction must be {MINIMIZE!r} or {MAXIMIZE!r}")


METRICS: Registry[Metric] = Registry("metric")


def register_metric(metric: Metric) -> Metric:
    """Make a metric selectable by name (and its aliases) in objectives and constraints."""
    METRICS.add(metric.name, metric)
    for alias in metric.aliases:
        METRICS.add(alias, metric)
    return metric


register_metric(Metric("error", MINIMIZE, "top-1 error"))
register_metric(Metric("accuracy", MAXIMIZE, "top-1 accuracy"))
register_metric(Metric("latency_ms", MINIMIZE, "latency (ms)", per_device=True, aliases=("latency",)))
register_metric(Metric("params", MINIMIZE, "parameters"))
register_metric(Metric("macs", MINIMIZE, "MACs"))
register_metric(Metric("size_mb", MINIMIZE, "model size (MB, float32)", aliases=("size",)))
register_metric(Metric("perplexity", MINIMIZE, "perplexity (exp of the mean token cross-entropy)"))
register_metric(Metric("memory_mb", MINIMIZE, "memory (MB): weights plus a decoder's key/value cache"))
register_metric(Metric("decode_ms", MINIMIZE, "decode latency per token (ms)", per_device=True, aliases=("decode",)))


def metric_column(name: str, device: str | None = None) -> str:
    """The row/CSV column of a metric: `latency_ms:ort-cpu-1t` for per-device metrics, else the name."""
    return name if device is None else f"{name}:{device}"


@dataclass(frozen=True)
class Objective:
    """Minimise or maximise one column of the rows. `device` is set for per-device metrics."""

    column: str
    direction: str = MINIMIZE
    label: str = ""
    device: str | None = None

    def __post_init__(self) -> None:
        if self.direction not in (MINIMIZE, MAXIMIZE):
            raise ValueError(f"objective {self.column!r}: direction must be {MINIMIZE!r} or {MAXIMIZE!r}")

    @property
    def sign(self) -> float:
        return 1.0 if self.direction == MINIMIZE else -1.0

    def cost(self, value: float) -> float:
        """The value as a quantity to minimise (maximised objectives are negated)."""
        return self.sign * float(value)

    def to_dict(self) -> dict[str, Any]:
        return {"column": self.column, "direction": self.direction, "label": self.label, "device": self.device}


@dataclass(frozen=True)
class Constraint:
    """`column <= bound` or `column >= bound`; `violation` is <= 0 when the bound holds."""

    column: str
    op: str
    bound: float
    device: str | None = None

    def __post_init__(self) -> None:
        if self.op not in ("<=", ">="):
            raise ValueError(f"constraint on {self.column!r}: operator must be <= or >=, got {self.op!r}")

    def violation(self, value: float) -> float:
        return float(value) - self.bound if self.op == "<=" else self.bound - float(value)

    def holds(self, value: float) -> bool:
        return self.violation(value) <= 0

    def holds_for(self, values: "np.ndarray") -> "np.ndarray":
        """Vectorised `holds`; a missing (NaN) value does not satisfy the bound."""
        values = np.asarray(values, dtype=float)
        with np.errstate(invalid="ignore"):
            return (values <= self.bound) if self.op == "<=" else (values >= self.bound)

    def __str__(self) -> str:
        return f"{self.column}{self.op}{self.bound:g}"

    def to_dict(self) -> dict[str, Any]:
        return {"column": self.column, "op": self.op, "bound": self.bound, "device": self.device}


@dataclass
class Row:
    """One real evaluation: the arch, its metrics by column, details (measurement spread, predictions...),
    the order it was evaluated in (`number`, 0-based, as in results.csv) and the strategy round it belongs to.
    A failed evaluation has no metrics and says why in `error`."""

    arch: dict[str, Any]
    key: str
    metrics: dict[str, float]
    details: dict[str, Any] = field(default_factory=dict)
    number: int = -1
    round: int = 0
    worker: str = ""
    error: str | None = None

    @property
    def failed(self) -> bool:
        return self.error is not None


def _metric(name: str) -> Metric:
    try:
        return METRICS.get(name)
    except RegistryError:
        raise UserError(f"unknown metric {name!r}; known: {', '.join(sorted(METRICS.names()))}") from None


def bind_objectives(names: Sequence[str], devices: Sequence[str]) -> list[Objective]:
    """Objectives from metric names; a per-device metric becomes one objective per device."""
    bound: list[Objective] = []
    for raw in names:
        name = raw.strip()
        metric = _metric(name)
        if metric.per_device:
            if not devices:
                raise UserError(f"objective {name!r} is measured per device; give at least one --device")
            bound += [Objective(metric_column(metric.name, d), metric.direction, metric.label, d) for d in devices]
        else:
            bound.append(Objective(metric.name, metric.direction, metric.label))
    columns = [o.column for o in bound]
    if len(set(columns)) != len(columns):
        raise UserError(f"objectives name the same metric twice: {', '.join(names)}")
    if not bound:
        raise UserError("a search needs at least one objective (e.g. error,latency)")
    return bound


_BOUND = re.compile(r"^\s*([A-Za-z_][\w.\-:]*)\s*(<=|>=)\s*(\S+)\s*$")


def parse_bound(text: str) -> tuple[str, str, float]:
    """`name<=number` or `name>=number` -> (name, op, number); a one-line UserError otherwise."""
    match = _BOUND.match(text)
    if match is None:
        raise UserError(f"constraint {text!r} is not METRIC<=NUMBER or METRIC>=NUMBER (e.g. latency<=2.5)")
    name, op, number = match.groups()
    try:
        return name, op, float(number)
    except ValueError:
        raise UserError(f"constraint {text!r}: {number!r} is not a number") from None


def parse_constraint(text: str, devices: Sequence[str]) -> list[Constraint]:
    """`latency<=2.5`, `size_mb<=1`, `accuracy>=0.8`, `latency_ms:ort-cpu-1t<=2`: a per-device metric without a
    device is bounded on every device."""
    name, op, bound = parse_bound(text)
    base, _, device = name.partition(":")
    metric = _metric(base)
    if device:
        if not metric.per_device:
            raise UserError(f"constraint {text!r}: {base!r} is not measured per device")
        if device not in devices:
            raise UserError(f"constraint {text!r}: device {device!r} is not searched (searched: "
                            f"{', '.join(devices) or 'none'})")
        return [Constraint(metric_column(metric.name, device), op, bound, device)]
    if metric.per_device:
        if not devices:
            raise UserError(f"constraint {text!r} is on a per-device metric; give at least one --device")
        return [Constraint(metric_column(metric.name, d), op, bound, d) for d in devices]
    return [Constraint(metric.name, op, bound)]


def objective_from_callable_name(name: str, direction: str | None) -> Objective:
    """An objective of the Python API: a registered metric keeps its direction, others minimise by default."""
    if direction is not None:
        return Objective(name, direction, name)
    metric = METRICS.find(name)
    if metric is None:
        return Objective(name, MINIMIZE, name)
    return Objective(name, metric.direction, metric.label or name)
