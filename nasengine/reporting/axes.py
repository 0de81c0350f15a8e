"""Plot axes of the search reports: which quantity each axis shows (an objective, the engine's top-1 accuracy,
the evaluation number), its label, its scale and its ticks, and writing a figure to PNG."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from nasengine.reporting.fronts import ACCURACY_COLUMNS, _column
from nasengine.searching.objectives import MAXIMIZE, MINIMIZE, Constraint, Objective
from nasengine.search_spaces.storage import atomic_file


PNG_DPI = 110


def save_png(fig: Any, path: Path) -> None:
    """Write a figure as PNG atomically (a half-written picture never replaces a good one)."""
    with atomic_file(Path(path)) as tmp:
        fig.savefig(tmp, dpi=PNG_DPI, format="png")


def tick_label(value: float, _pos: Any = None) -> str:
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


def style_axis(axis: Any, values: np.ndarray, set_scale: Callable[[str], Any]) -> None:
    """Log scale when positive values span more than 10x; a few plain major labels, never minor ones."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, MaxNLocator, NullFormatter

    finite = values[np.isfinite(values)]
    if len(finite) and finite.min() > 0 and finite.max() / finite.min() > 10:
        set_scale("log")
        axis.set_major_locator(FixedLocator(_log_ticks(float(finite.min()), float(finite.max()))))
    else:
        axis.set_major_locator(MaxNLocator(nbins=5))
    axis.set_major_formatter(FuncFormatter(tick_label))
    axis.set_minor_formatter(NullFormatter())


def _axis_label(o: Objective, engine: bool = True) -> str:
    """An objective's axis title and which way is better: the engine's label (latency as a median, named by
    device) for a supernet run; the objective's own column name for a Python-API run, whose values are the
    user's and may mean anything."""
    arrow = "lower is better" if o.direction == MINIMIZE else "higher is better"
    if not engine:
        return f"{o.column} ({arrow})"
    base = o.column.partition(":")[0] if o.device else o.column
    text = o.label or base
    if base == "latency_ms":
        text = f"median {text}"
    return f"{text} on {o.device} ({arrow})" if o.device else f"{text} ({arrow})"


class Axis:
    """One plotted quantity: `kind` "column" (a results column, shown as it is), "accuracy" (the engine's top-1
    accuracy in %, from `column`: `accuracy` or `1 - error`; either one for context when None) or "number" (the
    evaluation order)."""

    def __init__(self, label: str, maximise: bool = False, column: str | None = None, kind: str = "column") -> None:
        self.label, self.maximise, self.column, self.kind = label, maximise, column, kind

    def values(self, frame: pd.DataFrame) -> np.ndarray:
        """This quantity for every line of `frame`, as plotted."""
        if self.kind == "number":
            return evaluation_numbers(frame).astype(float)
        if self.kind == "column":
            return _column(frame, str(self.column))
        source = self.column or next((c for c in ACCURACY_COLUMNS if c in frame.columns), None)
        if source == "accuracy":
            return 100.0 * _column(frame, "accuracy")
        if source == "error":
            return 100.0 * (1.0 - _column(frame, "error"))
        return np.full(len(frame), np.nan)

    def bounds(self, constraints: Sequence[Constraint]) -> list[tuple[float, str]]:
        """Where the constraints on this quantity draw a line, in plotted units."""
        lines = []
        for c in constraints:
            if self.kind == "column" and c.column == self.column:
                lines.append((c.bound, str(c)))
            elif self.kind == "accuracy" and c.column == "accuracy":
                lines.append((100.0 * c.bound, str(c)))
            elif self.kind == "accuracy" and c.column == "error":
                lines.append((100.0 * (1.0 - c.bound), str(c)))
        return lines


def _accuracy_axis(column: str | None = None) -> Axis:
    """The engine's top-1 accuracy in %, from objective `column` (accuracy or error; None: whichever is recorded)."""
    return Axis("top-1 accuracy (%, search split; higher is better)", True, column, kind="accuracy")


def _number_axis() -> Axis:
    return Axis("evaluation number", kind="number")


def _objective_axis(o: Objective, engine: bool) -> Axis:
    """The axis of objective `o`: the engine's accuracy/error as top-1 accuracy in %, anything else as it is."""
    if engine and o.column in ACCURACY_COLUMNS:
        return _accuracy_axis(o.column)
    return Axis(_axis_label(o, engine), o.direction == MAXIMIZE, o.column)


def _context_axis(results_columns: Sequence[str], engine: bool) -> Axis | None:
    """A non-objective accuracy to show a one-objective front against: the engine's top-1 accuracy, or a
    Python-API run's recorded `accuracy`/`error` column under its own name; None when there is none."""
    column = next((c for c in ACCURACY_COLUMNS if c in results_columns), None)
    if column is None:
        return None
    return _accuracy_axis() if engine else Axis(f"{column} (recorded, not an objective)", column=column)


def plot_axes(group: Sequence[Objective], results_columns: Sequence[str] = (),
              engine_accuracy: bool = True) -> tuple[Axis, Axis, bool]:
    """(x, y, partial) for a front over `group`. x: the first objective not named accuracy/error, whatever its
    direction; y: the accuracy/error objective, else the next objective (with one objective: a recorded accuracy
    for context, else the evaluation number). `engine_accuracy` (a supernet run): accuracy/error are drawn as
    top-1 accuracy in %; otherwise every objective is drawn with its own values and name. Each axis shows
    exactly the quantity its label names. `partial`: the front has objectives that are not shown."""
    acc = next((o for o in group if o.column in ACCURACY_COLUMNS), None)
    others = [o for o in group if o is not acc]
    if not others:  # a one-objective front of accuracy/error: show it against the evaluation order
        return _number_axis(), _objective_axis(acc, engine_accuracy) if acc else _number_axis(), False
    x = _objective_axis(others[0], engine_accuracy)
    if acc is not None:
        y = _objective_axis(acc, engine_accuracy)
    elif len(others) > 1:
        y = _objective_axis(others[1], engine_accuracy)
    else:
        y = _context_axis(results_columns, engine_accuracy) or _number_axis()
    shown = 1 + (acc is not None or len(others) > 1)
    return x, y, len(group) > shown


def evaluation_numbers(frame: pd.DataFrame) -> np.ndarray:
    """Each line's evaluation `number` (its position when a hand-made frame has none)."""
    if "number" in frame.columns:
        return pd.to_numeric(frame["number"], errors="coerce").fillna(-1).to_numpy(dtype=int)
    return np.arange(len(frame))
