"""Which archs an audit trains alone: spread over the cost range, the smallest and largest included."""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

from nasengine.search_spaces.samplers import sample_unique
from nasengine.search_spaces.space import Arch, Space

CANDIDATES_PER_PICK = 40


def spread_archs(space: Space, cost: Callable[[Arch], float], k: int, seed: int = 0) -> list[Arch]:
    """`k` distinct archs: the smallest, the largest, and between them the uniform samples nearest to evenly
    spaced points of log cost (uniform samples alone crowd the middle of the range, where ranking is easiest).
    Returned in cost order."""
    if k < 2:
        raise ValueError(f"an audit needs at least 2 archs, got {k}")
    pool = sample_unique(space, k * CANDIDATES_PER_PICK, seed=seed, include_extremes=True)
    if len(pool) <= k:
        return sorted(pool, key=cost)
    costs = np.array([math.log(max(cost(a), 1e-12)) for a in pool])
    chosen = {int(np.argmin(costs)), int(np.argmax(costs))}
    for target in np.linspace(costs.min(), costs.max(), k)[1:-1]:
        order = np.argsort(np.abs(costs - target), kind="stable")
        chosen.add(int(next(i for i in order if int(i) not in chosen)))
    while len(chosen) < k:  # ties in cost: fill from the rest in draw order
        chosen.add(next(i for i in range(len(pool)) if i not in chosen))
    return sorted((pool[i] for i in chosen), key=cost)


def spread_order(n: int) -> list[int]:
    """Indices 0..n-1 in an order whose every prefix spans the range: both ends, then repeated bisection (an
    audit stopped early by its time budget still covers small, large and middle archs)."""
    if n <= 2:
        return list(range(n))
    order, seen = [0, n - 1], {0, n - 1}
    intervals = [(0, n - 1)]
    while intervals:
        next_intervals = []
        for lo, hi in intervals:
            mid = (lo + hi) // 2
            if mid not in seen:
                seen.add(mid)
                order.append(mid)
            if mid - lo > 1:
                next_intervals.append((lo, mid))
            if hi - mid > 1:
                next_intervals.append((mid, hi))
        intervals = next_intervals
    order += [i for i in range(n) if i not in seen]
    return order
