"""Run reports that follow the search's own objectives: every evaluation (results.csv), the Pareto set per
device (pareto.csv, pareto.png) and the hypervolume over the run (hypervolume.csv, hypervolume.png).

Nothing here assumes a fixed pair such as accuracy/latency: the fronts, plots and picks are built from the
`Objective`s and `Constraint`s the search was run with. Per-device quantities are always named by their device
(`latency_ms:<device>`, `latency_iqr_ms:<device>`, ...): there is no bare `latency_ms` column, so a figure can
never be read as belonging to the wrong device. Every file is written atomically.

Fronts. When objectives are measured per device on several devices there is one front per device, over that
device's objectives and every device-independent objective, and over the rows feasible under the
device-independent constraints and that device's constraints (a bound on device B does not decide what is
deployable on device A). When no objective is per device there is one front (device ""), under every constraint.
The hypervolume is over all objectives together, under every constraint: it measures the search as it was run.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from nasengine.errors import UserError
from nasengine.searching.hypervolume import (DEFAULT_REFERENCE, default_bounds, feasible_mask,
                                             hypervolume_by_evaluation, hypervolume_trace, reference_point)
from nasengine.searching.objectives import (MAXIMIZE, MINIMIZE, METRICS, Constraint, Objective, Row, metric_column,
                                            objective_from_callable_name)
from search_spaces.storage import atomic_file

KNOWN_METRICS = ("accuracy", "error", "params", "macs", "size_mb")
ACCURACY_COLUMNS = ("accuracy", "error")
DEVICE_DETAILS = ("latency_iqr_ms", "latency_repeats", "latency_source")
EXPORTED = "exported.json"
# Per-device names that must never appear bare: a bare `latency_ms` would not say which device it was measured on.
_BARE_PER_DEVICE = frozenset({"latency_ms", *DEVICE_DETAILS})
_PNG_DPI = 110


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
        values = _column(frame, c.column)
        with np.errstate(invalid="ignore"):
            mask &= (values <= c.bound) if c.op == "<=" else (values >= c.bound)
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


# ---------------------------------------------------------------------------------------------- plotting

def _atomic(path: Path, write: Callable[[Path], Any]) -> None:
    with atomic_file(path) as tmp:
        write(tmp)


def _fmt(value: float, _pos: Any = None) -> str:
    """Short plain tick labels: 0.5, 12, 250, 20k, 1.5M."""
    if value == 0 or not math.isfinite(value):
        return "0" if value == 0 else ""
    for threshold, divisor, suffix in ((1e9, 1e9, "G"), (1e6, 1e6, "M"), (1e4, 1e3, "k")):
        if abs(value) >= threshold:
            return f"{value / divisor:.3g}{suffix}"
    return f"{value:.4g}"


def _log_ticks(lo: float, hi: float, most: int = 6) -> list[float]:
    """At most `most` round ticks (1-2-5, 1-3, decades, every k-th decade) within [lo, hi] on a log axis."""
    first, last = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    for subs in ((1.0, 2.0, 5.0), (1.0, 3.0), (1.0,)):
        ticks = [s * 10.0 ** e for e in range(first, last + 1) for s in subs if lo <= s * 10.0 ** e <= hi]
        if 2 <= len(ticks) <= most:
            return ticks
    decades = [10.0 ** e for e in range(first, last + 1) if lo <= 10.0 ** e <= hi]
    step = max(1, math.ceil(len(decades) / most))
    return decades[::step] or [lo, hi]


def _style_axis(axis: Any, values: np.ndarray, set_scale: Callable[[str], Any]) -> None:
    """Log scale when positive values span more than 10x; a few plain major labels, never minor ones."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, MaxNLocator, NullFormatter

    finite = values[np.isfinite(values)]
    if len(finite) and finite.min() > 0 and finite.max() / finite.min() > 10:
        set_scale("log")
        axis.set_major_locator(FixedLocator(_log_ticks(float(finite.min()), float(finite.max()))))
    else:
        axis.set_major_locator(MaxNLocator(nbins=5))
    axis.set_major_formatter(FuncFormatter(_fmt))
    axis.set_minor_formatter(NullFormatter())


