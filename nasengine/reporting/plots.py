"""pareto.png and hypervolume.png: one panel per front (per pair of objectives for 3+), numbers that never
overlap, the exported subnet starred with its number, INT8/FP32 subnets told apart, readable ticks (few major
labels, no minor ones), axes named by objective and device, the hypervolume's scale stated. No pyplot: the
process-wide matplotlib backend stays the user's. What each axis shows and how it is scaled: reporting.axes."""


from __future__ import annotations

import itertools
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from nasengine.reporting.fronts import frame_feasible, front_groups, group_constraints, pareto_mask
from nasengine.searching.objectives import Constraint, Objective
from nasengine.reporting.axes import PNG_DPI, Axis, evaluation_numbers, plot_axes, save_png, style_axis, tick_label
from nasengine.reporting.labels import STAR_SIZE, Label, front_labels, place_labels


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


# ------------------------------------------------------------------------------------------- INT8 / FP32 marks

# precision class -> (marker, legend text): the shape says how many of a subnet's layers run INT8
PRECISIONS = {"fp32": ("o", "all layers FP32"), "mixed": ("^", "mixed precisions"),
              "int8": ("s", "all layers INT8"), "unknown": ("d", "precision not recorded")}


def _policy(cell: Any) -> Mapping[str, Any] | None:
    """A `quant_policy` cell (JSON text or a mapping) as layer -> precision; None when it is missing or unreadable."""
    if isinstance(cell, Mapping):
        return cell
    if not isinstance(cell, str):
        return None
    try:
        policy = json.loads(cell)
    except ValueError:
        return None
    return policy if isinstance(policy, Mapping) else None


def precision_classes(frame: pd.DataFrame) -> np.ndarray | None:
    """Per line of a results-like frame: "fp32" (every layer FP32), "mixed", "int8" (every layer INT8) or "unknown",
    from its `quant_policy` column (JSON layer -> precision, runs with --quantization int8|search); None when
    the frame records no policy at all (an FP32 run)."""
    if "quant_policy" not in frame.columns:
        return None
    classes = []
    for cell in frame["quant_policy"]:
        policy = _policy(cell)
        if policy is None:
            classes.append("unknown")
            continue
        int8 = sum(str(p).lower() == "int8" for p in policy.values())
        quantized = sum(str(p).lower() != "fp32" for p in policy.values())
        classes.append("fp32" if quantized == 0 else "int8" if int8 == len(policy) else "mixed")
    out = np.array(classes, dtype=object)
    return None if (out == "unknown").all() else out


def _scatter(ax: Any, xs: np.ndarray, ys: np.ndarray, classes: np.ndarray | None, gid: str, **style: Any) -> None:
    """Points with one marker per precision class (circles when there are no classes); each collection's gid
    is `gid` or `gid:<class>`, so the drawn points can be told apart."""
    if classes is None:
        ax.scatter(xs, ys, marker="o", gid=gid, **style)
        return
    for name, (marker, _) in PRECISIONS.items():
        chosen = classes == name
        if chosen.any():
            ax.scatter(xs[chosen], ys[chosen], marker=marker, gid=f"{gid}:{name}", **style)


# ---------------------------------------------------------------------------------------------------- panels

@dataclass(frozen=True)
class _PanelData:
    """What one panel draws: every evaluated row, the device's front, its constraints, the exported numbers,
    the precision classes of both frames (None: an FP32 run), whether the front is a staircase."""

    results: pd.DataFrame
    front: pd.DataFrame
    constraints: Sequence[Constraint]
    marks: Sequence[int]
    classes: np.ndarray | None
    front_classes: np.ndarray | None
    staircase: bool


