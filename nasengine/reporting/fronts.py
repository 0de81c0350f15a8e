"""Tables and Pareto sets of a search, for the objectives it was run with: results.csv's rows (`results_frame`),
the fronts per device (`front_groups`, `front`, `pareto_frame`) and the vectorised Pareto mask.

Fronts. When objectives are measured per device on several devices there is one front per device, over that
device's objectives and every device-independent objective, and over the rows feasible under the
device-independent constraints and that device's constraints (a bound on device B does not decide what is
deployable on device A). When no objective is per device there is one front (device ""), under every constraint.
Per-device quantities are always named by their device (`latency_ms:<device>`, ...): no bare `latency_ms` column.
"""


from __future__ import annotations

import json
from typing import Any, Sequence

import numpy as np
import pandas as pd

from nasengine.searching.objectives import METRICS, Constraint, Objective, Row, metric_column

KNOWN_METRICS = ("accuracy", "error", "params", "macs", "size_mb")
ACCURACY_COLUMNS = ("accuracy", "error")
DEVICE_DETAILS = ("latency_iqr_ms", "latency_repeats", "latency_source", "latency_inputs")
# Per-device names that must never appear bare: a bare `latency_ms` would not say which device it was measured on.
_BARE_PER_DEVICE = frozenset({"latency_ms", *DEVICE_DETAILS})


# ------------------------------------------------------------------------------------------------ Pareto utility

def pareto_mask(costs: Any) -> np.ndarray:
    """Boolean mask of the non-dominated rows of `costs` (n x m, every column minimised). Exact duplicates of a
    non-dominated point are all kept; rows with NaN are never in the front.

    Duplicates are folded first; 2 objectives use an O(n log n) sweep, more use a filter in lexicographic order
    (a dominating point always sorts first), whose cost grows with the front size, not with n squared."""
    costs = np.asarray(costs, dtype=float)
    if costs.ndim != 2:
        raise ValueError(f"costs must be an n x m array, got shape {costs.shape}")
    n, m = costs.shape
    mask = np.zeros(n, dtype=bool)
    valid = ~np.isnan(costs).any(axis=1)
    if not valid.any() or m == 0:
        mask[valid] = True
        return mask
    unique, inverse = np.unique(costs[valid], axis=0, return_inverse=True)  # lexicographically sorted
    keep = np.ones(len(unique), dtype=bool)
    if m == 1:
        keep = unique[:, 0] == unique[0, 0]
    elif m == 2:
        best_before = np.concatenate([[np.inf], np.minimum.accumulate(unique[:, 1])[:-1]])
        keep = unique[:, 1] < best_before
    else:
        for i in range(len(unique)):
            if keep[i]:
                rest = unique[i + 1:]
                dominated = np.all(rest >= unique[i], axis=1)  # distinct and not smaller anywhere: dominated
                keep[i + 1:] &= ~dominated
    mask[np.flatnonzero(valid)] = keep[np.asarray(inverse).reshape(-1)]
    return mask


def latency_column(device: str) -> str:
    """The results column of the median latency on `device` (`latency_ms:<device>`)."""
    return metric_column("latency_ms", device)


# ---------------------------------------------------------------------------------------------- results.csv

def _split_device(column: str) -> tuple[str, str | None]:
    """(`latency_ms`, `ort-cpu-1t`) for `latency_ms:ort-cpu-1t`; (column, None) for device-independent names.
    Device names may themselves contain ':' (`lut:ort-cpu-1t`), metric names do not."""
    name, sep, device = column.partition(":")
    if sep and (name in DEVICE_DETAILS or (name in METRICS and METRICS.get(name).per_device)):
        return name, device
    return column, None


def _devices(objectives: Sequence[Objective], constraints: Sequence[Constraint], columns: Sequence[str]
             ) -> list[str]:
    """Devices in a stable order: those of the objectives, then of the constraints, then any other found."""
    found = [o.device for o in objectives] + [c.device for c in constraints]
    rest = sorted({d for c in columns for d in [_split_device(c)[1]] if d is not None} - set(found))
    return list(dict.fromkeys(d for d in [*found, *rest] if d))


def _cell(value: Any) -> Any:
    return json.dumps(value, separators=(",", ":"), default=str) if isinstance(value, (dict, list, tuple)) else value


