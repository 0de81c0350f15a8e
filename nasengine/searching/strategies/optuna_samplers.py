"""optuna's samplers as strategies: TPE (multi-objective MOTPE when there are several objectives) and
optuna's NSGA-II, asked in rounds against a private in-memory study.

The in-memory study is the sampler's working memory only; the real evaluations live in the trial store, so
a resumed search replays the same asks and tells (samplers are seeded) and evaluates nothing twice. Ordered
genes are suggested as integers (the sampler may exploit the order), categorical ones as categories.
"""

from __future__ import annotations

import warnings
from typing import Any, Callable

import optuna
from optuna.samplers import BaseSampler, NSGAIISampler, TPESampler

from nasengine.searching.problem import SearchProblem
from nasengine.searching.store import open_study
from nasengine.searching.strategies.base import Strategy, register_strategy
from nasengine.search_spaces.space import Arch

CONSTRAINTS_ATTR = "constraint_violations"


def _constraints(trial: optuna.trial.FrozenTrial) -> list[float]:
    return list(trial.user_attrs.get(CONSTRAINTS_ATTR, []))


def suggest_arch(trial: optuna.Trial, problem: SearchProblem) -> Arch:
    """Suggest one option per active gene (inactive genes are not suggested at all)."""
    arch: dict[str, Any] = {}
    for gene in problem.space.genes:
        if not problem.space.is_active(gene, arch):
            arch[gene.name] = None
        elif gene.is_range:  # the sampler models the number; the arch holds the nearest grid value
            numbers = gene.number_range()
            value = trial.suggest_int(gene.name, int(numbers.low), int(numbers.high), step=numbers.step,
                                      log=numbers.log) if numbers.kind == "int" else \
                trial.suggest_float(gene.name, numbers.low, numbers.high, log=numbers.log)
            arch[gene.name] = gene.options[gene.nearest(value)]
        elif gene.ordered:
            arch[gene.name] = gene.options[trial.suggest_int(gene.name, 0, len(gene) - 1)]
        else:
            index = trial.suggest_categorical(gene.name, list(range(len(gene))))
            arch[gene.name] = gene.options[int(index)]
    return arch


class OptunaStrategy(Strategy):
    """Ask `batch` trials, evaluate them as one round, tell the results; repeat until the budget is spent."""

    batch = 8
    max_stalled_rounds = 50

    def make_sampler(self, problem: SearchProblem, seed: int) -> BaseSampler:
        raise NotImplementedError

    def run(self, problem: SearchProblem, seed: int) -> None:
        with warnings.catch_warnings():  # multivariate/group TPE are "experimental" in optuna's terms
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            sampler = self.make_sampler(problem, seed)
        storage = optuna.storages.InMemoryStorage()
        open_study(storage, "sampler", ["minimize"] * problem.n_obj)
        study = optuna.load_study(study_name="sampler", storage=storage, sampler=sampler)
        stalled = 0
        while not problem.done and stalled < self.max_stalled_rounds:
            before = problem.distinct
            trials = [study.ask() for _ in range(min(self.batch, max(problem.remaining, 1)))]
            archs = [suggest_arch(t, problem) for t in trials]
            F, G, rows = problem.evaluate_archs(archs)
            for trial, f, g, row in zip(trials, F, G, rows):
                if row is None or row.failed:
                    study.tell(trial, state=optuna.trial.TrialState.FAIL)
                    continue
                trial.set_user_attr(CONSTRAINTS_ATTR, [float(v) for v in g])
                study.tell(trial, [float(v) for v in f])
            stalled = stalled + 1 if problem.distinct == before else 0


def _constraints_func(problem: SearchProblem) -> Callable[[optuna.trial.FrozenTrial], list[float]] | None:
    return _constraints if problem.n_constr else None


@register_strategy("tpe")
class TPEStrategy(OptunaStrategy):
    """Tree-structured Parzen estimator (MOTPE for several objectives); the first rounds are random."""

    def make_sampler(self, problem: SearchProblem, seed: int) -> BaseSampler:
        startup = max(10, min(problem.plan // 10, 24))
        return TPESampler(seed=seed, n_startup_trials=startup, multivariate=True, group=True,
                          constraints_func=_constraints_func(problem))


@register_strategy("optuna-nsga2")
class OptunaNSGA2Strategy(OptunaStrategy):
    """optuna's NSGA-II sampler (uniform crossover over categorical parameters)."""

    def make_sampler(self, problem: SearchProblem, seed: int) -> BaseSampler:
        population = max(8, min(problem.plan // 6, 50))
        self.batch = population
        return NSGAIISampler(seed=seed, population_size=population, constraints_func=_constraints_func(problem))
