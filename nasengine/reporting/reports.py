"""Run reports that follow the search's own objectives: every evaluation (results.csv), the Pareto set per
device (pareto.csv, pareto.png) and the hypervolume over the run (hypervolume.csv, hypervolume.png).

Nothing here assumes a fixed pair such as accuracy/latency: the fronts, plots and picks are built from the
`Objective`s and `Constraint`s the search was run with. Per-device quantities are always named by their device
(`latency_ms:<device>`, `latency_iqr_ms:<device>`, ...): there is no bare `latency_ms` column, so a figure can
never be read as belonging to the wrong device. Every file is written atomically.

The tables and fronts are nasengine.reporting.fronts, the figures nasengine.reporting.plots; this module writes the
files, sums
a run up for run.json, reads a run's objectives back and marks exports. The hypervolume is over all
objectives together, under every constraint: it measures the search as it was run.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Mapping, Sequence

import pandas as pd

from nasengine.errors import UserError
from nasengine.reporting.fronts import _split_device, front_groups, latency_column, pareto_frame, results_frame
from nasengine.reporting.plots import plot_hypervolume, plot_pareto
from nasengine.searching.hypervolume import (DEFAULT_REFERENCE, check_reference, default_bounds, feasible_mask,
                                             hypervolume_by_evaluation, hypervolume_trace, reference_id,
                                             reference_point)
from nasengine.searching.objectives import (MINIMIZE, METRICS, Constraint, Objective, Row, metric_column,
                                            objective_from_callable_name)
from nasengine.search_spaces.storage import atomic_write



EXPORTED = "exported.json"


def _read_exported(run_dir: Path) -> dict[str, list[int]]:
    """RUN/exported.json's {device: [numbers]} ({} when absent or unreadable: it only decorates the plot)."""
    try:
        data = json.loads((Path(run_dir) / EXPORTED).read_text())
        exported = data.get("exported", {})
        return {str(k): [int(n) for n in v] for k, v in exported.items()}
    except (OSError, ValueError, TypeError, AttributeError):
        return {}


def read_identity(run_dir: Path) -> dict[str, Any]:
    """RUN/run.json's identity (the settings that made the run) with the hypervolume reference its last session
    reported on (`hv_reference`, which a session may change); {} when absent or unreadable."""
    try:
        run = json.loads((Path(run_dir) / "run.json").read_text())
        identity = run.get("identity")
    except (OSError, ValueError, AttributeError):
        return {}
    if not isinstance(identity, dict):
        return {}
    return {**identity, "hv_reference": run["hv_reference"]} if run.get("hv_reference") else identity


def engine_accuracy(identity: Mapping[str, Any]) -> bool:
    """Whether the run's `accuracy`/`error` are the engine's top-1 metric of a supernet (a CLI search records its
    `supernet_dir`); a Python-API run's (identity "api": "python") are whatever the user's callables return."""
    return identity.get("api") != "python" and "supernet_dir" in identity


def hypervolume_scale(identity: Mapping[str, Any], objectives: Sequence[Objective]
                      ) -> tuple[dict[str, float] | None, dict[str, float] | None, float]:
    """(ideal, nadir, reference) of the run's hypervolume: the fixed ones recorded from `--hv-reference`
    (identity `hv_reference`), else (None, None, default): the run's own best and worst values."""
    recorded = identity.get("hv_reference")
    if recorded is None:
        return None, None, DEFAULT_REFERENCE
    try:
        checked = check_reference(recorded, objectives, "run.json's hv_reference")
    except UserError:  # checked before the search; a hand-edited record falls back to the run's own scale
        return None, None, DEFAULT_REFERENCE
    return checked["ideal"], checked["nadir"], checked["reference"]


