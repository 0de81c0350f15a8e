"""The building blocks of a search space: a gene with finite choices (`Choice`), integer and real ranges
(`IntRange`, `FloatRange`, searched on a grid of ordered values), optionally active only under a condition."""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np

_OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "in": lambda value, options: value in options,
}


@dataclass(frozen=True)
class Condition:
    """`gene op value`, e.g. `Condition("s1.depth", ">", 2)`: a gene is active only while this holds."""

    gene: str
    op: str
    value: Any

    def __post_init__(self) -> None:
        if self.op not in _OPERATORS:
            raise ValueError(f"condition operator {self.op!r} is not one of {sorted(_OPERATORS)}")

    def holds(self, arch: Mapping[str, Any]) -> bool:
        return bool(_OPERATORS[self.op](arch[self.gene], self.value))

    def to_dict(self) -> dict[str, Any]:
        value = list(self.value) if isinstance(self.value, (tuple, list)) else self.value
        return {"gene": self.gene, "op": self.op, "value": value}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Condition":
        value = data["value"]
        return cls(data["gene"], data["op"], tuple(value) if isinstance(value, list) else value)


@dataclass(frozen=True)
class Choice:
    """A named gene taking one of finitely many JSON values, listed from cheapest to most expensive.

    `tag` groups genes of one kind ("kernel", "depth", ...) so recipes can restrict them together;
    `active_if` makes the gene inactive (value None in a canonical arch) when the condition fails.
    `ordered` says whether neighbouring options are similar (search mutates such genes by steps and treats
    the others as unordered categories); by default a gene of real numbers is ordered, any other is not.
    """

    name: str
    options: tuple[Any, ...]
    tag: str = ""
    active_if: Condition | None = None
    ordered: bool = False
    _index: dict[Any, int] = field(init=False, repr=False, compare=False, hash=False)

    def __init__(self, name: str, options: Sequence[Any], tag: str = "", active_if: Condition | None = None,
                 ordered: bool | None = None):
        if not name or not isinstance(name, str):
            raise ValueError("a gene needs a non-empty string name")
        opts = tuple(options)
        if not opts:
            raise ValueError(f"gene {name!r} needs at least one option")
        if len(set(map(_hashable, opts))) != len(opts):
            raise ValueError(f"gene {name!r} has duplicate options: {list(opts)}")
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "options", opts)
        object.__setattr__(self, "tag", tag)
        object.__setattr__(self, "active_if", active_if)
        object.__setattr__(self, "ordered", _numeric(opts) if ordered is None else bool(ordered))
        object.__setattr__(self, "_index", {_hashable(o): i for i, o in enumerate(opts)})

    def __len__(self) -> int:
        return len(self.options)

    def index(self, value: Any) -> int:
        """Position of `value` among the options; ValueError naming the gene when it is not one."""
        try:
            return self._index[_hashable(value)]
        except (KeyError, TypeError):
            raise ValueError(
                f"gene {self.name!r}: {value!r} is not one of its choices {list(self.options)}"
            ) from None

    def with_options(self, options: Sequence[Any]) -> "Choice":
        """The same gene restricted to a subset of its options (order kept)."""
        wanted = {_hashable(o) for o in options}
        kept = [o for o in self.options if _hashable(o) in wanted]
        missing = wanted - {_hashable(o) for o in kept}
        if missing:
            raise ValueError(f"gene {self.name!r}: cannot restrict to unknown choices {sorted(map(str, missing))}")
        return Choice(self.name, kept, self.tag, self.active_if, self.ordered)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"name": self.name, "options": list(self.options)}
        if self.tag:
            data["tag"] = self.tag
        if self.active_if is not None:
            data["active_if"] = self.active_if.to_dict()
        if self.ordered != _numeric(self.options):
            data["ordered"] = self.ordered
        return data

    @property
    def is_range(self) -> bool:
        """Whether the gene is a numeric range (encoded by its position along the range, not as categories)."""
        return self.number_range() is not None

    def number_range(self) -> "NumberRange | None":
        """The numbers a range gene spans (for samplers and stores that model numbers); None for a choice."""
        return None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Choice":
        """Any gene from its `to_dict` form (a range by its `type`)."""
        kind = data.get("type", "choice")
        cond = data.get("active_if")
        condition = Condition.from_dict(cond) if cond else None
        if kind == "int_range":
            return IntRange(data["name"], data["low"], data["high"], data.get("step", 1), data.get("log", False),
                            data.get("tag", ""), condition)
        if kind == "float_range":
            return FloatRange(data["name"], data["low"], data["high"], data.get("steps", 101), data.get("log", False),
                              data.get("tag", ""), condition)
        if kind != "choice":
            raise ValueError(f"gene {data.get('name')!r}: unknown gene type {kind!r} (choice, int_range, float_range)")
        ordered = data.get("ordered")
        if ordered is not None and not isinstance(ordered, bool):
            raise ValueError(f"gene {data.get('name')!r}: 'ordered' must be true or false, got {ordered!r}")
        return Choice(data["name"], data["options"], data.get("tag", ""), condition, ordered)


def _number(name: str, what: str, value: Any, kind: type) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or (kind is int and float(value) != int(value)):
        raise ValueError(f"gene {name!r}: {what} must be {'a whole' if kind is int else 'a finite'} number, "
                         f"got {value!r}")
    return kind(value)


@dataclass(frozen=True)
class NumberRange:
    """The numbers a range gene spans: `kind` "int" or "float", `low`..`high`, integer `step` (int ranges), `log`."""

    kind: str
    low: float
    high: float
    step: int = 1
    log: bool = False


