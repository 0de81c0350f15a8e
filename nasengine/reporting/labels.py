"""Numbers beside the points of a Pareto panel that never overlap: each label takes the first free spot around its
point (inside the axes, clear of other labels and markers) once the layout is final; the exported subnet's number
goes first, beside its star, then the front's ends, then the rest spread along the front; a number with no free
spot is left off."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

# label offsets around a point (points: dx, dy), each clear of the point's own marker; the text is anchored on
# the side facing the point
_OFFSETS = ((4, 4), (4, -4), (-4, 4), (-4, -4), (0, 7), (0, -7), (8, 0), (-8, 0), (6, 10), (-6, -10))
_STAR_OFFSETS = ((9, 6), (9, -6), (-9, 6), (-9, -6), (0, 11), (0, -11), (12, 0), (-12, 0))
STAR_SIZE = 190  # points^2: a radius of about 7 points
_POINT_RADIUS, _STAR_RADIUS = 2.6, 7.0  # points


@dataclass
class Label:
    """A number to write next to a point: `star` for an exported subnet (drawn above its star), `keep` for a
    label that is placed even when every spot collides (the front's extreme points)."""

    number: int
    x: float
    y: float
    star: bool = False
    keep: bool = False


def _anchor(dx: float, dy: float) -> tuple[str, str]:
    """(ha, va) so that the text grows away from its point."""
    return ("left" if dx > 0 else "right" if dx < 0 else "center"), ("bottom" if dy > 0 else "top" if dy < 0
                                                                    else "center")


def _collides(box: Any, taken: list[np.ndarray], margin: float) -> bool:
    """Whether `box` (a Bbox), grown by `margin` pixels, meets any of the `taken` boxes ([x0, y0, x1, y1])."""
    if not taken:
        return False
    boxes = np.asarray(taken)
    return bool(np.any((boxes[:, 0] <= box.x1 + margin) & (box.x0 - margin <= boxes[:, 2])
                       & (boxes[:, 1] <= box.y1 + margin) & (box.y0 - margin <= boxes[:, 3])))


def _spread_order(n: int) -> list[int]:
    """0..n-1 in an order that spreads over the range: the ends, the middle, the quarters, ...: labels placed in
    this order cover the whole front before they fill in its dense parts."""
    if n <= 2:
        return list(range(n))
    order, spans = [0, n - 1], [(0, n - 1)]
    while spans:
        lo, hi = spans.pop(0)
        mid = (lo + hi) // 2
        if lo < mid < hi:
            order.append(mid)
            spans += [(lo, mid), (mid, hi)]
    return order


def _marker_boxes(ax: Any, labels: Sequence[Label], radius_pt: float) -> list[np.ndarray]:
    """Display-space boxes of markers of `radius_pt` points at the labels' points."""
    if not labels:
        return []
    r = radius_pt * ax.figure.dpi / 72.0
    centres = ax.transData.transform(np.array([[lab.x, lab.y] for lab in labels], dtype=float))
    return [np.array([cx - r, cy - r, cx + r, cy + r]) for cx, cy in centres if np.isfinite([cx, cy]).all()]


def _move(text: Any, offset: tuple[float, float], renderer: Any) -> Any:
    """Put an annotation at `offset` points from its point, anchored away from it; returns its display box."""
    ha, va = _anchor(*offset)
    text.xyann = offset
    text.set_horizontalalignment(ha)
    text.set_verticalalignment(va)
    return text.get_window_extent(renderer)


def _label_style(label: Label) -> dict[str, Any]:
    """Exported subnets' numbers bold, above their star (zorder 7 > 5) on a light box; front numbers small, red."""
    if label.star:
        return dict(fontsize=7, fontweight="bold", color="k", zorder=7, gid="exported-label",
                    bbox=dict(boxstyle="round,pad=0.1", fc="white", ec="none", alpha=0.85))
    return dict(fontsize=6, color="tab:red", zorder=4, gid="front-label")


def _place(ax: Any, label: Label, obstacles: list[np.ndarray], placed: list[np.ndarray], renderer: Any) -> bool:
    """Write `label` at the first offset where it stays inside the axes and meets no placed label and no marker;
    a `keep` or star label settles for meeting no label, then for its first offset. Returns whether it was
    written; its box joins `placed`."""
    offsets = _STAR_OFFSETS if label.star else _OFFSETS
    text = ax.annotate(str(label.number), (label.x, label.y), xytext=offsets[0], textcoords="offset points",
                       annotation_clip=False, **_label_style(label))
    inside = ax.get_window_extent(renderer)
    must = label.keep or label.star
    for taken in ([placed + obstacles, placed] if must else [placed + obstacles]):
        for offset in offsets:
            box = _move(text, offset, renderer)
            within = inside.x0 <= box.x0 and box.x1 <= inside.x1 and inside.y0 <= box.y0 and box.y1 <= inside.y1
            if within and not _collides(box, taken, 1.5):
                placed.append(np.array([box.x0, box.y0, box.x1, box.y1]))
                return True
    if not must:
        text.remove()
        return False
    box = _move(text, offsets[0], renderer)
    placed.append(np.array([box.x0, box.y0, box.x1, box.y1]))
    return True


def place_labels(ax: Any, labels: Sequence[Label]) -> list[Any]:
    """Number the points of `labels` without two numbers overlapping: exported subnets first (bold, beside and
    above their star), then the front's extreme points, then the others in an order spread over the front,
    each at the first free spot around its point or not at all. Call once the layout is final. Returns the
    texts written."""
    renderer = ax.figure.canvas.get_renderer()
    ax.get_xlim(), ax.get_ylim()  # settle the view limits: boxes are measured in display space
    obstacles = _marker_boxes(ax, [lab for lab in labels if lab.star], _STAR_RADIUS)
    obstacles += _marker_boxes(ax, [lab for lab in labels if not lab.star], _POINT_RADIUS)
    stars = [lab for lab in labels if lab.star]
    kept = [lab for lab in labels if lab.keep and not lab.star]
    rest = [lab for lab in labels if not lab.keep and not lab.star]
    rest = [rest[i] for i in _spread_order(len(rest))]
    placed: list[np.ndarray] = []
    before = len(ax.texts)
    for label in [*stars, *kept, *rest]:
        _place(ax, label, obstacles, placed, renderer)
    return list(ax.texts[before:])


def front_labels(numbers: np.ndarray, xs: np.ndarray, ys: np.ndarray, stars: Sequence[Label]) -> list[Label]:
    """Labels of the front points, in x order, the extreme ones (lowest and highest x and y) kept; a starred
    point is labelled by its star instead."""
    finite = np.isfinite(xs) & np.isfinite(ys)
    starred = {lab.number for lab in stars}
    extremes: set[int] = set()
    if finite.any():
        index = np.flatnonzero(finite)
        extremes = {int(index[np.argmin(v[finite])]) for v in (xs, ys)} | \
            {int(index[np.argmax(v[finite])]) for v in (xs, ys)}
    order = np.argsort(np.where(finite, xs, np.inf), kind="stable")
    return [Label(int(numbers[i]), float(xs[i]), float(ys[i]), keep=int(i) in extremes)
            for i in order if finite[i] and int(numbers[i]) not in starred]
