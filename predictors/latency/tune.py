"""Meta-learning of the basis hyperparameters by simulated few-shot episodes on the source devices."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nasengine.predictors.latency.basis import assemble, prior_groups, prior_mean
from nasengine.predictors.latency.design import greedy_d_optimal
from nasengine.predictors.latency.head import fit_target
from nasengine.predictors.metrics import spearman_rho


def mean_stats(Zr: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """Mean and sd of the average predicted source device, and the average slope of each measured device on it."""
    m = Zr.mean(1)
    mu, sd = float(m.mean()), float(m.std()) or 1.0
    mt = (m - mu) / sd
    slopes = []
    for j in range(Y.shape[1]):
        ok = ~np.isnan(Y[:, j])
        if ok.sum() >= 3:
            slopes.append(float(np.mean(Y[ok, j] * (mt[ok] - mt[ok].mean())) / max(np.var(mt[ok]), 1e-12)))
    return np.array([mu, sd, float(np.mean(slopes)) if slopes else 0.0])


@dataclass(frozen=True)
class Episodes:
    """How tuning episodes are drawn: support sizes `ks`, at most `max_devices` source devices each playing the new
    one, at most `max_pool` of its architectures ranked, the robust head's Student-t `nu` and the support design's
    noise variance."""

    ks: tuple[int, ...] = (10, 20)
    max_devices: int = 12
    max_pool: int = 2000
    nu: float | None = 4.0
    design_noise: float = 1.0


def episode_scores(F: np.ndarray, Zr: np.ndarray, Za: np.ndarray | None, Y: np.ndarray,
                   grid: list[tuple[float, float]], seed: int, episodes: Episodes = Episodes(),
                   D: np.ndarray | None = None) -> np.ndarray:
    """Mean Spearman rho of each (enc_weight, exact_weight) in grid when each of up to max_devices source devices
    in turn plays the new device: basis from the others, D-optimal support of size k, robust head, rank its pool."""
    ks, max_devices, max_pool, nu = episodes.ks, episodes.max_devices, episodes.max_pool, episodes.nu
    S = Y.shape[1]
    rng = np.random.default_rng(seed)
    scores: list[list[float]] = [[] for _ in grid]
    for j in rng.permutation(S)[:max_devices]:
        rows = np.flatnonzero(~np.isnan(Y[:, j]))
        if rows.size < 8:
            continue
        pool = np.sort(rng.choice(rows, min(rows.size, max_pool), replace=False))
        others = np.array([i for i in range(S) if i != j])
        st = mean_stats(Zr[:, others], Y[:, others])
        zr = Zr[pool][:, others]
        za = None if Za is None else Za[pool][:, others]
        m = prior_mean(zr, st)
        y = Y[pool, j]
        for g, (enc_w, exact_w) in enumerate(grid):
            P = assemble(F[pool], zr, za, enc_w, exact_w, None if D is None else D[pool])
            groups = prior_groups(P.shape[1], zr.shape[1], 0 if D is None else D.shape[1])
            for k in ks:
                if k > pool.size // 2:
                    continue
                idx = greedy_d_optimal(P, k, noise=episodes.design_noise, seed=seed)
                fit = fit_target(P[idx], m[idx], y[idx], 1.0, nu, groups)
                pred = fit.predict_standardized(P, m)
                scores[g].append(spearman_rho(y, pred))
    return np.array([np.mean(s) if s else np.nan for s in scores])


def choose(grid: list[tuple[float, float]], scores: np.ndarray, tol: float = 1e-3) -> tuple[float, float]:
    """Best-scoring grid entry; among those within tol of the best, the earliest (grid is ordered simple-first)."""
    if np.all(np.isnan(scores)):
        return grid[0]
    best = np.nanmax(scores)
    for g, s in zip(grid, scores):
        if not np.isnan(s) and s >= best - tol:
            return g
    return grid[0]