def _legend_handles(data: _PanelData, feasible: np.ndarray, has_stars: bool) -> list[Any]:
    """Legend entries: evaluated and infeasible rows, the front, the export, the precision classes with counts."""
    from matplotlib.lines import Line2D

    what = "evaluated" if feasible.all() else "evaluated, feasible"
    handles = [Line2D([], [], ls="none", marker="o", ms=4, color="0.65", label=f"{what} ({int(feasible.sum())})")]
    if (~feasible).any():
        handles.append(Line2D([], [], ls="none", marker="x", ms=4, color="0.75",
                              label=f"infeasible ({int((~feasible).sum())})"))
    if len(data.front):
        handles.append(Line2D([], [], ls="-" if data.staircase else "none", lw=1.2, marker="o", ms=4,
                              color="tab:red", label=f"Pareto front ({len(data.front)})"))
    if has_stars:
        handles.append(Line2D([], [], ls="none", marker="*", ms=11, mfc="gold", mec="k", label="exported"))
    if data.classes is not None:
        for name, (marker, text) in PRECISIONS.items():
            count = int((data.classes == name).sum())
            if count:
                handles.append(Line2D([], [], ls="none", marker=marker, ms=5, color="0.35", label=f"{text} ({count})"))
    return handles


def _draw_panel(ax: Any, x_axis: Axis, y_axis: Axis, data: _PanelData) -> list[Label]:
    """Draw one panel (everything but the point numbers) and return the labels to place once the layout is final."""
    from matplotlib.lines import Line2D

    results, f = data.results, data.front
    xs, ys = x_axis.values(results), y_axis.values(results)
    ok = frame_feasible(results, data.constraints)
    classes = data.classes
    _scatter(ax, xs[ok], ys[ok], None if classes is None else classes[ok], "evaluated", s=12, c="0.65", zorder=1)
    if (~ok).any():
        ax.scatter(xs[~ok], ys[~ok], s=14, c="0.75", marker="x", zorder=1, gid="infeasible")
    fx, fy = (x_axis.values(f), y_axis.values(f)) if len(f) else (np.zeros(0), np.zeros(0))
    if len(f) and data.staircase:
        # The staircase joins the points not dominated in the two plotted coordinates.
        flat = pareto_mask(np.column_stack([fx * (-1 if x_axis.maximise else 1), fy * (-1 if y_axis.maximise else 1)]))
        order = np.argsort(fx[flat], kind="stable")
        ax.step(fx[flat][order], fy[flat][order], where="pre" if x_axis.maximise else "post", c="tab:red", lw=1.2,
                zorder=2)
    if len(f):
        _scatter(ax, fx, fy, data.front_classes, "front", s=24, c="tab:red", zorder=3)
    numbers = evaluation_numbers(results)
    stars = [Label(int(n), float(x), float(y), star=True)
             for n in data.marks for x, y in zip(xs[numbers == n][:1], ys[numbers == n][:1])]
    if stars:
        ax.scatter([s.x for s in stars], [s.y for s in stars], s=STAR_SIZE, marker="*", c="gold", edgecolors="k",
                   linewidths=0.8, zorder=5, gid="exported")
    handles = _legend_handles(data, ok, bool(stars))
    for value, text in x_axis.bounds(data.constraints):
        ax.axvline(value, ls="--", c="k", lw=0.8)
        handles.append(Line2D([], [], ls="--", c="k", lw=0.8, label=text))
    for value, text in y_axis.bounds(data.constraints):
        ax.axhline(value, ls="--", c="k", lw=0.8)
        handles.append(Line2D([], [], ls="--", c="k", lw=0.8, label=text))
    _style_panel_axes(ax, x_axis, y_axis, xs, ys)
    ax.grid(alpha=0.3)
    # beside the panel, never over a point (it would hide the front or the star)
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, fontsize=7)
    return [*stars, *front_labels(evaluation_numbers(f), fx, fy, stars)]


def _style_panel_axes(ax: Any, x_axis: Axis, y_axis: Axis, xs: np.ndarray, ys: np.ndarray) -> None:
    """Axis titles and ticks: log/linear by spread for columns, plain ticks for accuracy and evaluation numbers."""
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    for axis, values, quantity, set_scale in ((ax.xaxis, xs, x_axis, ax.set_xscale),
                                              (ax.yaxis, ys, y_axis, ax.set_yscale)):
        if quantity.kind == "column":
            style_axis(axis, values, set_scale)
        else:
            axis.set_major_locator(MaxNLocator(nbins=6, integer=quantity.kind == "number"))
            axis.set_major_formatter(FuncFormatter(tick_label))
    ax.set_xlabel(x_axis.label, fontsize=9)
    ax.set_ylabel(y_axis.label, fontsize=9)


