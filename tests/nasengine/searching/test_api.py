"""`nasengine.search` on a space with user callables: every strategy, the Pareto set, resume, reports."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import optuna
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
    with pytest.raises(UserError, match="one or more"):
        nasengine.search(toy.SPACE, {})
    with pytest.raises(UserError, match="callable"):
        nasengine.search(toy.SPACE, {"error": toy.error, "latency_ms": 3})
    with pytest.raises(ValueError, match="unknown search strategy .nope."):
        nasengine.search(toy.SPACE, {"error": toy.error, "latency_ms": toy.latency_ms}, strategy="nope")



def test_every_name_is_checked_before_the_first_evaluation() -> None:
    """A constraint on a metric the search does not compute is refused before anything runs, not after."""
    calls: list[dict] = []

    def error(arch: dict) -> float:
        calls.append(arch)
        return toy.error(arch)

    with pytest.raises(UserError, match="constraint on 'size_mb', which is neither an objective nor a metric"):
        nasengine.search(toy.SPACE, {"error": error, "latency_ms": toy.latency_ms}, budget=4,
                         constraints=["size_mb<=1"])
    assert calls == []
    result = nasengine.search(toy.SPACE, {"error": error}, budget=4, constraints=["width<=32"],
                              options=SearchOptions(metrics={"width": lambda a: a["width"]}))
    assert len(result.rows) == 4  # a constraint on a recorded metric is fine


@pytest.mark.parametrize("strategy", ["nsga2", "agemoea", "nsga3", "random", "tpe", "optuna-nsga2", "linas"])
def test_one_objective_is_a_search_too(strategy: str) -> None:
    result = nasengine.search(toy.SPACE, {"error": toy.error}, strategy=strategy, budget=24, seed=0)
    best = min(r.metrics["error"] for r in result.rows)
    assert len(result.rows) == 24 and [r.metrics["error"] for r in result.pareto] == [best]


def test_a_failing_objective_fails_that_trial_and_the_search_goes_on(tmp_path: Path) -> None:
    def error(arch: dict) -> float:
        if arch["width"] == 64:
            raise RuntimeError(f"cannot build width {arch['width']}\nsecond line")
        return toy.error(arch)

    out = tmp_path / "run"
    result = nasengine.search(toy.SPACE, {"error": error, "latency_ms": toy.latency_ms}, strategy="random",
                              budget=20, seed=0, out=out)
    assert result.failed and all(r.arch["width"] == 64 for r in result.failed)
    assert all(r.error == "RuntimeError: cannot build width 64" for r in result.failed)
    assert len(result.rows) + len(result.failed) == 20 and all(r.arch["width"] != 64 for r in result.rows)
    failures = pd.read_csv(out / "failures.csv")
    assert sorted(failures["number"]) == sorted(r.number for r in result.failed)
    assert json.loads((out / "run.json").read_text())["summary"]["failed"] == len(result.failed)
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(out / "store.journal")))
    (study,) = optuna.get_all_study_summaries(storage)
    failed = [t for t in storage.get_all_trials(study._study_id) if t.user_attrs.get("evaluation_failed")]
    assert len(failed) == len(result.failed) and failed[0].state == optuna.trial.TrialState.FAIL
    assert failed[0].user_attrs["failed_because"].startswith("RuntimeError: cannot build width 64")
    assert set(pd.read_csv(out / "results.csv")["number"]).isdisjoint(failures["number"])


def test_failures_in_a_row_stop_the_search_with_one_line() -> None:
    def broken(arch: dict) -> float:
        raise KeyError("latency")

    with pytest.raises(UserError, match="the last 3 evaluations failed, the last with KeyError: 'latency'"):
        nasengine.search(toy.SPACE, {"error": broken}, budget=10, options=SearchOptions(max_failures=3))


def test_a_non_finite_objective_is_a_failed_evaluation() -> None:
    result = nasengine.search(toy.SPACE, {"error": lambda a: float("nan") if a["width"] == 64 else toy.error(a)},
                              strategy="random", budget=12, seed=1)
    assert result.failed and all("non-finite error" in r.error for r in result.failed)


def test_the_search_prints_nothing_on_the_console(capfd: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """No optuna 'A new study created' line (nor anything else) leaks from a quiet search."""
    for strategy in ("nsga2", "tpe"):
        nasengine.search(toy.SPACE, {"error": toy.error}, strategy=strategy, budget=6, out=tmp_path / strategy)
    out, err = capfd.readouterr()
    assert out == "" and err == ""


def test_integer_and_real_ranges_search_like_any_gene(tmp_path: Path) -> None:
    from nasengine.search_spaces import Choice, FloatRange, IntRange, Space

    space = Space([IntRange("width", 16, 512, step=16), FloatRange("dropout", 0.0, 0.5, steps=51),
                   FloatRange("lr", 1e-4, 1e-1, steps=31, log=True), Choice("act", ["relu", "gelu"])])
    assert Space.from_dict(json.loads(json.dumps(space.to_dict()))).to_dict() == space.to_dict()
    assert space.validate({"width": 48, "dropout": 0.2049, "lr": 0.00101, "act": "relu"})["dropout"] == 0.2
    with pytest.raises(ValueError, match="outside 16..512"):
        space.validate({"width": 600, "dropout": 0.2, "lr": 0.001, "act": "relu"})
    with pytest.raises(ValueError, match="not one of its values"):
        space.validate({"width": 50, "dropout": 0.2, "lr": 0.001, "act": "relu"})

    def loss(arch: dict) -> float:  # smooth in every range: the best width is 272, dropout 0.1, lr 0.01
        return ((arch["width"] - 272) / 496) ** 2 + (arch["dropout"] - 0.1) ** 2 + (np.log10(arch["lr"]) + 2) ** 2

    for strategy in ("nsga2", "tpe", "linas"):
        result = nasengine.search(space, {"loss": loss}, strategy=strategy, budget=60, seed=0,
                                  out=tmp_path / strategy)
        best = result.pareto[0].arch
        assert all(space.validate(r.arch) == r.arch for r in result.rows)
        assert abs(best["width"] - 272) <= 96 and abs(np.log10(best["lr"]) + 2) <= 0.5, (strategy, best)
    trial = optuna.load_study(study_name=json.loads((tmp_path / "tpe" / "run.json").read_text())["study"],
                              storage=optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(
                                  str(tmp_path / "tpe" / "store.journal")))).trials[0]
    assert isinstance(trial.distributions["width"], optuna.distributions.IntDistribution)
    assert trial.distributions["lr"].log  # optuna-dashboard shows the ranges on numeric axes


def test_long_ordered_genes_move_by_steps_proportional_to_their_length() -> None:
    from nasengine.search_spaces import Choice, IntRange, Space
    from nasengine.searching.variation import GeneLayout

    space = Space([IntRange("width", 0, 1000), Choice("k", [3, 5, 7])])
    layout = GeneLayout(space)
    X = np.full((2000, 2), [500, 1])
    moved = layout.mutate(X, np.random.default_rng(0), rate=1.0)
    jumps = np.abs(moved[:, 0] - 500)
    assert np.median(jumps) > 50 and jumps.min() >= 1  # not one step at a time across 1001 values
    assert set(np.abs(moved[:, 1] - 1)) <= {1}  # a short ordered gene still moves to a neighbour


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


def test_linas_goes_on_when_its_first_evaluations_fail() -> None:
    """Predictors need a few real rows: while failures leave too few, LINAS samples uniformly instead of crashing."""
    def error(arch: dict) -> float:
        if arch["width"] != 16:
            raise ValueError("only width 16 builds")
        return toy.error(arch)

    result = nasengine.search(toy.SPACE, {"error": error, "latency_ms": toy.latency_ms}, strategy="linas",
                              budget=30, seed=0, options=SearchOptions(max_failures=30))
    assert result.rows and all(r.arch["width"] == 16 for r in result.rows) and result.failed


def test_linas_chooses_its_predictors_among_its_kinds_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """A LINAS variant with `kinds` set (say, for a quick search) never cross-validates or fits any other kind."""
    from nasengine.searching.strategies import linas
    from nasengine.searching.strategies.base import register_strategy

    asked: list[tuple[str, ...]] = []
    real_cv = linas.cross_validate

    def spy(X, y, kinds=None, **kwargs):  # type: ignore[no-untyped-def]
        asked.append(tuple(kinds or ()))
        return real_cv(X, y, kinds=kinds, **kwargs)

    monkeypatch.setattr(linas, "cross_validate", spy)
    register_strategy("linas-ridge-only")(type("RidgeOnly", (linas.LINAS,), {"kinds": ("ridge",)}))
    try:
        result = nasengine.search(toy.SPACE, {"error": toy.error, "latency_ms": toy.latency_ms},
                                  strategy="linas-ridge-only", budget=20, seed=0)
    finally:
        from nasengine.searching.strategies.base import _STRATEGIES
        _STRATEGIES.remove("linas-ridge-only")
    assert len(result.rows) == 20 and asked and set(asked) == {("ridge",)}


def test_a_search_whose_every_evaluation_fails_says_so_and_keeps_the_reasons(tmp_path: Path) -> None:
    def broken(arch: dict) -> float:
        raise ZeroDivisionError("division by zero")

    with pytest.raises(UserError, match="every one of the 4 evaluations failed, the first with ZeroDivisionError"):
        nasengine.search(toy.SPACE, {"error": broken}, budget=4, out=tmp_path / "run")
    assert len(pd.read_csv(tmp_path / "run" / "failures.csv")) == 4
    with pytest.raises(UserError, match="the last 3 evaluations failed"):
        nasengine.search(toy.SPACE, {"error": broken}, budget=10, out=tmp_path / "stopped",
                         options=SearchOptions(max_failures=3))
    assert len(pd.read_csv(tmp_path / "stopped" / "failures.csv")) == 3  # written although the search stopped
    assert json.loads((tmp_path / "stopped" / "run.json").read_text())["status"] == "failed"


def test_range_ends_are_exact_and_every_value_lies_in_the_range() -> None:
    from nasengine.search_spaces import FloatRange

    gene = FloatRange("x", 0.0, 2 / 3, steps=7)
    assert gene.options[0] == 0.0 and gene.options[-1] == 2 / 3 and all(0 <= v <= 2 / 3 for v in gene.options)


def test_linas_uses_the_searchs_arch_features_once_per_arch_and_replays_on_resume(tmp_path: Path) -> None:
    """Cheap per-arch features (a supernet's cost descriptors) join the encoding of LINAS's predictors: computed
    once per distinct arch, recorded predictions come with every proposed arch, and a resumed run replays."""
    from nasengine.search_spaces import Choice, Space

    space = Space([Choice(f"g{i}", [1, 2, 3, 4]) for i in range(8)], name="wide")  # 65,536 archs: evolved
    calls: list[str] = []

    def capacity(arch: dict) -> list[float]:
        calls.append(space.key(arch))
        return [float(np.log(sum(v * (i + 1) for i, v in enumerate(arch.values()))))]

    objectives = {"error": lambda a: 1.0 / sum(v * (i + 1) for i, v in enumerate(a.values())),
                  "latency_ms": lambda a: sum(v * (i + 1) for i, v in enumerate(a.values())) / 10.0 + 0.01 * a["g0"]}
    options = SearchOptions(features=capacity)
    first = nasengine.search(space, objectives, strategy="linas", budget=24, seed=1, out=tmp_path / "run",
                             options=options)
    assert len(calls) == len(set(calls)) > 24  # the pool is scored too, each arch once
    predicted = [r for r in first.rows if "predicted:error" in r.details]
    assert len(predicted) >= 8  # every round after the first batch proposes by prediction
    again = nasengine.search(space, objectives, strategy="linas", budget=24, seed=1, out=tmp_path / "run",
                             options=options)
    assert [r.key for r in again.rows] == [r.key for r in first.rows]


@pytest.mark.parametrize("strategy", ["nsga2", "linas"])
def test_proposals_seed_the_first_samples_and_linas_pools_and_replay_on_resume(tmp_path: Path, strategy: str) -> None:
    """`propose(arch, rng)` (what the engine's precision priors do) turns most first samples into proposals: here a
    rule that zeroes a costly gene, which every proposal obeys and uniform samples rarely do."""
    from nasengine.search_spaces import Choice, Space

    space = Space([Choice(f"g{i}", [0, 1, 2, 3]) for i in range(6)], name="proposed")  # 4,096 archs

    def propose(arch: dict, rng: np.random.Generator) -> dict:
        return {**arch, "g5": 0}

    objectives = {"error": lambda a: 1.0 / (1 + sum(a.values())),
                  "latency_ms": lambda a: 1 + sum(a.values()) + 5 * a["g5"]}
    options = SearchOptions(propose=propose)
    first = nasengine.search(space, objectives, strategy=strategy, budget=30, seed=2, out=tmp_path / "run",
                             options=options)
    plain = nasengine.search(space, objectives, strategy=strategy, budget=30, seed=2)
    share = float(np.mean([r.arch["g5"] == 0 for r in first.rows[2:12]]))
    assert share >= 0.6 > float(np.mean([r.arch["g5"] == 0 for r in plain.rows[2:12]]))
    again = nasengine.search(space, objectives, strategy=strategy, budget=30, seed=2, out=tmp_path / "run",
                             options=options)
    assert [r.key for r in again.rows] == [r.key for r in first.rows]
