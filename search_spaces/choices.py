"""The building blocks of a search space: a gene with finite choices, optionally active only under a condition."""

from __future__ import annotations

import operator
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

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

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Choice":
        cond = data.get("active_if")
        ordered = data.get("ordered")
        if ordered is not None and not isinstance(ordered, bool):
            raise ValueError(f"gene {data.get('name')!r}: 'ordered' must be true or false, got {ordered!r}")
        return cls(data["name"], data["options"], data.get("tag", ""), Condition.from_dict(cond) if cond else None,
                   ordered)


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
