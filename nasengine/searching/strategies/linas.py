"""LINAS (DyNAS-T's lightweight iterative NAS): real evaluations steer predictors, predictors steer evolution.

Each round: fit one lightly trained predictor per objective (and per constraint) on every real row so far
(predictors.accuracy, chosen by cross-validation), run a large NSGA-II on the predictions alone (thousands
of candidates per generation, vectorised, no real evaluation), then validate for real the candidates the
predictors promise: the predicted front, spread along it, that are not evaluated yet. The real rows record
what was predicted for them (`predicted:<column>` details) so reports can show how good the predictors were.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pymoo.algorithms.moo.nsga2 import NSGA2
from pymoo.core.problem import Problem
from pymoo.optimize import minimize
from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting

from nasengine.searching.problem import SearchProblem
from nasengine.searching.strategies.base import Strategy, register_strategy
from nasengine.searching.variation import GeneCrossover, GeneLayout, GeneMutation
from nasengine.predictors.accuracy import MIN_ROWS, fit_predictor
from nasengine.search_spaces.encoding import OneHotEncoding


class _Predicted(Problem):
    """The search problem with every objective and constraint replaced by its predictor (vectorised)."""

    def __init__(self, problem: SearchProblem, models: list[Any], constraint_models: list[Any]):
        xl, xu = problem.bounds()
        super().__init__(n_var=len(xl), n_obj=problem.n_obj, n_ieq_constr=problem.n_constr, xl=xl, xu=xu, vtype=int)
        self.problem, self.models, self.constraint_models = problem, models, constraint_models
        self.signs = np.array([o.sign for o in problem.objectives])  # maximised objectives are negated
        self.bounds_ = [(1.0 if c.op == "<=" else -1.0, c.bound) for c in problem.constraints]
        self.onehot = OneHotEncoding()
        self.active = _ActiveMask(problem.space)

    def features(self, X: np.ndarray) -> np.ndarray:
        """The predictors' encoding of integer-encoded candidates, vectorised (the inner loop of the search)."""
        X = np.asarray(X, dtype=np.int64)
        return self.onehot.from_indices(self.problem.space, X, self.active(X))

    def _evaluate(self, X, out, *args, **kwargs):  # type: ignore[no-untyped-def,override]
        features = self.features(X)
        out["F"] = np.stack([m.predict(features) for m in self.models], axis=1) * self.signs
        if self.constraint_models:
            out["G"] = np.stack([sign * (m.predict(features) - bound)
                                 for m, (sign, bound) in zip(self.constraint_models, self.bounds_)], axis=1)


class _ActiveMask:
    """Which genes are active for each integer-encoded row (conditional genes), vectorised per condition."""

    def __init__(self, space: Any):
        self.space = space
        self.conditional = [(i, g) for i, g in enumerate(space.genes) if g.active_if is not None]
        self.index = {g.name: i for i, g in enumerate(space.genes)}

    def __call__(self, X: np.ndarray) -> np.ndarray:
        mask = np.ones(X.shape, dtype=bool)
        for i, gene in self.conditional:
            cond = gene.active_if
            controller = self.space.gene(cond.gene)
            holds = np.array([cond.holds({cond.gene: o}) for o in controller.options])
            mask[:, i] = holds[X[:, self.index[cond.gene]]]
        return mask


@register_strategy("linas")
class LINAS(Strategy):
    """Validate a population, fit predictors on all real rows, evolve on predictions, validate the promise."""

    inner_population = 200
    inner_generations = 25

    def run(self, problem: SearchProblem, seed: int) -> None:
        rng = np.random.default_rng(seed)
        layout = GeneLayout(problem.space)
        self._kinds: dict[str, tuple[str, int]] = {}
        batch = int(np.clip(problem.plan // 10, 8, 32))
        problem.evaluate_archs(problem.initial_archs(batch, rng))
        round_ = 0
        while not problem.done:
            archs, predictions = self._propose(problem, layout, min(batch, problem.remaining), seed + round_)
            archs += problem.unseen_samples(min(batch, problem.remaining) - len(archs), rng,
                                            {problem.space.key(a) for a in archs})
            if not archs:
                return  # the space is exhausted
            for arch in archs:
                predicted = predictions.get(problem.space.key(arch))
                if predicted is not None:
                    problem.annotate(arch, predicted)
            problem.evaluate_archs(archs)
            round_ += 1

    def _fit(self, X: np.ndarray, rows: list[Any], column: str, seed: int) -> Any:
        """A predictor of `column`; its kind is re-chosen by cross-validation whenever the number of real rows
        has doubled since the last choice (CV over every kind costs far more than one fit)."""
        y = np.array([r.metrics[column] for r in rows], dtype=float)
        kind, chosen_at = self._kinds.get(column, ("auto", 0))
        if kind == "auto" or len(rows) >= 2 * chosen_at:
            model = fit_predictor(X, y, seed=seed)
            self._kinds[column] = (model.kind, len(rows))
            return model
        return fit_predictor(X, y, kind=kind, seed=seed)

    def _propose(self, problem: SearchProblem, layout: GeneLayout, n: int,
                 seed: int) -> tuple[list[dict[str, Any]], dict[str, dict[str, float]]]:
        rows = problem.evaluated  # failed evaluations teach the predictors nothing
        if len(rows) < MIN_ROWS:  # too few to fit on (early evaluations failed): this round samples uniformly
            return [], {}
        onehot = OneHotEncoding()
        X_real = np.stack([onehot.encode(problem.space, r.arch) for r in rows])
        models = [self._fit(X_real, rows, o.column, seed) for o in problem.objectives]
        constraint_models = [self._fit(X_real, rows, c.column, seed) for c in problem.constraints]
        predicted = _Predicted(problem, models, constraint_models)
        known = np.stack([problem.encode(r.arch) for r in rows])
        start = np.concatenate([known, layout.random(max(self.inner_population - len(known), 0),
                                                     np.random.default_rng(seed))])[: self.inner_population]
        algorithm = NSGA2(pop_size=self.inner_population, sampling=start, crossover=GeneCrossover(layout),
                          mutation=GeneMutation(layout), eliminate_duplicates=True)
        result = minimize(predicted, algorithm, ("n_gen", self.inner_generations), seed=seed, verbose=False)
        X = np.asarray(result.pop.get("X"), dtype=np.int64)
        F = np.asarray(result.pop.get("F"), dtype=float)
        fronts = NonDominatedSorting().do(F)
        order = [i for front in fronts for i in _spread(F[front], front)]
        chosen, predictions, taken = [], {}, set()
        features = predicted.features(X)
        values = {o.column: m.predict(features) for o, m in zip(problem.objectives, models)}
        for i in order:
            if len(chosen) >= n:
                break
            arch = problem.space.decode(X[i])
            key = problem.space.key(arch)
            if key in problem.known or key in taken:
                continue
            taken.add(key)
            chosen.append(arch)
            predictions[key] = {column: float(v[i]) for column, v in values.items()}
        return chosen, predictions


def _spread(F: np.ndarray, members: np.ndarray) -> list[int]:
    """Members of one front, ordered so that every prefix is spread along it: the two ends, the middle, then
    the quarter points, and so on (by the first objective)."""
    order = members[np.argsort(F[:, 0], kind="stable")]
    n = len(order)
    picked: list[int] = []
    seen: set[int] = set()
    parts = 1
    while len(picked) < n:
        for j in range(parts + 1):
            position = int(round(j * (n - 1) / parts))
            if position not in seen:
                seen.add(position)
                picked.append(int(order[position]))
        parts *= 2
    return picked