def results_frame(rows: Sequence[Row], objectives: Sequence[Objective] = (),
                  constraints: Sequence[Constraint] = ()) -> pd.DataFrame:
    """One line per evaluation in `number` order: number, round, arch (compact JSON), the metrics (accuracy,
    error, params, macs, size_mb, `latency_ms:<device>` per device, then any other sorted), the per-device
    measurement details, `predicted:*`, other details (sorted), worker. Bare per-device names are left out
    unless an objective or constraint is named so."""
    ordered = sorted(rows, key=lambda r: r.number)
    # The objectives' and constraints' columns are always there (empty if no row has them yet).
    # a bare per-device name stays only where the caller made it an objective or a bound itself (the Python
    # API's user metrics may be called anything); the engine's per-device metrics always carry their device
    chosen = {o.column for o in objectives} | {c.column for c in constraints}
    metric_names = ({k for r in ordered for k in r.metrics} - _BARE_PER_DEVICE) | chosen
    detail_names = {k for r in ordered for k in r.details} - _BARE_PER_DEVICE - metric_names \
        - {"number", "round", "arch", "worker"}
    devices = _devices(objectives, constraints, sorted(metric_names | detail_names))
    metric_cols = [c for c in KNOWN_METRICS if c in metric_names]
    metric_cols += [latency_column(d) for d in devices if latency_column(d) in metric_names]
    metric_cols += sorted(metric_names - set(metric_cols))
    detail_cols = [metric_column(name, d) for d in devices for name in DEVICE_DETAILS
                   if metric_column(name, d) in detail_names]
    detail_cols += sorted(c for c in detail_names - set(detail_cols) if c.startswith("predicted:"))
    detail_cols += sorted(detail_names - set(detail_cols))
    columns = ["number", "round", "arch", *metric_cols, *detail_cols, "worker"]
    records = []
    for r in ordered:
        record: dict[str, Any] = {"number": int(r.number), "round": int(r.round),
                                  "arch": json.dumps(r.arch, separators=(",", ":")), "worker": r.worker}
        record.update({c: r.metrics.get(c, np.nan) for c in metric_cols})
        record.update({c: _cell(r.details.get(c, np.nan)) for c in detail_cols})
        records.append(record)
    return pd.DataFrame(records, columns=columns)


# ---------------------------------------------------------------------------------------------- pareto.csv

def front_groups(objectives: Sequence[Objective]) -> list[tuple[str, list[Objective]]]:
    """(device, objectives) of each front: one per device of the per-device objectives (its own objectives plus
    the device-independent ones), or a single ("", all objectives) when no objective is per device."""
    devices = list(dict.fromkeys(o.device for o in objectives if o.device))
    if not devices:
        return [("", list(objectives))]
    return [(d, [o for o in objectives if o.device in (None, d)]) for d in devices]


def group_constraints(constraints: Sequence[Constraint], device: str) -> list[Constraint]:
    """The constraints a front for `device` honours: device-independent ones and `device`'s own ("" = all)."""
    return list(constraints) if not device else [c for c in constraints if c.device in (None, device)]


def _column(frame: pd.DataFrame, column: str) -> np.ndarray:
    if column not in frame.columns:
        raise ValueError(f"the results have no column {column!r} (columns: {', '.join(map(str, frame.columns))})")
    return pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=float)


def frame_costs(frame: pd.DataFrame, objectives: Sequence[Objective]) -> np.ndarray:
    """n x m costs (maximised objectives negated) of a results-like frame; NaN where a value is missing."""
    return np.column_stack([o.sign * _column(frame, o.column) for o in objectives]) if objectives \
        else np.zeros((len(frame), 0))


def frame_feasible(frame: pd.DataFrame, constraints: Sequence[Constraint]) -> np.ndarray:
    """True where every constraint holds (a missing value is infeasible)."""
    mask = np.ones(len(frame), dtype=bool)
    for c in constraints:
        mask &= c.holds_for(_column(frame, c.column))
    return mask


def front(results: pd.DataFrame, objectives: Sequence[Objective], constraints: Sequence[Constraint]
          ) -> pd.DataFrame:
    """The non-dominated rows of `results` over `objectives`, among the rows satisfying `constraints`, best
    first on the first objective (then on the next ones)."""
    pool = results[frame_feasible(results, constraints)]
    costs = frame_costs(pool, objectives)
    mask = pareto_mask(costs)
    chosen, costs = pool[mask], costs[mask]
    order = np.lexsort(costs.T[::-1]) if len(objectives) else np.arange(len(chosen))
    return chosen.iloc[order]


def pareto_frame(results: pd.DataFrame, objectives: Sequence[Objective],
                 constraints: Sequence[Constraint] = ()) -> pd.DataFrame:
    """The front of every `front_groups` group, stacked, with a leading `device` column ("" when the front
    is device-independent). Rows keep their results columns, `number` included."""
    fronts = []
    for device, group in front_groups(objectives):
        f = front(results, group, group_constraints(constraints, device)).copy()
        f.insert(0, "device", device)
        fronts.append(f)
    if not fronts or all(f.empty for f in fronts):
        return pd.DataFrame(columns=["device", *results.columns])
    return pd.concat([f for f in fronts if not f.empty], ignore_index=True)
