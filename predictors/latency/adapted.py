"""A latency predictor adapted to one target device: the shared basis plus a fitted linear head."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nasengine.predictors.latency.basis import Basis
from nasengine.predictors.latency.features import check_matrix
from nasengine.predictors.latency.persist import arrays_from_json, arrays_to_json, check_kind, load_state, save_state

KIND = "AdaptedLatencyPredictor"


@dataclass
class AdaptedLatencyPredictor:
    """Predicts a device's latency (ms) for any encoding:
    exp(center + scale * (mean_weight * prior mean + basis @ weights))."""

    basis: Basis
    weights: np.ndarray
    center: float
    scale: float
    noise: float
    n_support: int
    mean_weight: float = 1.0

    def predict_log(self, X: np.ndarray, chunk: int = 8192) -> np.ndarray:
        """Predicted natural-log latency in ms (rows processed in chunks to bound memory)."""
        X = check_matrix(X, width=self.basis.fmap.width)
        out = np.empty(X.shape[0])
        for i in range(0, X.shape[0], chunk):
            P, m = self.basis.design(X[i : i + chunk])
            out[i : i + chunk] = self.center + self.scale * (self.mean_weight * m + P @ self.weights)
        return out

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Predicted latency in ms (always positive)."""
        return np.exp(self.predict_log(X))

    def _meta(self) -> dict[str, Any]:
        """JSON scalars of this predictor."""
        return {"center": self.center, "scale": self.scale, "noise": self.noise, "n_support": self.n_support,
                "mean_weight": self.mean_weight}

    def _arrays(self) -> dict[str, np.ndarray]:
        """Arrays of this predictor (basis ones prefixed)."""
        return {"weights": self.weights, **{f"basis.{k}": v for k, v in self.basis.state().items()}}

    @classmethod
    def _build(cls, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> "AdaptedLatencyPredictor":
        """Rebuild from scalars and arrays."""
        basis = Basis.from_state({k[6:]: v for k, v in arrays.items() if k.startswith("basis.")})
        return cls(
            basis,
            np.asarray(arrays["weights"], float),
            float(meta["center"]),
            float(meta["scale"]),
            float(meta["noise"]),
            int(meta["n_support"]),
            float(meta.get("mean_weight", 1.0)),
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (numbers and lists only)."""
        return {"kind": KIND, "format_version": 1, **self._meta(), "arrays": arrays_to_json(self._arrays())}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "AdaptedLatencyPredictor":
        """Inverse of to_dict."""
        check_kind(d, KIND)
        return cls._build(d, arrays_from_json(d["arrays"]))

    def save(self, path: str | Path) -> Path:
        """Write config.json + arrays.npz into the directory path."""
        return save_state(path, KIND, self._meta(), self._arrays())

    @classmethod
    def load(cls, path: str | Path) -> "AdaptedLatencyPredictor":
        """Read what save() wrote."""
        meta, arrays = load_state(path, KIND)
        return cls._build(meta, arrays)
