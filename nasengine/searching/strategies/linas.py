"""LINAS (DyNAS-T's lightweight iterative NAS): real evaluations steer predictors, predictors steer evolution.

Each round: fit one lightly trained predictor per objective (and per constraint) on every real row so far
(predictors.accuracy, chosen by cross-validation) and run a large NSGA-II on the predictions alone (thousands
of candidates per generation, vectorised, no real evaluation). Its final population, mutants of the real
front and a few uniform samples form the candidate pool. The pool is scored by uncertainty-aware predictors
(bootstrap ensembles of the chosen kinds) on the inputs cross-validation picks per objective: the encoding, the
search's cheap per-arch features when it has them (a supernet's cost descriptors: latency follows MACs,
activations and op counts long before a few noisy measurements can say so), or both; ratio-scale targets such as
latency are fitted in log. The batch to evaluate for real is chosen by expected hypervolume
improvement over the real front, spread along the front and in the encoding (searching.acquisition). When the
predictions promise no improvement, the predicted front fills the batch, spread along it. The real rows record
what was predicted for them (`predicted:<column>` details) so reports can show how good the predictors were.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import numpy as np
from pymoo.algorithms.moo.nsga2 import NSGA2
from pymoo.core.problem import Problem
from pymoo.optimize import minimize
from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting

from nasengine.searching.acquisition import Candidates, ExpectedImprovement, probability_feasible
from nasengine.searching.problem import SearchProblem
from nasengine.searching.strategies.base import Strategy, register_strategy
from nasengine.searching.variation import GeneCrossover, GeneLayout, GeneMutation
from nasengine.predictors.accuracy import MIN_ROWS, choose_kind, cross_validate, fit_bootstrap, fit_predictor
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
    """Validate a few archs, then in small rounds: fit predictors on all real rows, evolve on predictions, score
    a candidate pool with uncertainty-aware predictors, and validate the batch of highest expected improvement."""

    inner_population = 200
    inner_generations = 25
    members = 8  # bootstrap members of each uncertainty-aware predictor
    mutants = 8  # mutants of every real front member in each pool
    explore = 32  # uniform samples in each pool
    enumerate_below = 10_000  # spaces with at most this many encodings are scored whole instead of evolved
    initial_share, initial_range = 20, (8, 16)  # first batch: plan // share, clipped to the range
    round_share, round_range = 50, (4, 10)  # each later batch: plan // share, clipped to the range
    kinds: tuple[str, ...] | None = None  # predictor kinds cross-validation chooses among (None: every kind)

    def run(self, problem: SearchProblem, seed: int) -> None:
        rng = np.random.default_rng(seed)
        layout = GeneLayout(problem.space)
        self._kinds: dict[str, tuple[str, int]] = {}
        self._views: dict[str, tuple[str, str, int]] = {}
        # small rounds: every real evaluation should inform the next choice; the first batch anchors the front
        initial = int(np.clip(problem.plan // self.initial_share, *self.initial_range))
        batch = int(np.clip(problem.plan // self.round_share, *self.round_range))
        problem.evaluate_archs(problem.initial_archs(min(initial, problem.remaining), rng))
        round_ = 0
        while not problem.done:
            n = min(batch, problem.remaining)
            archs, predictions = self._propose(problem, layout, n, seed + round_)
            archs += problem.unseen_samples(n - len(archs), rng, {problem.space.key(a) for a in archs})
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
        y = _target(rows, column)
        kind, chosen_at = self._kinds.get(column, ("auto", 0))
        if kind == "auto" or len(rows) >= 2 * chosen_at:
            model = fit_predictor(X, y, seed=seed, log_target=_ratio_scale(y), candidates=self.kinds)
            self._kinds[column] = (model.kind, len(rows))
            return model
        return fit_predictor(X, y, kind=kind, seed=seed, log_target=_ratio_scale(y))

    def _uncertain(self, F: np.ndarray, width: int, rows: list[Any], column: str, seed: int) -> _Scorer:
        """A bootstrap ensemble (mean and spread) of `column` on the view of the features and the kind that
        cross-validation prefers: the encoding, the search's own features, or both. Which view wins differs by
        objective (latency follows the costs, accuracy often the genes) and by how many rows there are, so the
        choice is made again whenever the rows have doubled."""
        y = _target(rows, column)
        log_target = _ratio_scale(y)
        views = {"encoding": slice(0, width)}
        if F.shape[1] > width:
            views.update(features=slice(width, None), both=slice(0, None))
        view, kind, chosen_at = self._views.get(column, ("", "", 0))
        if not view or len(rows) >= 2 * chosen_at:
            scored = []
            for name, columns in views.items():
                cv = cross_validate(F[:, columns], y, kinds=self.kinds, seed=seed, log_target=log_target)
                best = choose_kind(cv)
                tau = cv[best]["kendall_tau"]
                scored.append((tau if np.isfinite(tau) else -np.inf, -len(scored), name, best))
            _, _, view, kind = max(scored)
            self._views[column] = (view, kind, len(rows))
        columns = views[view]
        ensemble = fit_bootstrap(F[:, columns], y, kind, members=self.members, seed=seed, log_target=log_target)
        return lambda F_pool: ensemble.predict_with_std(F_pool[:, columns])

    def _propose(self, problem: SearchProblem, layout: GeneLayout, n: int,
                 seed: int) -> tuple[list[dict[str, Any]], dict[str, dict[str, float]]]:
        rows = problem.evaluated  # failed evaluations teach the predictors nothing
        if len(rows) < MIN_ROWS:  # too few to fit on (early evaluations failed): this round samples uniformly
            return [], {}
        whole = _enumerated(problem.space, self.enumerate_below)
        if whole is not None:  # a small space: every unevaluated arch is a candidate
            pool = [a for a in whole if problem.space.key(a) not in problem.known]
        else:
            onehot = OneHotEncoding()
            X_real = np.stack([onehot.encode(problem.space, r.arch) for r in rows])
            models = [self._fit(X_real, rows, o.column, seed) for o in problem.objectives]
            constraint_models = [self._fit(X_real, rows, c.column, seed) for c in problem.constraints]
            predicted = _Predicted(problem, models, constraint_models)
            pool = self._pool(problem, layout, self._evolve(problem, layout, predicted, rows, seed), rows, seed)
        if not pool:
            return [], {}
        F_real, F_pool = problem.features([r.arch for r in rows]), problem.features(pool)
        width = problem.space.encoding_width("onehot")
        scored = [self._uncertain(F_real, width, rows, o.column, seed)(F_pool) for o in problem.objectives]
        values = {o.column: mean for o, (mean, _) in zip(problem.objectives, scored)}
        costs = np.stack([o.sign * mean for o, (mean, _) in zip(problem.objectives, scored)], axis=1)
        spread = np.stack([std for _, std in scored], axis=1)
        violation = [(1.0 if c.op == "<=" else -1.0, c.bound, self._uncertain(F_real, width, rows, c.column, seed))
                     for c in problem.constraints]
        violations = [(sign * (mean - bound), std) for sign, bound, model in violation
                      for mean, std in [model(F_pool)]]
        feasible = probability_feasible(np.stack([m for m, _ in violations], axis=1) if violations
                                        else np.zeros((len(pool), 0)),
                                        np.stack([s for _, s in violations], axis=1) if violations
                                        else np.zeros((len(pool), 0)))
        order = self._acquire(problem, rows, Candidates(costs, spread, feasible, F_pool[:, :width]), n, seed)
        chosen = [pool[i] for i in order]
        predictions = {problem.space.key(pool[i]): {column: float(v[i]) for column, v in values.items()}
                       for i in order}
        return chosen, predictions

    def _acquire(self, problem: SearchProblem, rows: list[Any], candidates: Candidates, n: int,
                 seed: int) -> list[int]:
        """Up to `n` pool indices: by expected hypervolume improvement over the feasible real front, then the
        predicted front (feasible first), spread along it, for the places the predictions promise nothing."""
        feasible_rows = [r for r in rows if all(v <= 0 for v in problem.violations(r))]
        picked: list[int] = []
        if feasible_rows:
            real = np.array([problem.costs(r) for r in feasible_rows])
            picked = ExpectedImprovement(real, seed=seed).pick(candidates, n)
        if len(picked) < n:
            likely = candidates.feasible >= 0.5
            for subset in (np.flatnonzero(likely), np.flatnonzero(~likely)):
                if not len(subset):
                    continue
                fronts = NonDominatedSorting().do(candidates.mean[subset])
                for front in fronts:
                    for i in _spread(candidates.mean[subset][front], subset[front]):
                        if len(picked) >= n:
                            return picked
                        if i not in picked:
                            picked.append(i)
        return picked[:n]

    def _evolve(self, problem: SearchProblem, layout: GeneLayout, predicted: _Predicted, rows: list[Any],
                seed: int) -> np.ndarray:
        """The final population of an NSGA-II run on the predictions alone, started from the real rows."""
        known = np.stack([problem.encode(r.arch) for r in rows])
        start = np.concatenate([known, layout.random(max(self.inner_population - len(known), 0),
                                                     np.random.default_rng(seed))])[: self.inner_population]
        algorithm = NSGA2(pop_size=self.inner_population, sampling=start, crossover=GeneCrossover(layout),
                          mutation=GeneMutation(layout), eliminate_duplicates=True)
        result = minimize(predicted, algorithm, ("n_gen", self.inner_generations), seed=seed, verbose=False)
        return np.asarray(result.pop.get("X"), dtype=np.int64)

    def _pool(self, problem: SearchProblem, layout: GeneLayout, evolved: np.ndarray, rows: list[Any],
              seed: int) -> list[dict[str, Any]]:
        """Distinct unevaluated candidates: the evolved population, mutants of the real front (one and two genes
        away) and uniform samples; with the problem's `propose`, each of those proposed too."""
        rng = np.random.default_rng(seed + 7919)
        costs = np.array([problem.costs(r) for r in rows])
        front = [rows[i] for i in NonDominatedSorting().do(costs, only_non_dominated_front=True)]
        parents = np.repeat(np.stack([problem.encode(r.arch) for r in front]), self.mutants, axis=0)
        once = layout.mutate(parents, rng)
        vectors = np.concatenate([evolved, once, layout.mutate(once, rng), layout.random(self.explore, rng)])
        pool, taken = [], set(problem.known)
        for x in vectors:
            arch = problem.space.decode(x)
            key = problem.space.key(arch)
            if key not in taken:
                taken.add(key)
                pool.append(arch)
        if problem.propose is not None:
            for arch in list(pool):
                proposed = problem.space.validate(problem.propose(arch, rng))
                key = problem.space.key(proposed)
                if key not in taken:
                    taken.add(key)
                    pool.append(proposed)
        return pool


@functools.lru_cache(maxsize=4)
def _enumerated(space: Any, limit: int) -> tuple[dict[str, Any], ...] | None:
    """Every distinct arch of `space` when its encodings number at most `limit` (listed once per space)."""
    archs = space.enumerate(limit)
    return None if archs is None else tuple(archs)


_Scorer = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]  # pool features -> (mean, std)


def _target(rows: list[Any], column: str) -> np.ndarray:
    return np.array([r.metrics[column] for r in rows], dtype=float)


def _ratio_scale(y: np.ndarray) -> bool:
    """Fit the logarithm of positive targets spanning a factor of 2 or more (latency, params, MACs): their
    errors are relative, and costs multiply where the features add."""
    return bool(np.all(y > 0) and y.max() >= 2.0 * y.min())


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
