"""Hypervolume of a search's feasible evaluations, as one comparable number per round or per evaluation.

The hypervolume (HV) is the volume of objective space dominated by a set of points and bounded by a reference
point: it grows whenever a search finds a better trade-off on any objective, which makes it the usual single
figure for comparing multi-objective searches. Raw metrics have unrelated scales (error in [0, 1], params in
millions), so every objective is first normalised to [0, 1] between an *ideal* (best) and a *nadir* (worst)
value, and the reference point sits at `reference` (1.1 by default) in every normalised coordinate, so points
at the nadir still contribute. The result is a volume in that normalised space: at most `reference ** m` with
the run's own bounds.

Bounds are given as raw metric values (accuracy as accuracy, whatever the direction), either as a mapping
column -> value or as a sequence in objective order. By default they are the best and worst value of each
objective over the feasible rows of the whole run, so every round of the run's trace uses the same scale.
Benchmarks comparing runs must pass the same bounds to every run (e.g. `default_bounds` of all runs' rows).

A fixed scale (`nasengine search --hv-reference FILE`) is a JSON object {"ideal": {column: value},
"nadir": {column: value}, "reference": 1.1 (optional)}: raw values per objective column, the ideal better than the
nadir in the objective's direction (`read_reference`, `check_reference`). Runs searched with the same file have
hypervolumes on one scale; the trace records which scale it used (`normalisation` "run" or "fixed", and
`reference_id`, a digest of the fixed bounds, equal for equal bounds). Points better than a fixed ideal fall
below 0 when normalised, so a fixed-scale hypervolume may exceed `reference ** m`.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import math
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from nasengine.errors import UserError
from nasengine.searching.objectives import MINIMIZE, Constraint, Objective, Row

DEFAULT_REFERENCE = 1.1

Bounds = Mapping[str, float] | Sequence[float]


# ----------------------------------------------------------------------------------------------- core indicator

def _normalise(costs: np.ndarray, ideal: np.ndarray, nadir: np.ndarray) -> np.ndarray:
    """Costs scaled so that `ideal` -> 0 and `nadir` -> 1 per objective (an objective with no spread keeps its
    unit scale, so it neither divides by zero nor distorts the others)."""
    span = nadir - ideal
    span = np.where(np.isfinite(span) & (span > 0), span, 1.0)
    return (costs - ideal) / span


def _hv2d(points: np.ndarray, reference: float) -> float:
    """Exact 2-D hypervolume by a sweep over x: each point, in x order, adds the rectangle between its y and
    the best y seen before it, out to the reference."""
    points = points[np.all(points < reference, axis=1)]
    if len(points) == 0:
        return 0.0
    points = points[np.lexsort((points[:, 1], points[:, 0]))]
    x, y = points[:, 0], points[:, 1]
    best_before = np.concatenate([[reference], np.minimum.accumulate(y)[:-1]])
    return float(np.sum((reference - x) * np.clip(best_before - y, 0.0, None)))


def normalised_hypervolume(costs: Any, ideal: Any, nadir: Any, reference: float = DEFAULT_REFERENCE) -> float:
    """HV of `costs` (n x m, every objective minimised: maximised ones already negated) after normalising each
    objective by `ideal`/`nadir` (cost space, length m), with the reference point at `reference` in every
    normalised coordinate. Rows with NaN and points not strictly better than the reference add nothing.

    Exact sweep for 2 objectives, pymoo's `HV` for 3 or more, the covered length for 1."""
    costs = np.asarray(costs, dtype=float)
    if costs.ndim != 2:
        raise ValueError(f"costs must be an n x m array, got shape {costs.shape}")
    m = costs.shape[1]
    ideal = np.asarray(ideal, dtype=float).reshape(-1)
    nadir = np.asarray(nadir, dtype=float).reshape(-1)
    if len(ideal) != m or len(nadir) != m:
        raise ValueError(f"ideal and nadir need {m} values (one per objective), got {len(ideal)} and {len(nadir)}")
    costs = costs[~np.isnan(costs).any(axis=1)]
    if len(costs) == 0 or m == 0:
        return 0.0
    points = _normalise(costs, ideal, nadir)
    points = points[np.all(points < reference, axis=1)]
    if len(points) == 0:
        return 0.0
    if m == 1:
        return float(reference - points[:, 0].min())
    if m == 2:
        return _hv2d(points, reference)
    from pymoo.indicators.hv import HV  # imported on use: pymoo is slow to import and only needed for 3+ objectives

    return float(HV(ref_point=np.full(m, float(reference)))(points))


