"""`nasengine search`: one resumable multi-objective search of a trained supernet for one or more devices."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

import supernets
from nasengine.devices import get_device
from nasengine.errors import UserError, one_line
from nasengine.evaluation import Evaluator
from nasengine.progress import Progress
from nasengine.reports import write_reports
from nasengine.rundir import prepare_output, update_marker
from nasengine.search.candidates import CandidateEvaluator
from nasengine.search.objectives import bind_objectives
from nasengine.search.problem import SearchProblem
from nasengine.search.strategies import get_strategy
from nasengine.store import RunStore
from nasengine.plugins import reload_recorded
from nasengine.tasks import task_from_spec

MARKER = "run.json"


@dataclass(frozen=True)
class SearchRequest:
    supernet_dir: Path
    out: Path
    devices: tuple[str, ...] = ("ort-cpu-1t",)
    evals: int = 200
    latency_budget_ms: float | None = None
    objectives: tuple[str, ...] = ("error", "latency")
    strategy: str = "nsga2"
    seed: int = 0
    overwrite: bool = False
    progress: bool = True
    extra_identity: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        if self.evals < 2:
            raise UserError(f"--evals must be at least 2, got {self.evals}")
        if self.latency_budget_ms is not None and not self.latency_budget_ms > 0:
            raise UserError(f"--latency-budget must be a positive number of ms, got {self.latency_budget_ms}")
        if len(set(self.devices)) != len(self.devices) or not self.devices:
            raise UserError("give each --device once, and at least one")
        if Path(self.out).resolve() == Path(self.supernet_dir).resolve():
            raise UserError("--out must differ from the supernet directory")


def load_trained(supernet_dir: Path) -> tuple[supernets.Supernet, dict[str, Any]]:
    """The trained supernet of a `nasengine train` directory (re-importing the plugins it was built with),
    or a one-line UserError."""
    try:
        config = supernets.io.read_config(Path(supernet_dir))
        if not isinstance(config.get("task"), dict):
            raise ValueError(f"{Path(supernet_dir) / supernets.io.CONFIG} records no task (its 'task' entry is "
                             f"missing or not an object); train the supernet again")
        reload_recorded(config.get("plugins", []))
        return supernets.load_supernet(Path(supernet_dir))
    except (FileNotFoundError, ValueError) as exc:
        raise UserError(str(exc)) from None


def search(request: SearchRequest) -> dict[str, Any]:
    """Run (or resume) a search; writes RUN/results.csv, RUN/pareto.csv, RUN/pareto.png and RUN/run.json."""
    request.validate()
    net, config = load_trained(request.supernet_dir)
    task = task_from_spec(config["task"])  # refuses changed data before anything is written
    devices = [get_device(name, supernet_dir=request.supernet_dir) for name in request.devices]
    for device in devices:
        reason = device.availability()
        if reason is not None:
            raise UserError(f"device {device.name!r} is not usable here: {reason}")
    objectives = bind_objectives(list(request.objectives), list(request.devices))
    strategy = get_strategy(request.strategy)
    identity = {"supernet_dir": str(Path(request.supernet_dir).resolve()),
                "supernet_weights_sha1": supernets.weights_digest(Path(request.supernet_dir)),
                "devices": list(request.devices), "objectives": list(request.objectives),
                "strategy": request.strategy, "seed": request.seed, "latency_budget_ms": request.latency_budget_ms,
                **request.extra_identity}
    out = Path(request.out)
    resumed = prepare_output(out, MARKER, identity, request.overwrite, "search run") is not None
    update_marker(out / MARKER, status="running", evals=request.evals, error=None)
    try:
        return _search(request, net, task, devices, objectives, strategy, out, resumed)
    except KeyboardInterrupt:
        update_marker(out / MARKER, status="interrupted")
        raise
    except UserError as exc:
        update_marker(out / MARKER, status="failed", error=one_line(str(exc)))
        raise
    except Exception as exc:
        update_marker(out / MARKER, status="failed", error=one_line(f"{type(exc).__name__}: {exc}"))
        raise


def _search(request: SearchRequest, net: supernets.Supernet, task: Any, devices: list, objectives: Any,
            strategy: Any, out: Path, resumed: bool) -> dict[str, Any]:
    """The search proper, once the run directory is prepared (its status is kept by `search`)."""
    store = RunStore(out, net.space)
    candidates = CandidateEvaluator(Evaluator(net, task, "val"), devices, store)
    started = time.perf_counter()
    with Progress(request.evals, f"search {','.join(request.devices)}", "subnet", request.progress) as bar:
        if resumed:
            bar.write(f"resuming search in {out}: {len(store.records('accuracy'))} subnets already evaluated")
        best = {"acc": 0.0}

        def on_new(evaluation: Any) -> None:
            best["acc"] = max(best["acc"], evaluation.accuracy)
            first = evaluation.latency[request.devices[0]].median_ms
            bar.update(1, acc=f"{evaluation.accuracy:.3f}", ms=f"{first:.3f}", best=f"{best['acc']:.3f}")

        problem = SearchProblem(net.space, candidates, objectives, request.evals, request.latency_budget_ms,
                                request.devices, on_new)
        with torch.no_grad():
            strategy.run(problem, request.seed)
    evaluations = candidates.all_evaluations()
    results, pareto = write_reports(out, evaluations, list(request.devices), request.latency_budget_ms)
    summary = {"evaluated": len(results), "new_this_session": problem.new_evaluations,
               "pareto_sizes": {d: int((pareto["device"] == d).sum()) for d in request.devices},
               "seconds": round(time.perf_counter() - started, 1)}
    update_marker(out / MARKER, status="complete", summary=summary, error=None)
    return {"out": str(out), "results": results, "pareto": pareto, "resumed": resumed, **summary}