def _axis_label(o: Objective) -> str:
    base = o.column.partition(":")[0] if o.device else o.column
    text = o.label or base
    if base == "latency_ms":
        text = f"median {text}"
    arrow = "lower is better" if o.direction == MINIMIZE else "higher is better"
    return f"{text} on {o.device} ({arrow})" if o.device else f"{text} ({arrow})"


class _Axis:
    """One plotted quantity: an objective's column, or top-1 accuracy in % (from `accuracy` or `1 - error`)."""

    def __init__(self, objective: Objective | None, label: str, maximise: bool) -> None:
        self.objective, self.label, self.maximise = objective, label, maximise

    def values(self, frame: pd.DataFrame) -> np.ndarray:
        if self.objective is not None and self.objective.column == "number":
            return _numbers(frame).astype(float)
        if self.objective is not None:
            return _column(frame, self.objective.column)
        if "accuracy" in frame.columns:
            return 100.0 * _column(frame, "accuracy")
        if "error" in frame.columns:
            return 100.0 * (1.0 - _column(frame, "error"))
        return _numbers(frame).astype(float)

    def bounds(self, constraints: Sequence[Constraint]) -> list[tuple[float, str]]:
        """Where the constraints on this quantity draw a line, in plotted units."""
        lines = []
        for c in constraints:
            if self.objective is not None and c.column == self.objective.column:
                lines.append((c.bound, str(c)))
            elif self.objective is None and c.column == "accuracy":
                lines.append((100.0 * c.bound, str(c)))
            elif self.objective is None and c.column == "error":
                lines.append((100.0 * (1.0 - c.bound), str(c)))
        return lines


def _accuracy_axis() -> _Axis:
    return _Axis(None, "top-1 accuracy (%, search split; higher is better)", True)


def plot_axes(group: Sequence[Objective], results_columns: Sequence[str] = ()) -> tuple[_Axis, _Axis, bool]:
    """(x, y, partial) for a front over `group`: x is the first objective that is not accuracy/error; y is
    accuracy in % when accuracy or error is an objective, else the next objective; `partial` is True when the
    front has objectives that are not shown."""
    acc = next((o for o in group if o.column in ACCURACY_COLUMNS), None)
    others = [o for o in group if o is not acc]
    if not others:  # a one-objective front of accuracy/error: show it against the evaluation order
        return _Axis(Objective("number"), "evaluation number", False), _accuracy_axis(), False
    x = _Axis(others[0], _axis_label(others[0]), others[0].direction == MAXIMIZE)
    if acc is not None:
        y = _accuracy_axis()
    elif len(others) > 1:
        y = _Axis(others[1], _axis_label(others[1]), others[1].direction == MAXIMIZE)
    elif any(c in results_columns for c in ACCURACY_COLUMNS):  # one objective: show accuracy for context
        y = _accuracy_axis()
    else:
        y = _Axis(Objective("number"), "evaluation number", False)
    shown = 1 + (acc is not None or y.objective in group)
    return x, y, len(group) > shown


def _numbers(frame: pd.DataFrame) -> np.ndarray:
    """Each line's evaluation `number` (its position when a hand-made frame has none)."""
    if "number" in frame.columns:
        return pd.to_numeric(frame["number"], errors="coerce").fillna(-1).to_numpy(dtype=int)
    return np.arange(len(frame))


def _chosen_numbers(chosen: Any, device: str) -> list[int]:
    """The exported numbers to mark on `device`'s panel: an int marks every panel; a mapping gives numbers (one
    or a list) per device, and a device-independent panel ("") marks all of them."""
    if chosen is None:
        return []
    if isinstance(chosen, Mapping):
        picked = [v for k, v in chosen.items() if not device or k == device]
    else:
        picked = [chosen]
    numbers: list[int] = []
    for item in picked:
        numbers += [int(n) for n in (item if isinstance(item, (list, tuple, set)) else [item])]
    return list(dict.fromkeys(numbers))


def plot_pareto(results: pd.DataFrame, pareto: pd.DataFrame, objectives: Sequence[Objective], path: Path,
                constraints: Sequence[Constraint] = (), chosen: Any = None) -> None:
    """Write pareto.png (`pareto_figure`) atomically to `path`."""
    fig = pareto_figure(results, pareto, objectives, constraints, chosen)
    _atomic(Path(path), lambda p: fig.savefig(p, dpi=_PNG_DPI, format="png"))