# ------------------------------------------------------------------------------------------ rows -> cost arrays

def _sorted_rows(rows: Sequence[Row]) -> list[Row]:
    return sorted(rows, key=lambda r: r.number)


def _value(row: Row, column: str) -> float:
    value = row.metrics.get(column)
    try:
        return float(value) if value is not None else float("nan")
    except (TypeError, ValueError):
        return float("nan")


def row_costs(rows: Sequence[Row], objectives: Sequence[Objective]) -> np.ndarray:
    """n x m costs (maximised objectives negated) of `rows` in the given order; NaN where a metric is missing."""
    return np.array([[o.sign * _value(r, o.column) for o in objectives] for r in rows], dtype=float
                    ).reshape(len(rows), len(objectives))


def feasible_mask(rows: Sequence[Row], constraints: Sequence[Constraint]) -> np.ndarray:
    """True for rows whose every constraint holds; a missing or NaN constrained metric makes a row infeasible."""
    mask = np.ones(len(rows), dtype=bool)
    for c in constraints:
        mask &= c.holds_for(np.array([_value(r, c.column) for r in rows], dtype=float))
    return mask


def _bounds_vector(bounds: Bounds, objectives: Sequence[Objective], what: str) -> np.ndarray:
    """Raw bounds (mapping by column, or sequence in objective order) as a cost-space vector."""
    if isinstance(bounds, Mapping):
        missing = [o.column for o in objectives if o.column not in bounds]
        if missing:
            raise ValueError(f"{what} has no value for {', '.join(missing)}")
        raw = [float(bounds[o.column]) for o in objectives]
    else:
        raw = [float(v) for v in bounds]
        if len(raw) != len(objectives):
            raise ValueError(f"{what} needs {len(objectives)} values (one per objective), got {len(raw)}")
    return np.array([o.sign * v for o, v in zip(objectives, raw)], dtype=float)


def _bounds_dict(vector: np.ndarray, objectives: Sequence[Objective]) -> dict[str, float]:
    return {o.column: float(o.sign * v) for o, v in zip(objectives, vector)}


def _json(bounds: Mapping[str, float]) -> str:
    """Bounds as JSON text, with null for an unknown (NaN) value so that any JSON reader accepts it."""
    return json.dumps({k: (v if np.isfinite(v) else None) for k, v in bounds.items()})


def default_bounds(rows: Sequence[Row], objectives: Sequence[Objective], constraints: Sequence[Constraint] = ()
                   ) -> tuple[dict[str, float], dict[str, float]]:
    """(ideal, nadir) as raw values by column: the best and the worst value of each objective over the feasible
    rows (with every objective known). NaN when there is no such row."""
    costs = row_costs(rows, objectives)[feasible_mask(rows, constraints)]
    costs = costs[~np.isnan(costs).any(axis=1)]
    if len(costs) == 0:
        nan = np.full(len(objectives), np.nan)
        return _bounds_dict(nan, objectives), _bounds_dict(nan, objectives)
    return _bounds_dict(costs.min(axis=0), objectives), _bounds_dict(costs.max(axis=0), objectives)


def reference_point(ideal: Bounds, nadir: Bounds, objectives: Sequence[Objective],
                    reference: float = DEFAULT_REFERENCE) -> dict[str, float]:
    """The reference point in metric units (by column): `reference` of the way from ideal to nadir, past the
    nadir (an objective with no spread is scaled by 1 unit, as in the HV itself)."""
    lo, hi = _bounds_vector(ideal, objectives, "ideal"), _bounds_vector(nadir, objectives, "nadir")
    span = np.where(np.isfinite(hi - lo) & (hi - lo > 0), hi - lo, 1.0)
    return _bounds_dict(lo + reference * span, objectives)


def _resolve_bounds(rows: Sequence[Row], objectives: Sequence[Objective], constraints: Sequence[Constraint],
                    ideal: Bounds | None, nadir: Bounds | None) -> tuple[np.ndarray, np.ndarray]:
    """Cost-space ideal and nadir: the given ones, else the run's own (`default_bounds`)."""
    if ideal is None or nadir is None:
        run_ideal, run_nadir = default_bounds(rows, objectives, constraints)
        ideal = run_ideal if ideal is None else ideal
        nadir = run_nadir if nadir is None else nadir
    return _bounds_vector(ideal, objectives, "ideal"), _bounds_vector(nadir, objectives, "nadir")