@dataclass(frozen=True)
class _PanelSpec:
    """One panel of pareto.png: a front (`device`, its objectives `group`) seen on two of its objectives
    (`pair`, None: the front's own two, with a staircase) at grid cell (`row`, `col`)."""

    device: str
    group: list[Objective]
    pair: tuple[Objective, Objective] | None
    row: int
    col: int


def _panel_specs(groups: Sequence[tuple[str, list[Objective]]]) -> tuple[list[_PanelSpec], int, int]:
    """(specs, rows, cols): one panel per front of 1-2 objectives, side by side; a front of 3+ objectives gets one
    panel per pair of its objectives, at most 3 to a row, each front starting a new row."""
    if all(len(group) <= 2 for _, group in groups):
        return [_PanelSpec(d, group, None, 0, i) for i, (d, group) in enumerate(groups)], 1, max(1, len(groups))
    cols = min(3, max(len(group) * (len(group) - 1) // 2 for _, group in groups))
    specs, row = [], 0
    for device, group in groups:
        pairs = list(itertools.combinations(group, 2)) if len(group) > 2 else [None]
        for i, pair in enumerate(pairs):
            specs.append(_PanelSpec(device, group, pair, row + i // cols, i % cols))
        row += math.ceil(len(pairs) / cols)
    return specs, row, cols


def _panel_title(spec: _PanelSpec, x_axis: Axis, y_axis: Axis) -> str:
    """What a panel shows: the front, and for a front of 3+ objectives which pair is projected, without staircase."""
    title = f"Pareto front on {spec.device}" if spec.device else "Pareto front"
    names = ", ".join(o.column for o in spec.group)
    if spec.pair is None:
        return f"{title}: {names}"
    shown = " and ".join(o.column for o in spec.pair)
    return (f"{title} over all {len(spec.group)} objectives ({names}):\n"
            f"this panel: {shown}; red: the whole front, projected (no staircase)")


def plot_pareto(results: pd.DataFrame, pareto: pd.DataFrame, objectives: Sequence[Objective], path: Path,
                constraints: Sequence[Constraint] = (), chosen: Any = None, engine_accuracy: bool = True) -> None:
    """Write pareto.png (`pareto_figure`) atomically to `path`."""
    fig = pareto_figure(results, pareto, objectives, constraints, chosen, engine_accuracy)
    save_png(fig, path)


def pareto_figure(results: pd.DataFrame, pareto: pd.DataFrame, objectives: Sequence[Objective],
                  constraints: Sequence[Constraint] = (), chosen: Any = None, engine_accuracy: bool = True) -> Any:
    """The pareto.png figure. A front of 1-2 objectives gets one panel: every evaluated row in grey (infeasible ones
    as x), the front in red as a staircase, constraint bounds dashed. A front of 3+ objectives gets one panel per
    pair of its objectives, the whole front in red on each and no staircase (a projection is none). The `chosen`
    (exported) subnets are gold stars with their number beside them; front points are numbered where the
    numbers do not collide (`place_labels`); an INT8 run marks each subnet by how many of its layers run INT8
    (`precision_classes`). `engine_accuracy`: accuracy/error are the engine's top-1 metric (`plot_axes`).
    A matplotlib Figure on an Agg canvas (no pyplot: the user's backend is kept)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    specs, rows, cols = _panel_specs(front_groups(objectives))
    fig = Figure(figsize=(7.6 * cols, 4.6 * rows), dpi=PNG_DPI)
    FigureCanvasAgg(fig)
    grid = fig.subplots(rows, cols, squeeze=False)
    devices = pareto["device"].fillna("").astype(str) if "device" in pareto.columns else pd.Series(dtype=str)
    classes = precision_classes(results)
    pending = []
    for spec in specs:
        ax = grid[spec.row][spec.col]
        x_axis, y_axis, _ = plot_axes(list(spec.pair or spec.group), list(results.columns), engine_accuracy)
        f = pareto[(devices == spec.device).to_numpy()] if len(pareto) else pareto
        marks = [n for n in _chosen_numbers(chosen, spec.device) if (evaluation_numbers(results) == n).any()]
        data = _PanelData(results, f, group_constraints(constraints, spec.device), marks, classes,
                          precision_classes(f) if classes is not None and len(f) else None, spec.pair is None)
        pending.append((ax, _draw_panel(ax, x_axis, y_axis, data)))
        ax.set_title(_panel_title(spec, x_axis, y_axis), fontsize=9)
    used = {(s.row, s.col) for s in specs}
    for r, c in itertools.product(range(rows), range(cols)):
        if (r, c) not in used:
            grid[r][c].remove()
    fig.tight_layout()
    for ax, labels in pending:
        place_labels(ax, labels)
    return fig


# ------------------------------------------------------------------------------------------------- hypervolume

def hypervolume_label(trace: pd.DataFrame, m: int) -> tuple[str, str]:
    """(y-axis title, title lines) saying what the hypervolume is measured on: each objective scaled from ideal
    (0) to nadir (1), where ideal and nadir are this run's best and worst (not comparable across runs; at most
    reference ** m) or fixed by --hv-reference (comparable between runs of equal `reference_id`; a subnet beyond
    the fixed ideal may take it above reference ** m)."""
    if trace.empty:
        return "hypervolume", "no evaluation yet"
    reference = float(trace["reference"].iloc[0])
    where = f"reference point at ideal + {reference:g} x (nadir - ideal) on each objective\n"
    fixed = "normalisation" in trace.columns and str(trace["normalisation"].iloc[0]) == "fixed"
    if fixed:
        rid = str(trace["reference_id"].iloc[0]) if "reference_id" in trace.columns else ""
        return (f"hypervolume, objectives scaled to the fixed\n[ideal, nadir] (reference id {rid})",
                f"{where}comparable with runs of the same reference; {reference ** m:.3g} = a subnet at the ideal")
    return ("hypervolume, objectives scaled to\nthis run's [best, worst] values",
            f"{where}at most {reference ** m:.3g} (a subnet best on every objective); not comparable across runs")


def hypervolume_figure(curve: np.ndarray, trace: pd.DataFrame, objectives: Sequence[Objective]) -> Any:
    """The hypervolume.png figure: HV of the feasible rows after each evaluation, with a marker at the end of each
    round, its axis saying which scale it is on (`hypervolume_label`)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    fig = Figure(figsize=(6.4, 4.2), dpi=PNG_DPI)
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    if len(curve):
        ax.step(np.arange(1, len(curve) + 1), curve, where="post", c="tab:blue", lw=1.2, label="after each evaluation")
    if len(trace):
        ax.scatter(trace["evaluations"], trace["hypervolume"], s=16, c="tab:blue", zorder=3, label="end of a round")
    ylabel, scale = hypervolume_label(trace, len(objectives))
    ax.set_xlabel("evaluations", fontsize=9)
    ax.set_ylabel(ylabel, fontsize=8)
    ax.set_title(f"hypervolume of the feasible evaluations: {', '.join(o.column for o in objectives)}\n{scale}",
                 fontsize=7)
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_locator(MaxNLocator(nbins=6, integer=axis is ax.xaxis))
        axis.set_major_formatter(FuncFormatter(tick_label))
    ax.grid(alpha=0.3)
    if len(curve):
        ax.legend(loc="lower right", fontsize=7)
    fig.tight_layout()
    return fig


def plot_hypervolume(curve: np.ndarray, trace: pd.DataFrame, objectives: Sequence[Objective], path: Path) -> None:
    """Write hypervolume.png (`hypervolume_figure`) atomically to `path`."""
    save_png(hypervolume_figure(curve, trace, objectives), path)