class _Range(Choice):
    """A numeric range searched on a grid of ordered values: what IntRange and FloatRange share."""

    low: Any
    high: Any
    log: bool
    TYPE = ""

    def _finish(self, **fields: Any) -> None:
        for key, value in fields.items():
            object.__setattr__(self, key, value)

    def _extra(self) -> dict[str, Any]:
        return {}

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"type": self.TYPE, "name": self.name, "low": self.low, "high": self.high,
                                **self._extra()}
        if self.log:
            data["log"] = True
        if self.tag:
            data["tag"] = self.tag
        if self.active_if is not None:
            data["active_if"] = self.active_if.to_dict()
        return data

    def _out_of_range(self, value: Any) -> ValueError:
        return ValueError(f"gene {self.name!r}: {value!r} is outside {self.low:g}..{self.high:g}")


class IntRange(_Range):
    """An integer gene `low..high` in steps of `step` (or, with `log`, about evenly spaced on a log scale): ordered,
    encoded by its position for predictors, mutated by steps proportional to its length.

    >>> IntRange("width", 16, 64, step=16).options
    (16, 32, 48, 64)
    """

    step: int
    TYPE = "int_range"

    def __init__(self, name: str, low: int, high: int, step: int = 1, log: bool = False, tag: str = "",
                 active_if: Condition | None = None):
        low, high, step = (_number(name, w, v, int) for w, v in (("low", low), ("high", high), ("step", step)))
        if high < low or step < 1:
            raise ValueError(f"gene {name!r}: needs low <= high and step >= 1, got {low}..{high} step {step}")
        if log and (low < 1 or step != 1):
            raise ValueError(f"gene {name!r}: a log range needs low >= 1 and step 1")
        if log:
            grid = np.unique(np.rint(np.geomspace(low, high, min(high - low + 1, 64))).astype(int)).tolist()
        else:
            if (high - low) % step:
                raise ValueError(f"gene {name!r}: high - low ({high - low}) is not a multiple of step {step}")
            grid = list(range(low, high + 1, step))
        super().__init__(name, grid, tag, active_if, True)
        self._finish(low=low, high=high, step=step, log=bool(log))

    def number_range(self) -> NumberRange:
        return NumberRange("int", self.low, self.high, self.step, self.log)

    def _extra(self) -> dict[str, Any]:
        return {"step": self.step} if self.step != 1 else {}

    def index(self, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"gene {self.name!r}: {value!r} is not a whole number in {self.low}..{self.high}")
        if not self.low <= value <= self.high:
            raise self._out_of_range(value)
        i = self.nearest(value)
        if self.options[i] != value:
            raise ValueError(f"gene {self.name!r}: {value!r} is not one of its values (step {self.step}"
                             f"{', log spacing' if self.log else ''}; nearest {self.options[i]})")
        return i

    def nearest(self, value: float) -> int:
        """The grid position nearest `value` (a log range holds only some of the integers between its ends)."""
        return int(np.argmin(np.abs(np.asarray(self.options) - value)))

    def with_options(self, options: Sequence[Any]) -> Choice:
        return Choice(self.name, [o for o in self.options if o in set(options)], self.tag, self.active_if, True)


class FloatRange(_Range):
    """A real gene `low..high`, searched at `steps` evenly spaced values (log-spaced with `log`), so every strategy,
    the trial store and the predictors handle it like any ordered gene; a value between grid points is taken to
    the nearest one (12 significant digits kept; the ends are `low` and `high` exactly).

    >>> FloatRange("dropout", 0.0, 0.5, steps=6).options
    (0.0, 0.1, 0.2, 0.3, 0.4, 0.5)
    """

    steps: int
    TYPE = "float_range"

    def __init__(self, name: str, low: float, high: float, steps: int = 101, log: bool = False, tag: str = "",
                 active_if: Condition | None = None):
        low, high = _number(name, "low", low, float), _number(name, "high", high, float)
        steps = _number(name, "steps", steps, int)
        if not high > low or steps < 2:
            raise ValueError(f"gene {name!r}: needs low < high and steps >= 2, got {low}..{high} in {steps} steps")
        if log and low <= 0:
            raise ValueError(f"gene {name!r}: a log range needs low > 0, got {low}")
        grid = np.geomspace(low, high, steps) if log else np.linspace(low, high, steps)
        values = [min(max(float(f"{v:.12g}"), low), high) for v in grid]  # rounding never leaves the range
        values[0], values[-1] = low, high
        super().__init__(name, values, tag, active_if, True)
        self._finish(low=low, high=high, steps=steps, log=bool(log))

    def number_range(self) -> NumberRange:
        return NumberRange("float", self.low, self.high, 1, self.log)

    def _extra(self) -> dict[str, Any]:
        return {"steps": self.steps}

    def index(self, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"gene {self.name!r}: {value!r} is not a number in {self.low:g}..{self.high:g}")
        span = (self.high - self.low) * 1e-9
        if not self.low - span <= value <= self.high + span:
            raise self._out_of_range(value)
        return self.nearest(value)

    def nearest(self, value: float) -> int:
        grid = np.log(self.options) if self.log else np.asarray(self.options)
        return int(np.argmin(np.abs(grid - (math.log(value) if self.log else value))))

    def with_options(self, options: Sequence[Any]) -> Choice:
        keep = {self.index(o) for o in options}
        return Choice(self.name, [o for i, o in enumerate(self.options) if i in keep], self.tag, self.active_if, True)


def _numeric(options: Sequence[Any]) -> bool:
    """All options are real numbers (bools excluded): such a gene is ordered unless it says otherwise."""
    return all(isinstance(o, (int, float)) and not isinstance(o, bool) for o in options)


def _hashable(value: Any) -> Any:
    """Options may be lists in JSON; compare them as tuples."""
    if isinstance(value, list):
        return tuple(_hashable(v) for v in value)
    if isinstance(value, bool):
        return ("bool", value)  # keep True distinct from 1
    return value
