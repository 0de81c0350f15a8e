"""Search objectives by name: each maps an evaluated subnet to a number to minimise."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from nasengine.errors import UserError
from nasengine.records import Evaluation
from search_spaces.registry import Registry


@dataclass(frozen=True)
class Objective:
    """A named quantity to minimise; `per_device` objectives are instantiated once per searched device."""

    name: str
    per_device: bool
    value: Callable[[Evaluation, str | None], float]
    label: str


OBJECTIVES: Registry[Objective] = Registry("objective")


def register_objective(objective: Objective) -> Objective:
    """Make `objective` selectable by its name in `--objectives`."""
    return OBJECTIVES.add(objective.name, objective)


register_objective(Objective("error", False, lambda e, d: 1.0 - e.accuracy, "top-1 error"))
register_objective(Objective("latency", True, lambda e, d: e.latency[d].median_ms, "latency (ms)"))
register_objective(Objective("params", False, lambda e, d: float(e.params), "parameters"))
register_objective(Objective("macs", False, lambda e, d: float(e.macs), "MACs"))


@dataclass(frozen=True)
class BoundObjective:
    """An objective bound to a device where it needs one (e.g. latency on ort-cpu-1t)."""

    objective: Objective
    device: str | None

    @property
    def column(self) -> str:
        return self.objective.name if self.device is None else f"{self.objective.name}:{self.device}"

    def __call__(self, evaluation: Evaluation) -> float:
        return self.objective.value(evaluation, self.device)


def bind_objectives(names: list[str], devices: list[str]) -> list[BoundObjective]:
    """Resolve objective names; 'error' must be among them (accuracy is what search trades off)."""
    bound: list[BoundObjective] = []
    for name in names:
        objective = OBJECTIVES.get(name)
        bound += [BoundObjective(objective, d) for d in devices] if objective.per_device else [BoundObjective(objective, None)]
    if len(bound) < 2:
        raise UserError("search needs at least two objectives (e.g. error,latency)")
    return bound