# ------------------------------------------------------------------------------------------- fixed reference file

REFERENCE_KEYS = ("ideal", "nadir", "reference")


def read_reference(path: str | Path, source: str | None = None) -> dict[str, Any]:
    """The fixed hypervolume scale in the JSON file `path` (see the module docstring), checked for shape: a
    one-line UserError starting with `source` (default: the path) when it is unreadable or malformed, so runs
    never start on a bad scale."""
    path = Path(path)
    source = source or str(path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{source}: cannot read it ({getattr(exc, 'strerror', None) or exc})") from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise UserError(f"{source}: not valid JSON ({_json_error(exc)})") from None
    return parse_reference(data, source)


def _json_error(exc: ValueError) -> str:
    """A JSON decoding error as `message at line L column C` (one line)."""
    if isinstance(exc, json.JSONDecodeError):
        return f"{exc.msg} at line {exc.lineno} column {exc.colno}"
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _number(value: Any) -> float | None:
    """`value` as a finite float, or None when it is not a finite JSON number (booleans are not numbers)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(float(value)):
        return None
    return float(value)


def _bounds_of(data: Mapping[str, Any], key: str, source: str) -> dict[str, float]:
    """`data[key]` as {column: finite number}; a one-line UserError otherwise."""
    raw = data.get(key)
    if not isinstance(raw, Mapping) or not raw:
        raise UserError(f"{source}: {key!r} must be an object mapping each objective column to a number "
                        f'(e.g. {{"error": 0.0, "latency_ms:ort-cpu-1t": 0.05}})')
    out = {}
    for column, value in raw.items():
        number = _number(value)
        if number is None:
            raise UserError(f"{source}: {key}[{column!r}] must be a finite number, got {json.dumps(value)}")
        out[str(column)] = number
    return out


def parse_reference(data: Any, source: str = "the hypervolume reference") -> dict[str, Any]:
    """{"ideal", "nadir", "reference"} from decoded JSON `data`, checked for shape (one-line UserError): ideal and
    nadir map the same columns to finite numbers; `reference` (default 1.1) is a number of at least 1."""
    if not isinstance(data, Mapping):
        raise UserError(f'{source}: must be a JSON object {{"ideal": {{...}}, "nadir": {{...}}, "reference": 1.1}}')
    unknown = sorted(set(map(str, data)) - set(REFERENCE_KEYS))
    if unknown:
        raise UserError(f"{source}: unknown key {unknown[0]!r} (known: {', '.join(REFERENCE_KEYS)})")
    ideal, nadir = _bounds_of(data, "ideal", source), _bounds_of(data, "nadir", source)
    if set(ideal) != set(nadir):
        odd = sorted(set(ideal) ^ set(nadir))[0]
        raise UserError(f"{source}: ideal and nadir must name the same columns ({odd!r} is in only one of them)")
    reference = _number(data.get("reference", DEFAULT_REFERENCE))
    if reference is None or reference < 1.0:
        raise UserError(f"{source}: 'reference' must be a number of at least 1 (the reference point's normalised "
                        f"coordinate; default {DEFAULT_REFERENCE:g}), got {json.dumps(data.get('reference'))}")
    return {"ideal": ideal, "nadir": nadir, "reference": reference}


def check_reference(reference: Mapping[str, Any], objectives: Sequence[Objective],
                    source: str = "--hv-reference") -> dict[str, Any]:
    """`reference` (as `parse_reference` returns it) restricted to the columns of `objectives`, in their order; a
    one-line UserError when an objective has no bounds or its ideal is not strictly better than its nadir."""
    checked = parse_reference(reference, source)
    ideal, nadir = checked["ideal"], checked["nadir"]
    missing = [o.column for o in objectives if o.column not in ideal]
    if missing:
        raise UserError(f"{source}: no ideal and nadir for objective {missing[0]!r} (the file names "
                        f"{', '.join(sorted(ideal))})")
    for o in objectives:
        if not o.cost(ideal[o.column]) < o.cost(nadir[o.column]):
            side = "below" if o.direction == MINIMIZE else "above"
            raise UserError(f"{source}: the ideal of {o.column!r} ({ideal[o.column]:g}) must be {side} its nadir "
                            f"({nadir[o.column]:g}): it is {o.direction}d")
    return {"ideal": {o.column: ideal[o.column] for o in objectives},
            "nadir": {o.column: nadir[o.column] for o in objectives}, "reference": checked["reference"]}


def load_reference(spec: str | Path | Mapping[str, Any], objectives: Sequence[Objective]) -> dict[str, Any]:
    """A fixed hypervolume scale for `objectives` from a JSON file path or an already decoded mapping, checked
    (`read_reference`, `check_reference`): what a run records as its identity's `hv_reference`."""
    source = "--hv-reference" if isinstance(spec, Mapping) else f"--hv-reference {spec}"
    data = spec if isinstance(spec, Mapping) else read_reference(spec, source)
    return check_reference(data, objectives, source)


def reference_id(ideal: Mapping[str, float], nadir: Mapping[str, float], reference: float) -> str:
    """A short digest of a fixed scale: equal bounds and reference give equal ids, so plots and tables of
    several runs show at a glance whether their hypervolumes are comparable."""
    text = json.dumps({"ideal": {k: float(v) for k, v in ideal.items()},
                       "nadir": {k: float(v) for k, v in nadir.items()}, "reference": float(reference)},
                      sort_keys=True)
    return hashlib.sha1(text.encode()).hexdigest()[:8]


# ----------------------------------------------------------------------------------- per-evaluation and per-round

class _Front2D:
    """A 2-D non-dominated set kept sorted by x (so y strictly decreases) with its hypervolume updated
    incrementally: each insertion costs a binary search plus the points it removes, so n rows take O(n log n)."""

    def __init__(self, reference: float) -> None:
        self.ref = reference
        self.xs: list[float] = []
        self.ys: list[float] = []
        self.volume = 0.0

    def add(self, x: float, y: float) -> None:
        ref = self.ref
        if not (x < ref and y < ref):
            return
        i = bisect.bisect_left(self.xs, x)  # points [0, i) have x' < x
        y_left = self.ys[i - 1] if i > 0 else ref  # the best y reachable just left of x
        if y_left <= y or (i < len(self.xs) and self.xs[i] == x and self.ys[i] <= y):
            return  # weakly dominated: the volume does not change
        # Points from i on with y' >= y are dominated by (x, y): their staircase steps become this point's gain.
        gain, x_prev, y_prev = 0.0, x, y_left
        j = i
        while j < len(self.xs) and self.ys[j] >= y:
            gain += (self.xs[j] - x_prev) * (y_prev - y)
            x_prev, y_prev = self.xs[j], self.ys[j]
            j += 1
        x_right = self.xs[j] if j < len(self.xs) else ref
        gain += (x_right - x_prev) * (y_prev - y)
        self.xs[i:j] = [x]
        self.ys[i:j] = [y]
        self.volume += gain


def hypervolume_by_evaluation(rows: Sequence[Row], objectives: Sequence[Objective],
                              constraints: Sequence[Constraint] = (), ideal: Bounds | None = None,
                              nadir: Bounds | None = None, reference: float = DEFAULT_REFERENCE) -> np.ndarray:
    """HV of the feasible rows evaluated so far, after each row in `number` order (entry k: after k+1 rows).

    Infeasible rows and rows missing an objective leave the HV unchanged. Incremental: exact and O(n log n) for
    2 objectives; for 3+ the HV is recomputed (pymoo) only when a row enters the running non-dominated set."""
    ordered = _sorted_rows(rows)
    out = np.zeros(len(ordered), dtype=float)
    if not ordered:
        return out
    lo, hi = _resolve_bounds(ordered, objectives, constraints, ideal, nadir)
    costs = row_costs(ordered, objectives)
    usable = feasible_mask(ordered, constraints) & ~np.isnan(costs).any(axis=1)
    if not np.isfinite(lo).all() or not np.isfinite(hi).all():
        return out  # no feasible row to scale by
    points = _normalise(costs, lo, hi)
    m = len(objectives)
    if m == 2:
        front2 = _Front2D(reference)
        for k in range(len(ordered)):
            if usable[k]:
                front2.add(float(points[k, 0]), float(points[k, 1]))
            out[k] = front2.volume
        return out
    front: np.ndarray = np.empty((0, m))
    volume = 0.0
    for k in range(len(ordered)):
        if usable[k] and np.all(points[k] < reference):
            p = points[k]
            if not (len(front) and np.any(np.all(front <= p, axis=1))):
                front = np.vstack([front[~np.all(p <= front, axis=1)], p])
                volume = normalised_hypervolume(front, np.zeros(m), np.ones(m), reference)
        out[k] = volume
    return out


def hypervolume_trace(rows: Sequence[Row], objectives: Sequence[Objective], constraints: Sequence[Constraint] = (),
                      ideal: Bounds | None = None, nadir: Bounds | None = None,
                      reference: float = DEFAULT_REFERENCE) -> pd.DataFrame:
    """One line per strategy round: `round`, `evaluations` (rows of this and earlier rounds), `feasible` (of
    those, how many are feasible), `hypervolume` (of those feasible rows), and the scale it was computed on:
    `ideal` and `nadir` (JSON {column: raw value}), `reference` (normalised coordinate), `reference_point`
    (JSON {column: raw value}, the reference point in metric units), `normalisation` ("run": the bounds are this
    run's best and worst feasible values; "fixed": given bounds, the same for every run given them) and
    `reference_id` (`reference_id` of fixed bounds, "" for a run's own). Non-decreasing in `hypervolume`."""
    columns = ["round", "evaluations", "feasible", "hypervolume", "ideal", "nadir", "reference", "reference_point",
               "normalisation", "reference_id"]
    if not rows:
        return pd.DataFrame(columns=columns)
    lo, hi = _resolve_bounds(rows, objectives, constraints, ideal, nadir)
    fixed = ideal is not None and nadir is not None
    scale = {"normalisation": "fixed" if fixed else "run",
             "reference_id": reference_id(_bounds_dict(lo, objectives), _bounds_dict(hi, objectives), reference)
             if fixed else ""}
    ideal_json = _json(_bounds_dict(lo, objectives))
    nadir_json = _json(_bounds_dict(hi, objectives))
    reference_json = _json(reference_point(_bounds_dict(lo, objectives), _bounds_dict(hi, objectives),
                                           objectives, reference))
    costs = row_costs(rows, objectives)
    feasible = feasible_mask(rows, constraints) & ~np.isnan(costs).any(axis=1)
    rounds = np.array([r.round for r in rows])
    lines = []
    for rnd in sorted(set(rounds.tolist())):
        upto = rounds <= rnd
        chosen = upto & feasible
        volume = normalised_hypervolume(costs[chosen], lo, hi, reference) if chosen.any() and \
            np.isfinite(lo).all() and np.isfinite(hi).all() else 0.0
        lines.append({"round": int(rnd), "evaluations": int(upto.sum()), "feasible": int(chosen.sum()),
                      "hypervolume": volume, "ideal": ideal_json, "nadir": nadir_json, "reference": reference,
                      "reference_point": reference_json, **scale})
    return pd.DataFrame(lines, columns=columns)


def evaluations_to_reach(trace_or_rows: Any, target_hv: float, objectives: Sequence[Objective] | None = None,
                         constraints: Sequence[Constraint] = (), ideal: Bounds | None = None,
                         nadir: Bounds | None = None, reference: float = DEFAULT_REFERENCE) -> int | None:
    """The first evaluation count at which the HV reaches `target_hv` (>=, with a 1e-12 tolerance), or None.

    `trace_or_rows` is either a sequence of `Row`s (then `objectives` and preferably fixed `ideal`/`nadir` are
    needed; the HV is computed after every row), a per-evaluation HV array (`hypervolume_by_evaluation`), or a
    DataFrame with `evaluations` and `hypervolume` columns (per-round resolution only)."""
    if isinstance(trace_or_rows, pd.DataFrame):
        hit = trace_or_rows[trace_or_rows["hypervolume"].to_numpy(dtype=float) >= target_hv - 1e-12]
        return None if hit.empty else int(hit["evaluations"].min())
    items = list(trace_or_rows)
    if items and isinstance(items[0], Row):
        if objectives is None:
            raise ValueError("evaluations_to_reach needs the objectives to compute the HV of rows")
        curve = hypervolume_by_evaluation(items, objectives, constraints, ideal, nadir, reference)
    else:
        curve = np.asarray(items, dtype=float)
    reached = np.flatnonzero(curve >= target_hv - 1e-12)
    return None if len(reached) == 0 else int(reached[0]) + 1
