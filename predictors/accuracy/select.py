"""Fitting entry points: `cross_validate` scores kinds by K-fold cross-validation, `fit_predictor` fits one
kind, or with kind="auto" the kind with the best cross-validated Kendall tau (ranking is what search needs).

Scores are computed on the pooled out-of-fold predictions of all rows (one prediction per row, from the fold
that held it out), which is far steadier than averaging per-fold taus on the 5-40 rows a fold holds early in
a search. Ensembles are scored from their members' out-of-fold predictions, so trying them costs nothing extra.
"""

from __future__ import annotations

import math
import time
import warnings
from contextlib import AbstractContextManager, nullcontext
from typing import Any, Sequence

import numpy as np

from nasengine.predictors.accuracy.data import MIN_ROWS, Standardiser, check_xy, is_constant
from nasengine.predictors.accuracy.fitted import N_PROBES, FittedPredictor
from nasengine.predictors.accuracy.forms import ConstantForm
from nasengine.predictors.accuracy.models import MODELS, base_kinds, fit_form, kind_params
from nasengine.predictors.metrics import kendall_tau, mape, spearman_rho

AUTO = "auto"


def single_thread() -> AbstractContextManager:
    """One BLAS/OpenMP thread while fitting: the matrices are small, results stay reproducible, and threads
    would only fight the search (or a benchmark) for the cores."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl ships with scikit-learn
        return nullcontext()
    return threadpool_limits(limits=1)


def _kinds(kinds: Sequence[str] | None) -> list[str]:
    names = list(MODELS) if kinds is None else list(kinds)
    if not names:
        raise ValueError("no predictor kinds to try")
    for k in names:
        MODELS.get(k)  # RegistryError (a ValueError) listing the available kinds
    return list(dict.fromkeys(names))


def _target(y: np.ndarray, log_target: bool) -> np.ndarray:
    if not log_target:
        return y
    if np.any(y <= 0):
        raise ValueError("log_target=True needs strictly positive targets")
    return np.log(y)


def scores(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """Kendall tau, Spearman rho and MAPE; NaN where undefined (constant predictions, zero targets)."""
    with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
        warnings.simplefilter("ignore")  # scipy warns on constant input; the NaN says it
        return {"kendall_tau": kendall_tau(y_true, y_pred), "spearman_rho": spearman_rho(y_true, y_pred),
                "mape": mape(y_true, y_pred)}


def cross_validate(X: Any, y: Any, kinds: Sequence[str] | None = None, seed: int = 0, folds: int = 5,
                   log_target: bool = False) -> dict[str, dict[str, float]]:
    """K-fold (shuffled, seeded) scores of each kind: {kind: {"kendall_tau", "spearman_rho", "mape"}} computed
    on the pooled out-of-fold predictions, in the units of y. Folds are capped at the number of rows."""
    from sklearn.model_selection import KFold

    X, y = check_xy(X, y)
    names = _kinds(kinds)
    if int(folds) < 2:
        raise ValueError(f"folds must be at least 2; got {folds}")
    t = _target(y, log_target)
    needed = list(dict.fromkeys(b for k in names for b in base_kinds(k)))
    oof = {b: np.zeros(len(y)) for b in needed}  # out-of-fold predictions, in the units of t
    splitter = KFold(n_splits=min(int(folds), len(y)), shuffle=True, random_state=seed)
    with single_thread():
        for train, test in splitter.split(X):
            xs, ts = Standardiser.fit(X[train]), Standardiser.fit(t[train])
            Z, Zt = xs.transform(X[train]), xs.transform(X[test])
            for b in needed:
                oof[b][test] = ts.inverse(fit_form(b, Z, ts.transform(t[train]), seed).predict(Zt))
    out = {}
    for k in names:
        # an ensemble's mean in t units equals the mean of standardised predictions mapped back (one scaler per fold)
        pred_t = np.mean([oof[m] for m in base_kinds(k)], axis=0)
        pred = np.exp(pred_t) if log_target else pred_t
        out[k] = scores(y, pred)
    return out


def choose_kind(cv: dict[str, dict[str, float]]) -> str:
    """The kind with the highest cross-validated Kendall tau (NaN counts as worst; ties go to the earlier kind)."""
    def key(item: tuple[int, str]) -> tuple[float, int]:
        tau = cv[item[1]]["kendall_tau"]
        return (tau if math.isfinite(tau) else -math.inf, -item[0])

    return max(enumerate(cv), key=key)[1]


def fit_predictor(X: Any, y: Any, kind: str = AUTO, seed: int = 0, folds: int = 5, *,
                  candidates: Sequence[str] | None = None, log_target: bool = False) -> FittedPredictor:
    """Fit a predictor of y (n,) from encodings X (n, d).

    kind: a registered kind ("ridge", "svr", "gbr", "mlp", "ensemble") or "auto", which scores `candidates`
    (default: all kinds) by `folds`-fold cross-validation, picks the best Kendall tau and refits it on all rows.
    log_target fits log(y) (for positive, skewed objectives such as latency or params).
    Raises ValueError on NaN/inf, mismatched shapes, fewer than MIN_ROWS rows or an unknown kind. Targets with
    no spread give a "constant" predictor that returns that value."""
    started = time.perf_counter()
    X, y = check_xy(X, y)
    if kind != AUTO:
        MODELS.get(kind)
    names = _kinds(candidates)
    t = _target(y, log_target)
    xs, ts = Standardiser.fit(X), Standardiser.fit(t)
    probes = X[:N_PROBES].copy()
    common = dict(x_scaler=xs, y_scaler=ts, n_features=X.shape[1], n_rows=X.shape[0], seed=int(seed),
                  log_target=log_target, probes=probes)
    if is_constant(t):  # predict the first target exactly, in y's own units
        common.update(y_scaler=Standardiser(np.array([float(y[0])]), np.array([1.0])), log_target=False)
        return FittedPredictor(kind="constant", form=ConstantForm(0.0), params={}, cv={},
                               fit_seconds=time.perf_counter() - started, **common)
    cv: dict[str, dict[str, float]] = {}
    if kind == AUTO:
        cv = cross_validate(X, y, names, seed=seed, folds=folds, log_target=log_target)
        kind = choose_kind(cv)
    with single_thread():
        form = fit_form(kind, xs.transform(X), ts.transform(t), int(seed))
    return FittedPredictor(kind=kind, form=form, params=kind_params(kind), cv=cv,
                           fit_seconds=time.perf_counter() - started, **common)


__all__ = ["AUTO", "MIN_ROWS", "choose_kind", "cross_validate", "fit_predictor", "scores"]