def write_reports(run_dir: Path, rows: Sequence[Row], objectives: Sequence[Objective],
                  constraints: Sequence[Constraint] = (), chosen: Any = None,
                  identity: Mapping[str, Any] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """results.csv, pareto.csv, pareto.png, hypervolume.csv and hypervolume.png in `run_dir`, each atomically.

    `chosen` (a row number, or {device: number or [numbers]}) is marked as exported on the plot; by default
    the exports recorded in RUN/exported.json are, so a resumed search keeps the marks. `identity` (default: the
    one RUN/run.json records) says what kind of run it is (`engine_accuracy`: whether an axis may be called top-1
    accuracy) and which hypervolume scale it uses (`hypervolume_scale`). Returns (results, pareto) as written."""
    run_dir = Path(run_dir)
    identity = read_identity(run_dir) if identity is None else identity
    ideal, nadir, reference = hypervolume_scale(identity, objectives)
    results = results_frame(rows, objectives, constraints)
    pareto = pareto_frame(results, objectives, constraints)
    curve = hypervolume_by_evaluation(rows, objectives, constraints, ideal, nadir, reference)
    trace = hypervolume_trace(rows, objectives, constraints, ideal, nadir, reference)
    atomic_write(run_dir / "results.csv", results.to_csv(index=False))
    atomic_write(run_dir / "pareto.csv", pareto.to_csv(index=False))
    atomic_write(run_dir / "hypervolume.csv", trace.to_csv(index=False))
    plot_pareto(results, pareto, objectives, run_dir / "pareto.png", constraints,
                chosen if chosen is not None else _read_exported(run_dir) or None, engine_accuracy(identity))
    plot_hypervolume(curve, trace, objectives, run_dir / "hypervolume.png")
    return results, pareto


def _json_number(value: float) -> float | None:
    return float(value) if value is not None and math.isfinite(float(value)) else None


def summary(rows: Sequence[Row], objectives: Sequence[Objective], constraints: Sequence[Constraint] = (),
            identity: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """What run.json records about the outcome (JSON-safe): rows evaluated, rows feasible under every
    constraint, the front size per device ("" for a device-independent front) and the final hypervolume with
    the scale it was computed on (`normalisation` "run" or "fixed" by the `identity`'s `hv_reference`, the bounds,
    reference and `reference_id`)."""
    results = results_frame(rows, objectives, constraints)
    pareto = pareto_frame(results, objectives, constraints)
    devices = pareto["device"].astype(str) if len(pareto) else pd.Series(dtype=str)
    fixed_ideal, fixed_nadir, reference = hypervolume_scale(identity or {}, objectives)
    fixed = fixed_ideal is not None and fixed_nadir is not None
    ideal, nadir = (fixed_ideal, fixed_nadir) if fixed else default_bounds(rows, objectives, constraints)
    curve = hypervolume_by_evaluation(rows, objectives, constraints, ideal, nadir, reference)
    return {
        "evaluated": len(rows),
        "feasible": int(feasible_mask(rows, constraints).sum()),
        "objectives": [o.column for o in objectives],
        "constraints": [str(c) for c in constraints],
        "pareto_sizes": {d: int((devices == d).sum()) for d, _ in front_groups(objectives)},
        "hypervolume": {
            "value": float(curve[-1]) if len(curve) else 0.0,
            "ideal": {c: _json_number(v) for c, v in ideal.items()},
            "nadir": {c: _json_number(v) for c, v in nadir.items()},
            "reference": reference,
            "reference_point": {c: _json_number(v)
                                for c, v in reference_point(ideal, nadir, objectives, reference).items()},
            "normalisation": "fixed" if fixed else "run",
            "reference_id": reference_id(ideal, nadir, reference) if fixed else "",
        },
    }


# ---------------------------------------------------------------------------------------------- after export

def objectives_from_identity(identity: Mapping[str, Any]) -> tuple[list[Objective], list[Constraint]]:
    """The objectives and constraints a run recorded in run.json's identity: `objectives` as a list of
    `Objective.to_dict()` (older runs: metric names, bound per `devices`; none: error,latency) and
    `constraints` as a list of `Constraint.to_dict()` (older runs: `latency_budget_ms` on every device)."""
    devices = [str(d) for d in identity.get("devices") or []]
    raw = identity.get("objectives")
    try:
        if isinstance(raw, list) and raw and all(isinstance(o, Mapping) for o in raw):
            objectives = [Objective(str(o["column"]), str(o.get("direction") or MINIMIZE), str(o.get("label") or ""),
                                    None if o.get("device") in (None, "") else str(o["device"])) for o in raw]
        else:
            names = [str(n) for n in raw] if isinstance(raw, list) and raw else ["error", "latency"]
            objectives = [o for name in names for o in _objectives_named(name, devices)]
        raw_constraints = identity.get("constraints")
        if isinstance(raw_constraints, list):
            constraints = [Constraint(str(c["column"]), str(c["op"]), float(c["bound"]),
                                      None if c.get("device") in (None, "") else str(c["device"]))
                           for c in raw_constraints]
        elif identity.get("latency_budget_ms") is not None:
            budget = float(identity["latency_budget_ms"])
            constraints = [Constraint(latency_column(d), "<=", budget, d) for d in devices]
        else:
            constraints = []
    except (KeyError, TypeError, ValueError) as exc:
        raise UserError(f"the run records unreadable objectives or constraints ({exc}); search again") from None
    return objectives, constraints


def _objectives_named(name: str, devices: Sequence[str]) -> list[Objective]:
    """Objectives recorded by name only: a registered metric (a per-device one once per device), a per-device
    column (`latency_ms:<device>`), or a user metric (minimised, as the Python API does by default)."""
    metric_name, device = _split_device(name)
    if device is not None and metric_name in METRICS:
        metric = METRICS.get(metric_name)
        return [Objective(name, metric.direction, metric.label, device)]
    if name in METRICS:
        metric = METRICS.get(name)
        if metric.per_device:
            if not devices:
                raise ValueError(f"objective {name!r} is per device but the run records no devices")
            return [Objective(metric_column(metric.name, d), metric.direction, metric.label, d) for d in devices]
        return [Objective(metric.name, metric.direction, metric.label)]
    return [objective_from_callable_name(name, None)]


def mark_exported(run_dir: Path, device: str, number: int) -> Path:
    """Record that row `number` was exported for `device` in RUN/exported.json and redraw RUN/pareto.png from
    results.csv and pareto.csv with every recorded export starred. Returns the plot's path. Raises OSError
    when the run directory cannot be written (callers exporting from a read-only run may ignore that)."""
    run_dir = Path(run_dir)
    run = json.loads((run_dir / "run.json").read_text())
    objectives, constraints = objectives_from_identity(run.get("identity") or {})
    results = pd.read_csv(run_dir / "results.csv")
    pareto = pd.read_csv(run_dir / "pareto.csv", dtype={"device": str})
    pareto["device"] = pareto["device"].fillna("").astype(str)
    exported = _read_exported(run_dir)
    numbers = exported.setdefault(str(device or ""), [])
    if int(number) not in numbers:
        numbers.append(int(number))
    atomic_write(run_dir / EXPORTED, json.dumps({"exported": exported}, indent=2))
    plot_pareto(results, pareto, objectives, run_dir / "pareto.png", constraints, exported,
                engine_accuracy(run.get("identity") or {}))
    return run_dir / "pareto.png"
