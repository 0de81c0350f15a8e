"""Encoding preprocessing: one-hot expansion of few-level columns and standardization, for any float encoding."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_EPS = 1e-12


def check_matrix(X: np.ndarray, name: str = "X", width: int | None = None) -> np.ndarray:
    """Return X as a finite 2-D float64 array, or raise ValueError saying what is wrong."""
    arr = np.asarray(X, dtype=float)
    if arr.ndim == 1 and width is not None and arr.size == width:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"{name} must be a non-empty 2-D array (n_archs, d); got shape {arr.shape}")
    if width is not None and arr.shape[1] != width:
        raise ValueError(f"{name} has {arr.shape[1]} columns but the model was meta-fitted on width {width}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


@dataclass
class FeatureMap:
    """Maps a raw encoding to standardized columns; columns with 3..max_levels distinct values also get one-hot
    indicators, so that a linear model can give every choice its own cost even when choices are integer-coded."""

    width: int
    level_cols: np.ndarray  # input column of each indicator
    level_vals: np.ndarray  # value that indicator fires on
    mean: np.ndarray
    scale: np.ndarray
    keep: np.ndarray  # non-constant columns of [X, indicators]

    @classmethod
    def fit(cls, X: np.ndarray, max_levels: int = 16, max_features: int = 2048) -> "FeatureMap":
        """Learn indicator levels and standardization from the meta-training encodings (indicators are added
        column by column while the total width stays within max_features)."""
        X = check_matrix(X)
        cols: list[int] = []
        vals: list[float] = []
        for j in range(X.shape[1]):
            levels = np.unique(X[:, j])
            if 2 < levels.size <= max_levels and X.shape[1] + len(cols) + levels.size <= max_features:
                cols.extend([j] * levels.size)
                vals.extend(levels.tolist())
        empty = (np.zeros(0), np.ones(0), np.zeros(0, bool))
        fmap = cls(X.shape[1], np.asarray(cols, int), np.asarray(vals, float), *empty)
        raw = fmap._expand(X)
        mean, std = raw.mean(0), raw.std(0)
        keep = std > _EPS * np.maximum(1.0, np.abs(mean))
        fmap.mean, fmap.scale, fmap.keep = mean[keep], std[keep], keep
        return fmap

    @property
    def n_features(self) -> int:
        """Number of standardized output columns."""
        return int(self.keep.sum())

    def _expand(self, X: np.ndarray) -> np.ndarray:
        """Raw columns followed by level indicators."""
        if self.level_cols.size == 0:
            return X
        ind = np.isclose(X[:, self.level_cols], self.level_vals[None, :], rtol=0.0, atol=1e-9)
        return np.hstack([X, ind.astype(float)])

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Standardized, expanded features (n, n_features); constant training columns are dropped."""
        X = check_matrix(X, width=self.width)
        return (self._expand(X)[:, self.keep] - self.mean) / self.scale

    def state(self) -> dict[str, np.ndarray]:
        """Arrays that rebuild this map."""
        return {
            "width": np.asarray([self.width]),
            "level_cols": self.level_cols,
            "level_vals": self.level_vals,
            "mean": self.mean,
            "scale": self.scale,
            "keep": self.keep.astype(np.int8),
        }

    @classmethod
    def from_state(cls, s: dict[str, np.ndarray]) -> "FeatureMap":
        """Inverse of state()."""
        return cls(
            int(np.asarray(s["width"]).ravel()[0]),
            np.asarray(s["level_cols"], int),
            np.asarray(s["level_vals"], float),
            np.asarray(s["mean"], float),
            np.asarray(s["scale"], float),
            np.asarray(s["keep"]).astype(bool),
        )
