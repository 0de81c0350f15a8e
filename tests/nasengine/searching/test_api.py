"""`nasengine.search` on a space with user callables: every strategy, the Pareto set, resume, reports."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import nasengine
from nasengine.errors import UserError
from nasengine.reporting.fronts import pareto_mask
from nasengine.searching import available_strategies
from nasengine.searching.api import SearchOptions, load_rows
from tests.nasengine.searching import toy

STRATEGIES = ["random", "nsga2", "nsga3", "agemoea", "tpe", "optuna-nsga2", "linas"]


def brute_front(rows, columns) -> set[str]:
    costs = np.array([[r.metrics[c] for c in columns] for r in rows])
    return {r.key for r, keep in zip(rows, pareto_mask(costs)) if keep}


def test_every_listed_strategy_is_registered() -> None:
    assert set(STRATEGIES) <= set(available_strategies())


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_each_strategy_spends_the_budget_on_distinct_archs_and_returns_their_front(strategy: str) -> None:
    budget = 40
    result = nasengine.search(toy.SPACE, {"error": toy.error, "latency_ms": toy.latency_ms}, strategy=strategy,
                              budget=budget, seed=1)
    keys = [r.key for r in result.rows]
    assert len(keys) == budget and len(set(keys)) == budget
    assert [r.number for r in result.rows] == list(range(budget))
    for row in result.rows:
        assert row.metrics["error"] == pytest.approx(toy.error(row.arch))
    assert {r.key for r in result.pareto} == brute_front(result.rows, ["error", "latency_ms"])


@pytest.mark.parametrize("strategy", ["nsga2", "tpe", "linas"])
def test_a_strategy_is_deterministic_for_a_seed(strategy: str) -> None:
    def keys(seed: int) -> list[str]:
        return [r.key for r in nasengine.search(toy.SPACE, {"error": toy.error, "latency_ms": toy.latency_ms},
                                                strategy=strategy, budget=30, seed=seed).rows]

    assert keys(5) == keys(5)


def test_a_maximised_objective_and_a_constraint_shape_the_front() -> None:
    accuracy = (lambda a: 1.0 - toy.error(a), "maximize")
    result = nasengine.search(toy.SPACE, {"accuracy": accuracy, "latency_ms": toy.latency_ms}, strategy="random",
                              budget=60, seed=0, constraints=["latency_ms<=1.5"])
    feasible = [r for r in result.rows if r.metrics["latency_ms"] <= 1.5]
    assert len(feasible) < len(result.rows)
    costs = np.array([[-r.metrics["accuracy"], r.metrics["latency_ms"]] for r in feasible])
    expected = {r.key for r, keep in zip(feasible, pareto_mask(costs)) if keep}
    assert {r.key for r in result.pareto} == expected
    assert result.objectives[0].direction == "maximize"


def test_extra_metrics_are_recorded_but_not_searched() -> None:
    result = nasengine.search(toy.SPACE, {"error": toy.error, "latency_ms": toy.latency_ms},
                              options=SearchOptions(metrics={"width": lambda a: a["width"]}), strategy="random",
                              budget=10)
    assert all(r.metrics["width"] == r.arch["width"] for r in result.rows)
    assert [o.column for o in result.objectives] == ["error", "latency_ms"]


def test_bad_calls_get_one_line_errors() -> None:
    with pytest.raises(UserError, match="at least two"):
        nasengine.search(toy.SPACE, {"error": toy.error})
    with pytest.raises(UserError, match="callable"):
        nasengine.search(toy.SPACE, {"error": toy.error, "latency_ms": 3})
    with pytest.raises(ValueError, match="unknown search strategy .nope."):
        nasengine.search(toy.SPACE, {"error": toy.error, "latency_ms": toy.latency_ms}, strategy="nope")
    with pytest.raises(UserError, match="does not report"):
        nasengine.search(toy.SPACE, {"error": toy.error, "latency_ms": toy.latency_ms}, budget=4,
                         constraints=["size_mb<=1"])


def test_a_run_directory_holds_reports_and_resumes_without_reevaluating(tmp_path: Path) -> None:
    log = tmp_path / "calls.jsonl"
    out = tmp_path / "run"
    objectives = {"error": toy.logged(log), "latency_ms": toy.latency_ms}
    first = nasengine.search(toy.SPACE, objectives, strategy="nsga2", budget=30, seed=2, out=out)
    assert len(log.read_text().splitlines()) == 30
    for name in ("results.csv", "pareto.csv", "pareto.png", "hypervolume.csv", "hypervolume.png", "store.journal"):
        assert (out / name).is_file(), name
    results = pd.read_csv(out / "results.csv")
    assert list(results["number"]) == list(range(30)) and "latency_ms" in results
    again = nasengine.search(toy.SPACE, objectives, strategy="nsga2", budget=30, seed=2, out=out)
    assert len(log.read_text().splitlines()) == 30  # nothing evaluated twice
    assert [r.key for r in again.rows] == [r.key for r in first.rows]
    more = nasengine.search(toy.SPACE, objectives, strategy="nsga2", budget=90, seed=2, out=out)
    assert len(log.read_text().splitlines()) == 90  # a larger budget continues the same trajectory
    assert [r.key for r in more.rows][:30] == [r.key for r in first.rows]
    assert [r.key for r in load_rows(out)] == [r.key for r in more.rows]
    assert list(pd.read_csv(out / "results.csv")["number"]) == list(range(90))
    assert json.loads((out / "run.json").read_text())["plan_budget"] == 30
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "complete" and run["identity"]["strategy"] == "nsga2"
    with pytest.raises(UserError, match="strategy"):
        nasengine.search(toy.SPACE, objectives, strategy="random", budget=30, seed=2, out=out)


@pytest.mark.parametrize("strategy", ["nsga2", "nsga3", "linas", "tpe", "random"])
def test_a_space_smaller_than_the_budget_is_exhausted_cleanly(strategy: str) -> None:
    from nasengine.search_spaces import Choice, Space

    space = Space([Choice("a", [1, 2]), Choice("b", ["x", "y"]), Choice("c", [3, 4])])
    result = nasengine.search(space, {"f": lambda a: a["a"] + a["c"], "g": lambda a: -a["a"] * (a["b"] == "x")},
                              strategy=strategy, budget=40, seed=0)
    assert len(result.rows) <= 8 and len({r.key for r in result.rows}) == len(result.rows)


def test_a_shared_database_store_needs_a_study_name() -> None:
    with pytest.raises(UserError, match="study_name"):
        nasengine.search(toy.SPACE, {"error": toy.error, "latency_ms": toy.latency_ms},
                         options=SearchOptions(storage="sqlite:///unused.db"))


def test_storage_urls_are_redacted() -> None:
    from nasengine.searching.store import redact

    assert redact("postgresql+psycopg2://me:secret@db:5432/x") == "postgresql+psycopg2://me:***@db:5432/x"
    assert redact("postgresql://me@db/x") == "postgresql://me@db/x"
