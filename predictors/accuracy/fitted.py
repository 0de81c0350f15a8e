"""FittedPredictor: a fitted kind plus its scalers, cross-validation scores, and JSON persistence.

Saved files are strict JSON (no pickle, no joblib): the numpy forms' parameters (see `forms`), the scalers,
the kind, seed and hyperparameters, and a few probe rows with the predictions made on them when saving;
loading recomputes those predictions and raises ValueError if they differ, so a damaged or hand-edited file
never silently predicts something else.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nasengine.predictors.accuracy.data import Standardiser, check_X
from nasengine.predictors.accuracy.forms import Form, form_from_dict
from nasengine.search_spaces.storage import atomic_write

FORMAT = "nasengine-accuracy-predictor"
FORMAT_VERSION = 1
N_PROBES = 3


def _json_number(x: float) -> float | None:
    """Strict JSON has no NaN/inf: they are written as null."""
    return float(x) if math.isfinite(x) else None


@dataclass
class FittedPredictor:
    """Predicts a search objective from architecture encodings. `kind` is the registered kind that was fitted
    ("constant" when the training targets had no spread); `cv` maps each kind tried by cross-validation to
    {"kendall_tau", "spearman_rho", "mape"} (empty when the kind was given rather than chosen)."""

    kind: str
    form: Form
    x_scaler: Standardiser
    y_scaler: Standardiser
    n_features: int
    n_rows: int
    seed: int = 0
    log_target: bool = False
    params: dict[str, Any] = field(default_factory=dict)
    cv: dict[str, dict[str, float]] = field(default_factory=dict)
    fit_seconds: float = 0.0
    probes: np.ndarray | None = None

    def predict(self, X: Any) -> np.ndarray:
        """Predicted objective for every row of X (n, n_features), in the units of the training targets."""
        X = check_X(X, width=self.n_features)
        t = self.y_scaler.inverse(self.form.predict(self.x_scaler.transform(X)))
        return np.exp(t) if self.log_target else t

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable record that `from_dict` turns back into an identical predictor."""
        probes = self.probes if self.probes is not None else np.zeros((0, self.n_features))
        return {
            "format": FORMAT, "format_version": FORMAT_VERSION, "kind": self.kind, "seed": self.seed,
            "log_target": self.log_target, "n_features": self.n_features, "n_rows": self.n_rows,
            "params": self.params, "fit_seconds": self.fit_seconds,
            "cv": {k: {m: _json_number(v) for m, v in s.items()} for k, s in self.cv.items()},
            "x_scaler": self.x_scaler.to_dict(), "y_scaler": self.y_scaler.to_dict(), "form": self.form.to_dict(),
            "probes": {"X": probes.tolist(), "y": self.predict(probes).tolist() if len(probes) else []},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "FittedPredictor":
        """Inverse of to_dict; ValueError when the record is not a predictor, is newer than this code, or its
        probe rows no longer give the saved predictions."""
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError(f"not a saved accuracy predictor (expected format {FORMAT!r})")
        if int(data.get("format_version", -1)) > FORMAT_VERSION:
            raise ValueError(f"saved predictor has format version {data['format_version']}; this code reads up to "
                             f"{FORMAT_VERSION}")
        try:
            n_features = int(data["n_features"])
            probes = np.asarray(data["probes"]["X"], dtype=np.float64).reshape(-1, n_features)
            pred = cls(
                kind=str(data["kind"]), form=form_from_dict(data["form"]),
                x_scaler=Standardiser.from_dict(data["x_scaler"]), y_scaler=Standardiser.from_dict(data["y_scaler"]),
                n_features=n_features, n_rows=int(data["n_rows"]), seed=int(data["seed"]),
                log_target=bool(data["log_target"]), params=dict(data.get("params", {})),
                cv={k: {m: float("nan") if v is None else float(v) for m, v in s.items()}
                    for k, s in data.get("cv", {}).items()},
                fit_seconds=float(data.get("fit_seconds", 0.0)), probes=probes,
            )
            expected = np.asarray(data["probes"]["y"], dtype=np.float64)
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"saved accuracy predictor is malformed: {exc}") from None
        if len(probes):
            got = pred.predict(probes)
            if got.shape != expected.shape or not np.allclose(got, expected, rtol=1e-9, atol=1e-12):
                raise ValueError(f"saved {pred.kind!r} predictor does not reproduce its probe predictions "
                                 f"(saved {expected.tolist()}, got {got.tolist()}): the file is damaged or was "
                                 "written by incompatible code")
        return pred

    def save(self, path: str | Path) -> Path:
        """Write the predictor as one JSON file (atomically); returns the path."""
        path = Path(path)
        atomic_write(path, json.dumps(self.to_dict(), allow_nan=False, separators=(",", ":")))
        return path

    @classmethod
    def load(cls, path: str | Path) -> "FittedPredictor":
        """Read what `save` wrote; ValueError naming the file when it is not a readable predictor."""
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:  # a missing file stays FileNotFoundError
            raise ValueError(f"{path} is not a readable predictor JSON file: {exc}") from None
        try:
            return cls.from_dict(data)
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None
