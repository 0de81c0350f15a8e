"""pareto.png and hypervolume.png: one panel per front with numbered points and the exported subnet starred,
readable ticks (few major labels, no minor ones), axes named by objective and device. No pyplot: the
process-wide matplotlib backend stays the user's."""


from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from nasengine.reporting.fronts import (ACCURACY_COLUMNS, _column, frame_feasible, front_groups, group_constraints,
                              pareto_mask)
from nasengine.searching.hypervolume import DEFAULT_REFERENCE
from nasengine.searching.objectives import MAXIMIZE, MINIMIZE, Constraint, Objective
from nasengine.search_spaces.storage import atomic_file


_PNG_DPI = 110


def _save(fig: Any, path: Path) -> None:
    with atomic_file(Path(path)) as tmp:
        fig.savefig(tmp, dpi=_PNG_DPI, format="png")


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
    _save(fig, path)


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
    _save(fig, path)
