"""Support selection: greedy Bayesian D-optimal design in the predictor's own basis."""

from __future__ import annotations

import numpy as np


def greedy_d_optimal(P: np.ndarray, k: int, noise: float = 0.1, seed: int = 0) -> np.ndarray:
    """Pick k distinct rows of P one at a time, each the one whose prediction is most uncertain given those
    already picked (w ~ N(0, I), y = P w + noise); this maximizes the information gained about the head."""
    P = np.asarray(P, float)
    n, p = P.shape
    if not 1 <= k <= n:
        raise ValueError(f"k must be between 1 and the pool size {n}; got {k}")
    jitter = np.random.default_rng(seed).random(n) * 1e-9
    var = (P**2).sum(1)
    A = np.eye(p)
    chosen: list[int] = []
    taken = np.zeros(n, bool)
    for _ in range(k):
        score = np.where(taken, -np.inf, var + jitter)
        j = int(np.argmax(score))
        chosen.append(j)
        taken[j] = True
        a = A @ P[j]
        denom = noise + float(P[j] @ a)
        var = var - (P @ a) ** 2 / denom
        A = A - np.outer(a, a) / denom
    return np.asarray(chosen, dtype=np.int64)
