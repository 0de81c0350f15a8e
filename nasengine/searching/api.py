"""`nasengine.search(space, objectives=..., ...)`: multi-objective search of any space with any objectives.

The CLI's `nasengine search` is this function with objectives computed from a trained supernet; a user can
call it with plain callables (arch -> float) and no supernet at all. Both get the same strategies, trial
store (resumable, shareable by several workers), reports and Pareto sets.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import optuna
import pandas as pd

from nasengine.errors import UserError
from nasengine.progress import Progress
from nasengine.rundir import prepare_output, recorded_status, update_marker
from nasengine.searching.objectives import MAXIMIZE, MINIMIZE, Constraint, Objective, Row, \
    objective_from_callable_name, parse_bound
from nasengine.searching.problem import ArchFeatures, ArchPriors, ArchProposal, Pending, SearchProblem
from nasengine.searching.store import Evaluate, StoreSettings, TrialStore, open_storage, redact, row_from_trial
from nasengine.searching.strategies import get_strategy
from nasengine.search_spaces.space import Arch, Space
from nasengine.search_spaces.storage import atomic_file

MARKER = "run.json"
FAILURES = "failures.csv"
ObjectiveSpec = Callable[[Arch], float] | tuple[Callable[[Arch], float], str]


@dataclass
class SearchResult:
    """Every evaluated row in trajectory order, the Pareto set for the objectives, the evaluations that failed,
    and where it was written."""

    rows: list[Row]
    pareto: list[Row]
    objectives: list[Objective]
    constraints: list[Constraint] = field(default_factory=list)
    out: Path | None = None
    summary: dict[str, Any] = field(default_factory=dict)
    results_frame: pd.DataFrame | None = None
    pareto_frame: pd.DataFrame | None = None
    failed: list[Row] = field(default_factory=list)  # evaluations that raised (arch, number, error)


@dataclass(frozen=True)
class SearchOptions:
    """How a Python-API search runs beyond its plan: extra `metrics` recorded in every row (name -> callable),
    `storage` (an optuna RDB URL shared by workers, with `study_name`), `overwrite` an existing `out`, a
    `progress` bar, how long a silent worker's claim stands (`claim_timeout_s`), and after how many failed
    evaluations in a row the search stops (`max_failures`; a failed one is recorded and the search goes on).
    `features(arch) -> numbers`: cheap per-arch quantities (MACs, params) that predictor-guided strategies such as
    LINAS add to the architecture encoding; computed without evaluating the arch. `propose(arch, rng) -> arch`: a
    variant of an arch that cheap priors say is likely better (e.g. its precision genes set where INT8 pays), used
    for most of the first samples and beside the pool of predictor-guided strategies."""

    metrics: Mapping[str, Callable[[Arch], float]] = field(default_factory=dict)
    storage: str | None = None
    study_name: str | None = None
    overwrite: bool = False
    progress: bool = False
    claim_timeout_s: float = 600.0
    max_failures: int = 10
    features: ArchFeatures | None = None
    propose: ArchProposal | None = None


@dataclass(frozen=True)
class SearchPlan:
    """What a search does: the strategy, the number of real evaluations, the seed."""

    strategy: str
    budget: int
    seed: int = 0


@dataclass(frozen=True)
class RunSettings:
    """Where and how a search runs. `out`: the run directory (None: in memory); `storage`/`study_name`: the trial
    store shared by workers; `identity`: settings a resumed run must repeat; `role` "main" prepares `out` and writes
    the reports, "worker" only shares the store of a run a main process prepared; `start_workers(study)` starts
    extra worker processes once the store exists; `on_row(row, bar)` reports each new row."""

    out: Path | None = None
    storage: str | None = None
    study_name: str | None = None
    identity: Mapping[str, Any] = field(default_factory=dict)
    overwrite: bool = False
    progress: bool = False
    label: str = "search"
    role: str = "main"
    worker: str | None = None
    on_row: Callable[[Row, Progress], None] | None = None
    start_workers: Callable[[str], list[Any]] | None = None
    claim_timeout_s: float = 600.0
    max_failures: int = 10


def load_rows(run_dir: str | Path) -> list[Row]:
    """The completed evaluations of a run directory, in trajectory order (read-only; for reports and tools)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"{run_dir}: no such directory")
    try:
        run = json.loads((run_dir / MARKER).read_text())
        study = run["study"]
    except (OSError, ValueError, KeyError, TypeError):
        raise UserError(f"{run_dir} is not a search run directory (no readable {MARKER} naming its study)") from None
    storage = open_storage(run_dir, run.get("storage"))
    try:
        study_id = storage.get_study_id_from_name(study)
    except KeyError:
        return []
    trials = storage.get_all_trials(study_id, deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    rows = {}
    for trial in trials:
        row = row_from_trial(trial)
        rows.setdefault(row.key, row)
    return sorted(rows.values(), key=lambda r: (r.number, r.key))


def pareto_rows(rows: Sequence[Row], objectives: Sequence[Objective], constraints: Sequence[Constraint]) -> list[Row]:
    """Feasible rows not dominated on the objectives, sorted by the first objective."""
    pool = [r for r in rows if all(c.holds(r.metrics[c.column]) for c in constraints)]
    if not pool:
        return []
    from nasengine.reporting.fronts import pareto_mask  # fronts and reports build on this package: imported when used

    mask = pareto_mask([[o.cost(r.metrics[o.column]) for o in objectives] for r in pool])
    front = [r for r, keep in zip(pool, mask) if keep]
    return sorted(front, key=lambda r: (objectives[0].cost(r.metrics[objectives[0].column]), r.number))


def _callables(objectives: Mapping[str, ObjectiveSpec],
               metrics: Mapping[str, Callable[[Arch], float]]) -> tuple[list[Objective], Evaluate]:
    """Objectives and one evaluate function from user callables (a name may carry its direction)."""
    if not isinstance(objectives, Mapping) or not objectives:
        raise UserError("objectives must map one or more names to callables (arch -> float)")
    bound: list[Objective] = []
    functions: dict[str, Callable[[Arch], float]] = {}
    for name, spec in objectives.items():
        fn, direction = (spec if isinstance(spec, tuple) else (spec, None))
        if not callable(fn) or direction not in (None, MINIMIZE, MAXIMIZE):
            raise UserError(f"objective {name!r} must be a callable or (callable, 'minimize'|'maximize')")
        bound.append(objective_from_callable_name(name, direction))
        functions[name] = fn
    for name, fn in metrics.items():
        if not callable(fn):
            raise UserError(f"metric {name!r} must be a callable (arch -> float)")
        functions.setdefault(name, fn)

    def evaluate(arch: Arch) -> tuple[dict[str, float], dict[str, Any]]:
        return {name: float(fn(dict(arch))) for name, fn in functions.items()}, {}

    return bound, evaluate


def search(space: Space, objectives: Mapping[str, ObjectiveSpec], *, strategy: str = "nsga2", budget: int = 100,
           seed: int = 0, constraints: Sequence[Constraint | str] = (), out: str | Path | None = None,
           options: SearchOptions | None = None) -> SearchResult:
    """Search `space` for the archs that trade off `objectives` best; no supernet involved.

    objectives: name -> callable(arch) -> float, minimised unless the name is a registered metric that is
    maximised (e.g. "accuracy") or the value is `(callable, "maximize")`. constraints: `Constraint`s or text
    like "latency_ms<=2" on any objective or metric. out: a run directory (results.csv, pareto.csv/.png,
    hypervolume.csv/.png, the trial store); the same call again resumes it (a larger budget continues the same
    trajectory). `options` (SearchOptions): extra metrics to record, a storage URL and study name shared by
    workers in several processes or on several machines, overwrite, progress. Returns the evaluated rows in
    order and the Pareto set.
    """
    options = options or SearchOptions()
    bound, evaluate = _callables(objectives, dict(options.metrics))
    if options.storage is not None and options.study_name is None:
        raise UserError("with storage=URL give study_name= as well: it is what several workers share, and "
                        "the callables themselves cannot tell one problem from another")
    if options.max_failures < 1:
        raise UserError(f"max_failures must be at least 1, got {options.max_failures}")
    parsed = [c if isinstance(c, Constraint) else Constraint(*parse_bound(c)) for c in constraints]
    names = [*objectives, *options.metrics]
    unknown = [c.column for c in parsed if c.column not in names]
    if unknown:  # refused before anything is evaluated
        raise UserError(f"constraint on {unknown[0]!r}, which is neither an objective nor a metric of this search "
                        f"({', '.join(names)})")
    run = RunSettings(out=None if out is None else Path(out), storage=options.storage, study_name=options.study_name,
                      identity={"api": "python"}, overwrite=options.overwrite, progress=options.progress,
                      claim_timeout_s=options.claim_timeout_s, max_failures=options.max_failures)
    return run_search(space, bound, parsed, evaluate, SearchPlan(strategy, budget, seed), run,
                      arch_features=options.features, propose=options.propose)


def _checked(evaluate: Evaluate, needed: Sequence[str]) -> Evaluate:
    """`evaluate`, refusing (one line) a result that lacks a metric a constraint bounds."""
    def wrapped(arch: Arch) -> tuple[dict[str, float], dict[str, Any]]:
        metrics, details = evaluate(arch)
        missing = [c for c in needed if c not in metrics]
        if missing:
            raise UserError(f"a constraint bounds {missing[0]!r}, which the evaluation does not report "
                            f"(it reports {', '.join(sorted(metrics))})")
        return metrics, details

    return wrapped


def default_study_name(identity: Mapping[str, Any]) -> str:
    """The same search settings give the same study name, so workers on several machines meet in one study."""
    text = json.dumps(dict(identity), sort_keys=True, default=str)
    return "nasengine-" + hashlib.sha1(text.encode()).hexdigest()[:12]


def run_search(space: Space, objectives: Sequence[Objective], constraints: Sequence[Constraint],
               evaluate: Evaluate, plan: SearchPlan, run: RunSettings,
               arch_features: ArchFeatures | None = None, propose: ArchProposal | None = None) -> SearchResult:
    """The search behind the API and the CLI: run directory, trial store, strategy, reports (see RunSettings);
    `arch_features` gives predictor-guided strategies cheap per-arch numbers and `propose` likely-better variants
    of archs (see SearchProblem).

    Strategies size themselves (population, rounds) from the budget of the run's first session, recorded in
    run.json, so a later session with a larger budget continues the same trajectory."""
    if plan.budget < 2:
        raise UserError(f"the budget must be at least 2 evaluations, got {plan.budget}")
    evaluate = _checked(evaluate, [c.column for c in constraints])
    strategy = get_strategy(plan.strategy)
    identity = dict(run.identity)
    hv_reference = identity.pop("hv_reference", None)  # how reports scale the hypervolume: no part of the search
    full_identity = {"space": space.to_dict(), "objectives": [o.to_dict() for o in objectives],
                     "constraints": [c.to_dict() for c in constraints], "strategy": plan.strategy, "seed": plan.seed,
                     "storage": redact(run.storage), **identity}
    # paths and storage URLs differ between machines; the weights' digest, the space and the options do not
    name = run.study_name or default_study_name({k: v for k, v in full_identity.items()
                                                 if k not in ("out", "supernet_dir", "storage")})
    problem = _Problem(space, list(objectives), list(constraints), evaluate, strategy, arch_features, propose)
    if run.out is None or run.role != "main":
        backend = _open(run.out, run.storage, repair=False)
        planned, session = _recorded_session(run.out) if run.out is not None else (plan.budget, uuid.uuid4().hex)
        return _run(problem, plan, planned, replace(run, out=None, start_workers=None),
                    backend, name, resumed=False, session=session)
    if run.overwrite and run.storage is not None:
        _delete_study(run.storage, name)
    existing = prepare_output(run.out, MARKER, full_identity, run.overwrite, "search run")
    with recorded_status(run.out / MARKER):
        backend = _open(run.out, run.storage, repair=True)
        planned = int(existing.get("plan_budget", plan.budget)) if existing else plan.budget
        session = uuid.uuid4().hex  # the workers of this session share its failures; a later one retries them
        update_marker(run.out / MARKER, status="running", evals=plan.budget, plan_budget=planned, error=None,
                      study=name, storage=redact(run.storage), hv_reference=hv_reference, session=session)
        return _run(problem, plan, planned, run, backend, name, resumed=existing is not None, session=session)


@dataclass(frozen=True)
class _Problem:
    """What is searched: the space, objectives, constraints, the evaluation and the strategy object."""

    space: Space
    objectives: list[Objective]
    constraints: list[Constraint]
    evaluate: Evaluate
    strategy: Any
    arch_features: ArchFeatures | None = None
    propose: ArchProposal | None = None


def _open(out: Path | None, storage: str | None, repair: bool) -> Any:
    if out is None and storage is None:
        return optuna.storages.InMemoryStorage()
    return open_storage(out if out is not None else Path("."), storage, repair=repair)


def _recorded_session(out: Path) -> tuple[int, str]:
    """The budget the run's strategies were sized with and the session (a worker reads what the main process
    recorded)."""
    try:
        run = json.loads((out / MARKER).read_text())
        return int(run["plan_budget"]), str(run["session"])
    except (OSError, ValueError, KeyError, TypeError):
        raise UserError(f"{out} has no search prepared by a main process (no plan_budget in {MARKER})") from None


def _delete_study(storage: str, name: str) -> None:
    """--overwrite with a database store: the run's study goes too, or its old trials would come back."""
    backend = open_storage(Path("."), storage)
    try:
        backend.delete_study(backend.get_study_id_from_name(name))
    except KeyError:
        pass


def _run(problem: _Problem, plan: SearchPlan, planned: int, run: RunSettings, backend: Any, study_name: str,
         resumed: bool, session: str) -> SearchResult:
    """Evaluate `plan.budget` subnets in the store's study (strategies sized by the `planned` budget), then write the
    reports when the run has a directory."""
    objectives, constraints = problem.objectives, problem.constraints
    store = TrialStore(backend, study_name, problem.space, objectives,
                       StoreSettings(run.worker, run.claim_timeout_s, session=session))
    started = time.perf_counter()
    stored_before = set(store.completed)  # what this session found: the rest is new, whichever worker did it
    helpers = run.start_workers(study_name) if run.start_workers is not None else []
    failed = True
    with Progress(plan.budget, run.label, "subnet", run.progress) as bar:
        if resumed or store.completed:
            bar.write(f"{run.label}: {len(store.completed)} evaluations already in the store")

        def evaluate_round(items: Sequence[Pending]) -> list[Row]:
            rows = store.evaluate(items, problem.evaluate)
            for row in rows:  # every row joins the trajectory once: the bar reaches the budget
                if row.failed:
                    bar.update(1, failed=row.error[:60] if row.error else "")
                elif run.on_row is not None:
                    run.on_row(row, bar)
                else:
                    bar.update(1, **{o.column: f"{row.metrics[o.column]:.4g}" for o in objectives[:3]})
            return rows

        search_problem = SearchProblem(problem.space, objectives, constraints, plan.budget, evaluate_round,
                                       plan=planned, max_failures=run.max_failures,
                                       priors=ArchPriors(problem.arch_features, problem.propose))
        try:
            problem.strategy.run(search_problem, plan.seed)
            failed = False
        finally:
            _finish_workers(helpers, terminate=failed, write=bar.write)
            if run.out is not None:  # also when failures stopped the search: the file says why
                _write_failures(run.out, [replace(r, number=i) for i, r in enumerate(search_problem.history)
                                          if r.failed])
    numbered = [replace(row, number=i) for i, row in enumerate(search_problem.history)]  # by trajectory position
    rows, failed = [r for r in numbered if not r.failed], [r for r in numbered if r.failed]
    if failed and not rows:
        raise UserError(f"every one of the {len(failed)} evaluations failed, the first with {failed[0].error}")
    front = pareto_rows(rows, objectives, constraints)
    new = sum(1 for r in numbered if r.key not in stored_before)
    summary = {"evaluated": len(rows), "failed": len(failed), "new_this_session": new,
               "rounds": search_problem.round, "resumed": resumed, "seconds": round(time.perf_counter() - started, 1)}
    result = SearchResult(rows, front, objectives, constraints, run.out, summary, failed=failed)
    if run.out is not None:
        from nasengine.reporting import reports  # reports build on this package: imported when used

        identity = reports.read_identity(run.out)  # with the hypervolume reference of this session
        result.results_frame, result.pareto_frame = reports.write_reports(run.out, rows, objectives, constraints,
                                                                          identity=identity)
        result.summary.update(reports.summary(rows, objectives, constraints, identity))
        update_marker(run.out / MARKER, status="complete", summary=result.summary, error=None)
    return result


def _write_failures(out: Path, failed: Sequence[Row]) -> None:
    """RUN/failures.csv: the evaluations that raised (number, arch, error); removed when a session has none."""
    path = out / FAILURES
    if not failed:
        path.unlink(missing_ok=True)
        return
    frame = pd.DataFrame([{"number": r.number, "arch": r.key, "error": r.error} for r in failed])
    with atomic_file(path) as tmp:
        frame.to_csv(tmp, index=False)


def _finish_workers(helpers: list[Any], terminate: bool, write: Callable[[str], None]) -> None:
    """Join the extra worker processes (terminate them first when this process failed); say which ones
    failed: their claims were taken over, so the run itself is complete."""
    for process in helpers:
        if terminate:
            process.terminate()
        process.join()
        if process.exitcode not in (0, None) and not terminate:
            write(f"worker process {process.pid} exited with code {process.exitcode}; the others took its work over")
