"""Meta-learned few-shot latency predictor: learn a basis from many devices, adapt to a new one from k archs."""

from __future__ import annotations

import time
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from nasengine.predictors.latency.adapted import AdaptedLatencyPredictor
from nasengine.predictors.latency.basis import Basis, Descriptors, row_hashes
from nasengine.predictors.latency.design import greedy_d_optimal
from nasengine.predictors.latency.encoder import SourceEncoder
from nasengine.predictors.latency.features import FeatureMap, check_matrix
from nasengine.predictors.latency.head import fit_target
from nasengine.predictors.latency.persist import load_state, save_state
from nasengine.predictors.latency.tune import Episodes, choose, episode_scores, mean_stats

KIND = "MetaLatencyPredictor"


def _small_blas() -> AbstractContextManager:
    """Single-threaded BLAS while we work: our matrices are small, and threaded BLAS on a busy machine was
    measured 17-100x slower on them (threads fight for the cores)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl ships with scikit-learn
        return nullcontext()
    return threadpool_limits(limits=1, user_api="blas")
DEFAULT_GRID = tuple((e, x) for x in (0.0, 0.3) for e in (0.0, 0.1, 0.3, 1.0))  # (enc_weight, exact_weight)
SINGLE_SOURCE = (1.0, 0.0)  # no episodes possible with one source: leave room for off-span devices


def _check_latencies(latencies: Mapping[str, Any], n: int) -> tuple[list[str], np.ndarray]:
    """Device names and an (n, S) log-latency matrix (NaN = not measured), or ValueError."""
    if not isinstance(latencies, Mapping) or len(latencies) == 0:
        raise ValueError("latencies must be a non-empty dict {device_name: array of ms}")
    names, cols = [], []
    for name, values in latencies.items():
        v = np.asarray(values, dtype=float)
        if v.ndim != 1 or v.size != n:
            raise ValueError(f"latencies[{name!r}] has shape {v.shape}; expected ({n},) to match X")
        ok = ~np.isnan(v)
        if np.any(~np.isfinite(v[ok])) or np.any(v[ok] <= 0):
            raise ValueError(f"latencies[{name!r}] must be positive finite ms (NaN = not measured)")
        if ok.sum() < 3:
            raise ValueError(f"latencies[{name!r}] has {int(ok.sum())} measured archs; at least 3 are needed")
        names.append(str(name))
        cols.append(np.log(v))
    return names, np.stack(cols, 1)


class MetaLatencyPredictor:
    """Learns from source devices a basis of latency functions over an encoding and a prior over how a new device
    combines them; adapts to a new device from a handful of measured archs by robust Bayesian regression."""

    def __init__(self, seed: int = 0, nu: float | None = 4.0, mlp: str = "auto", max_levels: int = 16,
                 grid: tuple[tuple[float, float], ...] = DEFAULT_GRID, design_noise: float = 1.0,
                 max_candidates: int = 20000, descriptors: int = 0) -> None:
        """seed fixes every random choice; nu = Student-t dof of the head's noise (None = Gaussian); mlp = whether
        the encoder may add a residual MLP; grid = (enc_weight, exact_weight) pairs meta-learning picks from;
        descriptors = how many trailing columns of every encoding are non-negative cost descriptors
        (kernels.describe.cost_descriptors), which a new device may weigh freely."""
        if mlp not in ("auto", "always", "never"):
            raise ValueError(f"mlp must be 'auto', 'always' or 'never'; got {mlp!r}")
        self.seed = int(seed)
        self.nu = nu
        self.mlp = mlp
        self.max_levels = int(max_levels)
        self.grid = tuple((float(a), float(b)) for a, b in grid)
        self.design_noise = float(design_noise)
        self.max_candidates = int(max_candidates)
        if isinstance(descriptors, bool) or int(descriptors) != descriptors or descriptors < 0:
            raise ValueError(f"descriptors must be a non-negative integer; got {descriptors!r}")
        self.descriptors = int(descriptors)
        self.basis: Basis | None = None
        self.devices: list[str] = []
        self.episode_scores: list[float] = []
        self.fit_seconds = 0.0

    def meta_fit(self, X: np.ndarray, latencies: Mapping[str, Any]) -> "MetaLatencyPredictor":
        """Fit the basis on encodings X (n, d) and source latencies {device: (n,) ms, NaN = not measured}."""
        t0 = time.perf_counter()
        with _small_blas():
            self._meta_fit(check_matrix(X), latencies)
        self.fit_seconds = time.perf_counter() - t0
        return self

    def _meta_fit(self, X: np.ndarray, latencies: Mapping[str, Any]) -> None:
        """Body of meta_fit."""
        if self.descriptors >= X.shape[1]:
            raise ValueError(f"descriptors ({self.descriptors}) must leave encoding columns (X has {X.shape[1]})")
        self.devices, L = _check_latencies(latencies, X.shape[0])
        desc = Descriptors.fit(X, self.descriptors)
        D = desc.transform(X)
        mu, sd = np.nanmean(L, 0), np.nanstd(L, 0)
        Y = (L - mu) / np.where(sd > 1e-12, sd, 1.0)
        fmap = FeatureMap.fit(desc.logged(X), self.max_levels)
        F = fmap.transform(desc.logged(X))
        encoder = SourceEncoder.fit(F, Y, seed=self.seed, mlp=self.mlp)
        Zr = encoder.predict(F)
        Za = np.where(np.isnan(Y), Zr, Y)
        if Y.shape[1] >= 2:
            episodes = Episodes(nu=self.nu, design_noise=self.design_noise)
            scores = episode_scores(F, Zr, Za, Y, list(self.grid), self.seed, episodes, D)
            enc_w, exact_w = choose(list(self.grid), scores)
            self.episode_scores = [float(s) for s in scores]
        else:
            enc_w, exact_w = SINGLE_SOURCE
            self.episode_scores = []
        self.basis = Basis(
            fmap, encoder, mean_stats(Zr, Y), float(np.median(sd)), enc_w, exact_w, desc,
            row_hashes(X) if exact_w > 0 else np.zeros(0, np.uint64),
            Y if exact_w > 0 else np.zeros((0, 0)),
        )

    def _require_fit(self) -> Basis:
        """The fitted basis, or ValueError if meta_fit has not run."""
        if self.basis is None:
            raise ValueError("call meta_fit (or load) before select_support/adapt")
        return self.basis

    def select_support(self, X_pool: np.ndarray, k: int) -> np.ndarray:
        """Indices of k distinct pool archs to measure on a new device (greedy D-optimal in the basis)."""
        basis = self._require_fit()
        X_pool = check_matrix(X_pool, "X_pool", basis.fmap.width)
        if isinstance(k, bool) or int(k) != k or not 1 <= int(k) <= X_pool.shape[0]:
            raise ValueError(f"k must be an integer between 1 and the pool size {X_pool.shape[0]}; got {k!r}")
        cand = np.arange(X_pool.shape[0])
        if cand.size > self.max_candidates:  # bound memory: design over a seeded random subset of a huge pool
            keep = np.random.default_rng(self.seed).choice(cand.size, max(self.max_candidates, int(k)), replace=False)
            cand = np.sort(keep)
        with _small_blas():
            P, _ = basis.design(X_pool[cand])
            return cand[greedy_d_optimal(P, int(k), noise=self.design_noise, seed=self.seed)]

    def adapt(self, X_support: np.ndarray, y_ms: np.ndarray) -> AdaptedLatencyPredictor:
        """Fit a new device's head on measured latencies y_ms (ms) of the archs X_support."""
        basis = self._require_fit()
        X_support = check_matrix(X_support, "X_support", basis.fmap.width)
        y = np.asarray(y_ms, dtype=float)
        if y.ndim != 1 or y.size != X_support.shape[0]:
            raise ValueError(f"y_ms has shape {y.shape}; expected ({X_support.shape[0]},) to match X_support")
        if not np.all(np.isfinite(y)) or np.any(y <= 0):
            raise ValueError("y_ms must be positive finite latencies in ms")
        P, m = basis.design(X_support)
        fit = fit_target(P, m, np.log(y), basis.log_scale, self.nu, basis.groups(P))
        return AdaptedLatencyPredictor(basis, fit.head.weights, fit.center, fit.scale, fit.head.noise, y.size,
                                       fit.head.mean_weight)

    def _meta(self) -> dict[str, Any]:
        """JSON scalars of this predictor."""
        return {
            "seed": self.seed, "nu": self.nu, "mlp": self.mlp, "max_levels": self.max_levels,
            "grid": [list(g) for g in self.grid], "design_noise": self.design_noise,
            "max_candidates": self.max_candidates, "descriptors": self.descriptors, "devices": self.devices,
            "episode_scores": self.episode_scores, "fit_seconds": self.fit_seconds,
        }

    def save(self, path: str | Path) -> Path:
        """Write config.json + arrays.npz into the directory path."""
        basis = self._require_fit()
        return save_state(path, KIND, self._meta(), basis.state())

    @classmethod
    def load(cls, path: str | Path) -> "MetaLatencyPredictor":
        """Read what save() wrote."""
        meta, arrays = load_state(path, KIND)
        model = cls(seed=meta["seed"], nu=meta["nu"], mlp=meta["mlp"], max_levels=meta["max_levels"],
                    grid=tuple(tuple(g) for g in meta["grid"]), design_noise=meta["design_noise"],
                    max_candidates=meta.get("max_candidates", 20000), descriptors=meta.get("descriptors", 0))
        model.devices = list(meta["devices"])
        model.episode_scores = list(meta["episode_scores"])
        model.fit_seconds = float(meta["fit_seconds"])
        model.basis = Basis.from_state(arrays)
        return model