def pareto_figure(results: pd.DataFrame, pareto: pd.DataFrame, objectives: Sequence[Objective],
                  constraints: Sequence[Constraint] = (), chosen: Any = None) -> Any:
    """The pareto.png figure: one panel per front (`front_groups`). Every evaluated row in grey (infeasible
    ones as x), the front in red as a staircase annotated with each point's `number`, constraint bounds dashed,
    and the `chosen` (exported) subnets as gold stars. With 3+ objectives in a front the title says that only
    the first two are plotted. A matplotlib Figure on an Agg canvas (no pyplot: the user's backend is kept)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    groups = front_groups(objectives)
    fig = Figure(figsize=(5.6 * len(groups), 4.6))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(groups), squeeze=False)[0]
    devices = pareto["device"].fillna("").astype(str) if "device" in pareto.columns else pd.Series(dtype=str)
    for ax, (device, group) in zip(axes, groups):
        cons = group_constraints(constraints, device)
        x_axis, y_axis, partial = plot_axes(group, list(results.columns))
        xs, ys = x_axis.values(results), y_axis.values(results)
        ok = frame_feasible(results, cons)
        what = "evaluated" if ok.all() else "evaluated, feasible"
        ax.scatter(xs[ok], ys[ok], s=12, c="0.65", label=f"{what} ({int(ok.sum())})", zorder=1)
        if (~ok).any():
            ax.scatter(xs[~ok], ys[~ok], s=14, c="0.8", marker="x", label=f"infeasible ({int((~ok).sum())})",
                       zorder=1)
        f = pareto[(devices == device).to_numpy()] if len(pareto) else pareto
        if len(f):
            fx, fy = x_axis.values(f), y_axis.values(f)
            # The staircase joins the points not dominated in the two plotted coordinates.
            flat = pareto_mask(np.column_stack([fx * (-1 if x_axis.maximise else 1),
                                                fy * (-1 if y_axis.maximise else 1)]))
            order = np.argsort(fx[flat], kind="stable")
            ax.step(fx[flat][order], fy[flat][order], where="pre" if x_axis.maximise else "post",
                    c="tab:red", lw=1.2, zorder=2)
            ax.scatter(fx, fy, s=24, c="tab:red", label=f"Pareto front ({len(f)})", zorder=3)
            for n, px, py in zip(_numbers(f), fx, fy):
                ax.annotate(str(int(n)), (px, py), xytext=(3, 3), textcoords="offset points", fontsize=6,
                            color="tab:red", zorder=4)
        marks = [n for n in _chosen_numbers(chosen, device) if (_numbers(results) == n).any()]
        if marks:
            pick = results[np.isin(_numbers(results), marks)]
            ax.scatter(x_axis.values(pick), y_axis.values(pick), s=190, marker="*", c="gold", edgecolors="k",
                       linewidths=0.8, label="exported", zorder=5)
        for value, text in x_axis.bounds(cons):
            ax.axvline(value, ls="--", c="k", lw=0.8, label=text)
        for value, text in y_axis.bounds(cons):
            ax.axhline(value, ls="--", c="k", lw=0.8, label=text)
        _style_axis(ax.xaxis, xs, ax.set_xscale)
        if y_axis.objective is not None:
            _style_axis(ax.yaxis, ys, ax.set_yscale)
        else:
            from matplotlib.ticker import FuncFormatter, MaxNLocator

            ax.yaxis.set_major_locator(MaxNLocator(nbins=6))
            ax.yaxis.set_major_formatter(FuncFormatter(_fmt))
        ax.set_xlabel(x_axis.label, fontsize=9)
        ax.set_ylabel(y_axis.label, fontsize=9)
        title = f"Pareto front on {device}" if device else "Pareto front"
        title += f": {', '.join(o.column for o in group)}"
        if partial:
            title += f"\n(front over all {len(group)} objectives; the first two are plotted)"
        ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize=7)
    fig.tight_layout()
    return fig


def plot_hypervolume(curve: np.ndarray, trace: pd.DataFrame, objectives: Sequence[Objective], path: Path) -> None:
    """hypervolume.png: HV of the feasible rows after each evaluation, with a marker at the end of each round."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    fig = Figure(figsize=(6.0, 3.8))
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    if len(curve):
        ax.step(np.arange(1, len(curve) + 1), curve, where="post", c="tab:blue", lw=1.2, label="after each evaluation")
    if len(trace):
        ax.scatter(trace["evaluations"], trace["hypervolume"], s=16, c="tab:blue", zorder=3, label="end of a round")
    reference = trace["reference"].iloc[0] if len(trace) else DEFAULT_REFERENCE
    ax.set_xlabel("evaluations", fontsize=9)
    ax.set_ylabel(f"hypervolume (normalised, reference {reference:g})", fontsize=9)
    ax.set_title(f"hypervolume of the feasible evaluations: {', '.join(o.column for o in objectives)}", fontsize=9)
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_locator(MaxNLocator(nbins=6, integer=axis is ax.xaxis))
        axis.set_major_formatter(FuncFormatter(_fmt))
    ax.grid(alpha=0.3)
    if len(curve):
        ax.legend(loc="lower right", fontsize=7)
    fig.tight_layout()
    _atomic(Path(path), lambda p: fig.savefig(p, dpi=_PNG_DPI, format="png"))


