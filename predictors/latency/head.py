"""Robust Bayesian linear head: posterior-mean weights on k support points; the noise, the prior scale of column
groups and whether to keep the sources' prior mean are all chosen by marginal likelihood."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Sequence

import numpy as np

NOISE_GRID = np.logspace(-3, 1, 25)


@dataclass(frozen=True)
class PriorGroup:
    """Basis columns whose prior variance multiplier the evidence picks from `scales` (the first is the default,
    kept on ties)."""

    columns: slice
    scales: tuple[float, ...]


@dataclass(frozen=True)
class HeadFit:
    """Posterior mean weights over the basis columns, the chosen noise variance, the per-point robust weights,
    the multiplier kept on the prior mean (0 or 1) and the chosen scale of each prior group."""

    weights: np.ndarray
    noise: float
    point_weights: np.ndarray
    mean_weight: float = 1.0
    scales: tuple[float, ...] = ()


def _evidence_over_noise(A: np.ndarray, y: np.ndarray, pw: np.ndarray) -> np.ndarray:
    """Gaussian log marginal likelihood (up to a constant) of y under A + s2 diag(1/pw) for every s2 of NOISE_GRID,
    from one eigendecomposition of diag(pw)^1/2 A diag(pw)^1/2."""
    r = np.sqrt(pw)
    lam, U = np.linalg.eigh(A * r[:, None] * r[None, :])
    z2 = (U.T @ (r * y)) ** 2
    total = np.clip(lam, 0.0, None)[None, :] + NOISE_GRID[:, None]
    return -0.5 * (z2[None, :] / total).sum(1) - 0.5 * np.log(total).sum(1)


def fit_head(P: np.ndarray, y: np.ndarray, prior_mean: np.ndarray | None = None, nu: float | None = 4.0,
             iters: int = 5, groups: Sequence[PriorGroup] = ()) -> HeadFit:
    """Fit y ~ c * prior_mean + P w + eps with w ~ N(0, diag(v)): v is 1 except on each group's columns, where it is
    one of the group's scales; c is 1 or 0. The evidence picks c, the scales and the noise variance, so a device
    unlike every source can drop the sources' prior and lean on other columns (the cost descriptors) while a
    familiar one keeps it. When nu is set, Student-t noise (nu dof) is approximated by reweighting points on their
    leave-one-out residuals, so a single outlier measurement cannot drag the whole fit."""
    P = np.asarray(P, float)
    y = np.asarray(y, float)
    k, p = P.shape
    m = np.zeros(k) if prior_mean is None else np.asarray(prior_mean, float)
    live = [g for g in groups if P[:, g.columns].shape[1] > 0]
    variances = []
    for choice in itertools.product(*(g.scales for g in live)):
        v = np.ones(p)
        for g, s in zip(live, choice):
            v[g.columns] = s
        variances.append((choice, v, (P * v) @ P.T))
    # dropping the prior mean needs evidence: at least 3 points that differ (else the fit would rank nothing)
    means = (1.0, 0.0) if prior_mean is not None and k >= 3 and np.ptp(y) > 0 else (1.0,)
    pw = np.ones(k)
    best = (variances[0], 1.0, float(NOISE_GRID[len(NOISE_GRID) // 2]))
    for _ in range(iters if nu else 1):
        top = -np.inf
        for var in variances:
            for c in means:
                ev = _evidence_over_noise(var[2], y - c * m, pw)
                i = int(np.argmax(ev))
                if ev[i] > top + 1e-9:
                    top, best = float(ev[i]), (var, c, float(NOISE_GRID[i]))
        if not nu or k < 4:
            break
        (_, _, A), c, noise = best
        Ki = np.linalg.inv(A + np.diag(noise / pw))
        loo = (Ki @ (y - c * m)) / np.diag(Ki)
        pw = np.clip((nu + 1.0) / (nu + loo**2 / noise), 1e-3, None)
    (choice, v, A), c, noise = best
    alpha = np.linalg.solve(A + np.diag(noise / pw), y - c * m)
    return HeadFit(v * (P.T @ alpha), noise, pw, c, tuple(float(s) for s in choice))


@dataclass(frozen=True)
class TargetFit:
    """A head fitted to one device, with the affine map from standardized units back to log-ms."""

    head: HeadFit
    center: float
    scale: float

    def predict_standardized(self, P: np.ndarray, prior_mean: np.ndarray) -> np.ndarray:
        """Predictions in the standardized units the head was fitted in."""
        return self.head.mean_weight * prior_mean + P @ self.head.weights


def fit_target(
    P: np.ndarray, prior: np.ndarray, y_log: np.ndarray, fallback_scale: float, nu: float | None = 4.0,
    groups: Sequence[PriorGroup] = (),
) -> TargetFit:
    """Standardize the measured log-latencies (median, sd; fallback sd when the support cannot tell) and fit the
    robust head on them, the prior mean and the prior groups."""
    y_log = np.asarray(y_log, float)
    center = float(np.median(y_log))
    sd = float(np.std(y_log)) if y_log.size >= 2 else 0.0
    scale = sd if sd > 1e-9 * max(1.0, abs(center)) else float(fallback_scale)
    head = fit_head(P, (y_log - center) / scale, prior, nu=nu, groups=groups)
    return TargetFit(head, center, scale)
