"""Robust Bayesian linear head: posterior-mean weights on k support points, noise by marginal likelihood."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

NOISE_GRID = np.logspace(-3, 1, 25)


@dataclass(frozen=True)
class HeadFit:
    """Posterior mean weights over the basis columns, the chosen noise variance and the per-point robust weights."""

    weights: np.ndarray
    noise: float
    point_weights: np.ndarray


def _log_evidence(K: np.ndarray, y: np.ndarray) -> float:
    """Gaussian log marginal likelihood (up to a constant) of y under covariance K."""
    try:
        c = np.linalg.cholesky(K)
    except np.linalg.LinAlgError:
        return -np.inf
    v = np.linalg.solve(c, y)
    return float(-0.5 * v @ v - np.log(np.diag(c)).sum())


def fit_head(P: np.ndarray, y: np.ndarray, nu: float | None = 4.0, iters: int = 5) -> HeadFit:
    """Fit y ~ P w + eps with w ~ N(0, I); the noise variance maximizes the evidence on a grid and, when nu is
    set, Student-t noise (nu dof) is approximated by reweighting points on their leave-one-out residuals, so a
    single outlier measurement cannot drag the whole fit."""
    P = np.asarray(P, float)
    y = np.asarray(y, float)
    k = len(y)
    K0 = P @ P.T
    pw = np.ones(k)
    noise = float(NOISE_GRID[len(NOISE_GRID) // 2])
    for _ in range(iters if nu else 1):
        scores = [_log_evidence(K0 + np.diag(s2 / pw), y) for s2 in NOISE_GRID]
        noise = float(NOISE_GRID[int(np.argmax(scores))])
        if not nu or k < 4:
            break
        Ki = np.linalg.inv(K0 + np.diag(noise / pw))
        loo = (Ki @ y) / np.diag(Ki)
        pw = np.clip((nu + 1.0) / (nu + loo**2 / noise), 1e-3, None)
    alpha = np.linalg.solve(K0 + np.diag(noise / pw), y)
    return HeadFit(P.T @ alpha, noise, pw)


@dataclass(frozen=True)
class TargetFit:
    """A head fitted to one device, with the affine map from standardized units back to log-ms."""

    head: HeadFit
    center: float
    scale: float


def fit_target(
    P: np.ndarray, prior: np.ndarray, y_log: np.ndarray, fallback_scale: float, nu: float | None = 4.0
) -> TargetFit:
    """Standardize the measured log-latencies (median, sd; fallback sd when the support cannot tell), subtract
    the prior mean and fit the robust head on the rest."""
    y_log = np.asarray(y_log, float)
    center = float(np.median(y_log))
    sd = float(np.std(y_log)) if y_log.size >= 2 else 0.0
    scale = sd if sd > 1e-9 * max(1.0, abs(center)) else float(fallback_scale)
    head = fit_head(P, (y_log - center) / scale - prior, nu=nu)
    return TargetFit(head, center, scale)
