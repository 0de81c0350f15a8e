"""Predictions with an uncertainty: a bootstrap ensemble of one predictor kind gives a mean and a spread per row.

An acquisition that trades exploring against exploiting (expected hypervolume improvement, an upper-confidence
rule) needs to know where a surrogate is unsure. Refitting the chosen kind on bootstrap resamples of the rows is
the cheapest way that works for every kind (ridge, SVR, boosted trees, MLP): members disagree where the rows say
little, and agree where many rows pin the prediction down.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from nasengine.predictors.accuracy.data import MIN_ROWS, check_xy
from nasengine.predictors.accuracy.fitted import FittedPredictor
from nasengine.predictors.accuracy.select import fit_predictor

DEFAULT_MEMBERS = 8


@dataclass(frozen=True)
class BootstrapEnsemble:
    """`members` fitted on bootstrap resamples of the same rows; predicts their mean and standard deviation."""

    members: tuple[FittedPredictor, ...]

    @property
    def kind(self) -> str:
        return self.members[0].kind

    def predict(self, X: Any) -> np.ndarray:
        return self.predict_with_std(X)[0]

    def predict_with_std(self, X: Any) -> tuple[np.ndarray, np.ndarray]:
        """(mean, std) per row of X, in the units of the training targets (std 0 with a single member)."""
        predictions = np.stack([m.predict(X) for m in self.members])
        return predictions.mean(axis=0), predictions.std(axis=0)


def fit_bootstrap(X: Any, y: Any, kind: str, members: int = DEFAULT_MEMBERS, seed: int = 0,
                  log_target: bool = False) -> BootstrapEnsemble:
    """`members` predictors of `kind` (not "auto": choose it once on all rows, then resample), each on a bootstrap
    resample of the rows drawn with `seed`; a resample with fewer than MIN_ROWS distinct rows is drawn again."""
    X, y = check_xy(X, y)
    if members < 1:
        raise ValueError(f"members must be at least 1, got {members}")
    rng = np.random.default_rng(seed)
    n = len(y)
    fitted = []
    for b in range(members):
        index = rng.integers(0, n, n)
        for _ in range(20):
            if len(np.unique(index)) >= min(MIN_ROWS, n):
                break
            index = rng.integers(0, n, n)
        fitted.append(fit_predictor(X[index], y[index], kind=kind, seed=seed + b, log_target=log_target))
    return BootstrapEnsemble(tuple(fitted))


__all__ = ["DEFAULT_MEMBERS", "BootstrapEnsemble", "fit_bootstrap"]