# ---------------------------------------------------------------------------------------------- writing

def _read_exported(run_dir: Path) -> dict[str, list[int]]:
    """RUN/exported.json's {device: [numbers]} ({} when absent or unreadable: it only decorates the plot)."""
    try:
        data = json.loads((Path(run_dir) / EXPORTED).read_text())
        exported = data.get("exported", {})
        return {str(k): [int(n) for n in v] for k, v in exported.items()}
    except (OSError, ValueError, TypeError, AttributeError):
        return {}


def write_reports(run_dir: Path, rows: Sequence[Row], objectives: Sequence[Objective],
                  constraints: Sequence[Constraint] = (), chosen: Any = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """results.csv, pareto.csv, pareto.png, hypervolume.csv and hypervolume.png in `run_dir`, each atomically.

    `chosen` (a row number, or {device: number or [numbers]}) is marked as exported on the plot; by default
    the exports recorded in RUN/exported.json are, so a resumed search keeps the marks. Returns
    (results, pareto) as written."""
    run_dir = Path(run_dir)
    results = results_frame(rows, objectives, constraints)
    pareto = pareto_frame(results, objectives, constraints)
    curve = hypervolume_by_evaluation(rows, objectives, constraints)
    trace = hypervolume_trace(rows, objectives, constraints)
    _atomic(run_dir / "results.csv", lambda p: results.to_csv(p, index=False))
    _atomic(run_dir / "pareto.csv", lambda p: pareto.to_csv(p, index=False))
    _atomic(run_dir / "hypervolume.csv", lambda p: trace.to_csv(p, index=False))
    plot_pareto(results, pareto, objectives, run_dir / "pareto.png", constraints,
                chosen if chosen is not None else _read_exported(run_dir) or None)
    plot_hypervolume(curve, trace, objectives, run_dir / "hypervolume.png")
    return results, pareto


def _json_number(value: float) -> float | None:
    return float(value) if value is not None and math.isfinite(float(value)) else None


def summary(rows: Sequence[Row], objectives: Sequence[Objective], constraints: Sequence[Constraint] = ()
            ) -> dict[str, Any]:
    """What run.json records about the outcome (JSON-safe): rows evaluated, rows feasible under every
    constraint, the front size per device ("" for a device-independent front) and the final hypervolume with
    the bounds and reference it was computed on."""
    results = results_frame(rows, objectives, constraints)
    pareto = pareto_frame(results, objectives, constraints)
    devices = pareto["device"].astype(str) if len(pareto) else pd.Series(dtype=str)
    ideal, nadir = default_bounds(rows, objectives, constraints)
    curve = hypervolume_by_evaluation(rows, objectives, constraints, ideal, nadir)
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
            "reference": DEFAULT_REFERENCE,
            "reference_point": {c: _json_number(v) for c, v in reference_point(ideal, nadir, objectives).items()},
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
    _atomic(run_dir / EXPORTED, lambda p: p.write_text(json.dumps({"exported": exported}, indent=2)))
    plot_pareto(results, pareto, objectives, run_dir / "pareto.png", constraints, exported)
    return run_dir / "pareto.png"
