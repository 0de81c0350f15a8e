"""The search problem every strategy sees: propose archs in rounds, get objectives and constraint violations.

The problem keeps the search *trajectory*: the distinct archs in the order strategies proposed them. A
strategy is deterministic given its seed and the values it is told, and every value comes from the store, so
a resumed search (or a second worker) replays the same trajectory and evaluates only what is missing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from nasengine.errors import UserError
from nasengine.searching.objectives import Constraint, Objective, Row
from nasengine.search_spaces.encoding import IntegerEncoding
from nasengine.search_spaces.space import Arch, Space

PENALTY = 1e12  # objective value of candidates left unevaluated because the budget ran out


@dataclass(frozen=True)
class Pending:
    """An arch the strategy wants evaluated: its place in the trajectory, its round, and details to record
    with it (e.g. what a predictor promised)."""

    index: int
    round: int
    arch: Arch
    details: dict[str, Any] = field(default_factory=dict)


EvaluateRound = Callable[[Sequence[Pending]], list[Row]]
ArchFeatures = Callable[[Arch], Sequence[float]]  # cheap per-arch numbers a predictor may use (e.g. cost descriptors)
ArchProposal = Callable[[Arch, np.random.Generator], Arch]  # a variant of an arch that cheap priors favour
PROPOSED_SHARE = 0.75  # of the first uniform samples, how many start from a proposal (the rest stay uniform)


@dataclass(frozen=True)
class ArchPriors:
    """What cheap priors say about archs before they are evaluated: `features(arch)`, numbers predictor-guided
    strategies add to the encoding (a supernet's cost descriptors), and `propose(arch, rng)`, a variant the priors
    favour (a precision policy set where the device's tables say it pays)."""

    features: ArchFeatures | None = None
    propose: ArchProposal | None = None


class SearchProblem:
    """Minimise `objectives` over `space` subject to `constraints`, within `budget` distinct archs.

    `plan` is the budget strategies size themselves by (population, round size): the budget of the run's
    first session, so that resuming with a larger budget continues the same trajectory. `priors.features`, when
    given, computes cheap numbers per arch without evaluating it (a supernet's MACs and other cost descriptors)
    that predictor-guided strategies add to the encoding. `priors.propose`, when given, turns an arch into a variant
    that cheap priors favour (a precision policy set where the device's tables say INT8 pays): most first samples
    are proposals, and predictor-guided strategies add proposals to their candidate pools."""

    def __init__(self, space: Space, objectives: Sequence[Objective], constraints: Sequence[Constraint],
                 budget: int, evaluate_round: EvaluateRound, plan: int | None = None, max_failures: int = 10,
                 priors: ArchPriors = ArchPriors()):
        self.space, self.objectives, self.constraints = space, list(objectives), list(constraints)
        self.max_failures, self.failures_in_a_row = max_failures, 0
        self.budget = budget
        self.plan = budget if plan is None else plan
        self._evaluate_round = evaluate_round
        self.history: list[Row] = []
        self.known: dict[str, Row] = {}
        self.round = 0
        self.encoding = IntegerEncoding()
        self._annotations: dict[str, dict[str, Any]] = {}
        self._arch_features = priors.features
        self._feature_cache: dict[str, np.ndarray] = {}
        self.propose = priors.propose

    @property
    def has_features(self) -> bool:
        return self._arch_features is not None

    def features(self, archs: Sequence[Arch]) -> np.ndarray:
        """Predictor inputs per arch (n, d): the one-hot encoding, then the search's own per-arch features when it
        has them (computed once per arch: a supernet's cost descriptors take milliseconds)."""
        onehot = np.stack([self.space.encode(a, "onehot") for a in archs]) if archs else np.zeros((0, 0))
        if self._arch_features is None or not archs:
            return onehot
        extra = []
        for arch in archs:
            key = self.space.key(arch)
            if key not in self._feature_cache:
                self._feature_cache[key] = np.asarray(self._arch_features(arch), dtype=float)
            extra.append(self._feature_cache[key])
        return np.concatenate([onehot, np.stack(extra)], axis=1)

    @property
    def n_obj(self) -> int:
        return len(self.objectives)

    @property
    def n_constr(self) -> int:
        return len(self.constraints)

    @property
    def distinct(self) -> int:
        return len(self.history)

    @property
    def done(self) -> bool:
        return len(self.history) >= self.budget

    @property
    def remaining(self) -> int:
        return max(self.budget - len(self.history), 0)

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        return self.encoding.bounds(self.space)

    def encode(self, arch: Arch) -> np.ndarray:
        return self.encoding.encode(self.space, arch)

    def costs(self, row: Row) -> list[float]:
        return [o.cost(row.metrics[o.column]) for o in self.objectives]

    def violations(self, row: Row) -> list[float]:
        return [c.violation(row.metrics[c.column]) for c in self.constraints]

    def evaluate_archs(self, archs: Sequence[Arch]) -> tuple[np.ndarray, np.ndarray, list[Row | None]]:
        """Objective costs F (n, n_obj; minimised), violations G (n, n_constr; feasible when <= 0) and the row
        of each arch. New archs beyond the budget are not evaluated (PENALTY, row None)."""
        canonical = [self.space.validate(a) for a in archs]
        keys = [self.space.key(a) for a in canonical]
        todo: list[Pending] = []
        planned: set[str] = set()
        for arch, key in zip(canonical, keys):
            if key in self.known or key in planned or len(self.history) + len(todo) >= self.budget:
                continue
            planned.add(key)
            todo.append(Pending(len(self.history) + len(todo), self.round, arch, self._annotations.pop(key, {})))
        if todo:
            for row in self._evaluate_round(todo):
                self.history.append(row)
                self.known[row.key] = row
                self._count_failure(row)
            self.round += 1
        F = np.full((len(archs), self.n_obj), PENALTY)
        G = np.full((len(archs), self.n_constr), PENALTY)
        rows: list[Row | None] = []
        for i, key in enumerate(keys):
            row = self.known.get(key)
            rows.append(row)
            if row is not None and not row.failed:  # a failed evaluation keeps the penalty: strategies avoid it
                F[i] = self.costs(row)
                if self.n_constr:
                    G[i] = self.violations(row)
        return F, G, rows

    @property
    def evaluated(self) -> list[Row]:
        """The successful evaluations so far, in trajectory order (what predictors and reports use)."""
        return [row for row in self.history if not row.failed]

    def _count_failure(self, row: Row) -> None:
        """Stop the search (a one-line UserError) after `max_failures` failed evaluations in a row."""
        self.failures_in_a_row = self.failures_in_a_row + 1 if row.failed else 0
        if self.failures_in_a_row >= self.max_failures:
            raise UserError(f"the last {self.failures_in_a_row} evaluations failed, the last with {row.error}; "
                            f"fix the evaluation and run the search again")

    def annotate(self, arch: Arch, predicted: dict[str, float]) -> None:
        """Record what a predictor promised for `arch`, stored as `predicted:<column>` with its evaluation."""
        self._annotations[self.space.key(arch)] = {f"predicted:{k}": float(v) for k, v in predicted.items()}

    def evaluate_vectors(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        F, G, _ = self.evaluate_archs([self.space.decode(x) for x in np.asarray(X)])
        return F, G

    def initial_archs(self, n: int, rng: np.random.Generator) -> list[Arch]:
        """The smallest and largest subnets first (they anchor the front), then distinct uniform samples; with
        `propose`, the proposals of the smallest and largest come next and most samples are proposals."""
        anchors = [self.space.min(), self.space.max()]
        if self.propose is not None:
            anchors += [self.space.validate(self.propose(a, rng)) for a in anchors]
        archs: list[Arch] = []
        seen: set[str] = set()
        for arch in anchors:
            if self.space.key(arch) not in seen:
                seen.add(self.space.key(arch))
                archs.append(arch)
        tries = 0
        while len(archs) < n and tries < 100 * n:
            arch = self.space.sample(rng=rng)
            if self.propose is not None and rng.random() < PROPOSED_SHARE:
                arch = self.space.validate(self.propose(arch, rng))
            tries += 1
            if self.space.key(arch) not in seen:
                seen.add(self.space.key(arch))
                archs.append(arch)
        return archs[:n]

    def unseen_samples(self, n: int, rng: np.random.Generator, exclude: set[str] | None = None) -> list[Arch]:
        """Up to `n` uniform samples not evaluated yet (nor in `exclude`)."""
        out: list[Arch] = []
        taken = set(exclude or ())
        for _ in range(100 * max(n, 1)):
            if len(out) >= n:
                break
            arch = self.space.sample(rng=rng)
            key = self.space.key(arch)
            if key not in self.known and key not in taken:
                taken.add(key)
                out.append(arch)
        return out
