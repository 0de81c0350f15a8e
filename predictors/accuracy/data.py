"""Input checks and standardisation shared by every accuracy-predictor kind.

Why here: every kind sees the same checked, standardised rows, so cross-validation compares models and not
preprocessing, and the saved file needs only one (mean, scale) pair per side.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

MIN_ROWS = 5
"""Fewer rows than this cannot be fitted (nor cross-validated) meaningfully: fit_predictor refuses them."""

_EPS = 1e-12


def check_X(X: Any, name: str = "X", width: int | None = None) -> np.ndarray:
    """X as a finite 2-D float64 array (a single 1-D row is accepted when `width` is known), else ValueError."""
    try:
        arr = np.asarray(X, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a numeric array (n_archs, n_features): {exc}") from None
    if arr.ndim == 1 and width is not None and arr.size == width:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] == 0:
        raise ValueError(f"{name} must be a 2-D array (n_archs, n_features); got shape {arr.shape}")
    if width is not None and arr.shape[1] != width:
        raise ValueError(f"{name} has {arr.shape[1]} columns but the predictor was fitted on {width}")
    bad = ~np.isfinite(arr)
    if bad.any():
        rows = np.flatnonzero(bad.any(1))
        raise ValueError(f"{name} contains NaN or infinite values in {rows.size} row(s), first at row {rows[0]}")
    return arr


def check_xy(X: Any, y: Any, min_rows: int = MIN_ROWS) -> tuple[np.ndarray, np.ndarray]:
    """(X, y) as finite float64 arrays of matching length with at least `min_rows` rows, else ValueError."""
    X = check_X(X)
    try:
        y = np.asarray(y, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"y must be a numeric vector: {exc}") from None
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise ValueError(f"y must be a 1-D vector of targets; got shape {y.shape}")
    if y.shape[0] != X.shape[0]:
        raise ValueError(f"X has {X.shape[0]} rows but y has {y.shape[0]}")
    bad = ~np.isfinite(y)
    if bad.any():
        raise ValueError(f"y contains {int(bad.sum())} NaN or infinite value(s), first at row {np.flatnonzero(bad)[0]}"
                         "; drop those rows first")
    if X.shape[0] < min_rows:
        raise ValueError(f"too few rows to fit a predictor: {X.shape[0]} (need at least {min_rows})")
    return X, y


def is_constant(y: np.ndarray) -> bool:
    """True when y has no spread worth modelling (all equal up to rounding)."""
    return bool(y.size == 0 or np.ptp(y) <= _EPS * max(1.0, float(np.max(np.abs(y)))))


@dataclass(frozen=True)
class Standardiser:
    """Per-column (x - mean) / scale; constant columns get scale 1 so they map to 0 and never divide by zero."""

    mean: np.ndarray
    scale: np.ndarray

    @classmethod
    def fit(cls, A: np.ndarray) -> "Standardiser":
        A = np.asarray(A, dtype=np.float64)
        squeeze = A.ndim == 1
        A2 = A[:, None] if squeeze else A
        mean = A2.mean(0)
        std = A2.std(0)
        scale = np.where(std > _EPS * np.maximum(1.0, np.abs(mean)), std, 1.0)
        return cls(mean[0:1] if squeeze else mean, scale[0:1] if squeeze else scale)

    def transform(self, A: np.ndarray) -> np.ndarray:
        return (A - self.mean) / self.scale

    def inverse(self, Z: np.ndarray) -> np.ndarray:
        return Z * self.scale + self.mean

    def to_dict(self) -> dict[str, list[float]]:
        return {"mean": self.mean.tolist(), "scale": self.scale.tolist()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Standardiser":
        return cls(np.asarray(data["mean"], dtype=np.float64), np.asarray(data["scale"], dtype=np.float64))
