"""The predictor kinds: how each is fitted with scikit-learn and turned into a numpy form.

Every kind sees standardised inputs and standardised targets (see `data.Standardiser`), is deterministic for a
seed, and is sized to fit ~200 rows x ~100 features in well under a second on one core, because an
evolutionary search refits its surrogate every generation. Register more kinds in `MODELS`. scikit-learn is
imported inside the fitting functions, so importing `nasengine.predictors` stays cheap.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from nasengine.predictors.accuracy.forms import Form, LinearForm, MeanForm, MLPForm, RBFKernelForm, TreesForm
from nasengine.search_spaces.registry import Registry

FitFn = Callable[[np.ndarray, np.ndarray, int, dict[str, Any]], Form]


@dataclass(frozen=True)
class ModelSpec:
    """One predictor kind: a fitting function over standardised (Z, t), its hyperparameters, and for an
    ensemble the kinds it averages (so cross-validation can reuse the members' predictions)."""

    name: str
    summary: str
    fit: FitFn | None
    params: dict[str, Any] = field(default_factory=dict)
    members: tuple[str, ...] = ()


def _checked(form: Form, model: Any, Z: np.ndarray) -> Form:
    """The form, after checking that it predicts what the scikit-learn model does on a few training rows: a
    scikit-learn upgrade that changed a fitted attribute's meaning fails here, loudly, instead of mispredicting."""
    probe = Z[:8]
    want, got = np.ravel(model.predict(probe)), form.predict(probe)
    if not np.allclose(got, want, rtol=1e-7, atol=1e-9):
        raise RuntimeError(f"{type(model).__name__} converted to a {form.type!r} form predicts {got[:3]} instead of "
                           f"{want[:3]}; this scikit-learn version is not supported by predictors.accuracy")
    return form


def _ridge(Z: np.ndarray, t: np.ndarray, seed: int, p: dict[str, Any]) -> Form:
    from sklearn.linear_model import RidgeCV

    model = RidgeCV(alphas=np.asarray(p["alphas"], dtype=float)).fit(Z, t)  # alpha by efficient leave-one-out
    return _checked(LinearForm(model.coef_, float(model.intercept_)), model, Z)


def _svr(Z: np.ndarray, t: np.ndarray, seed: int, p: dict[str, Any]) -> Form:
    from sklearn.svm import SVR

    var = float(Z.var())
    gamma = p["gamma_factor"] / (Z.shape[1] * var) if var > 0 else 1.0  # a fraction of scikit-learn's "scale"
    model = SVR(kernel="rbf", C=p["C"], epsilon=p["epsilon"], gamma=gamma).fit(Z, t)  # libsvm: no randomness
    form = RBFKernelForm(model.support_vectors_, model.dual_coef_[0], float(model.intercept_[0]), gamma)
    return _checked(form, model, Z)


def _gbr(Z: np.ndarray, t: np.ndarray, seed: int, p: dict[str, Any]) -> Form:
    from sklearn.ensemble import GradientBoostingRegressor

    model = GradientBoostingRegressor(n_estimators=p["n_estimators"], learning_rate=p["learning_rate"],
                                      max_depth=p["max_depth"], subsample=p["subsample"],
                                      min_samples_leaf=min(p["min_samples_leaf"], max(1, len(t) // 4)),
                                      max_features=p["max_features"], random_state=seed).fit(Z, t)
    trees = [est.tree_ for est in model.estimators_[:, 0]]
    width = max(tr.node_count for tr in trees)

    def pad(get: Callable[[Any], np.ndarray], fill: float) -> np.ndarray:
        out = np.full((len(trees), width), fill)
        for i, tr in enumerate(trees):
            out[i, :tr.node_count] = get(tr)
        return out

    init = float(np.ravel(model.init_.constant_)[0])  # the loss's starting constant (the mean for squared error)
    form = TreesForm(init, model.learning_rate, pad(lambda tr: tr.children_left, -1),
                     pad(lambda tr: tr.children_right, -1), pad(lambda tr: tr.feature, -2),
                     pad(lambda tr: tr.threshold, -2.0), pad(lambda tr: tr.value[:, 0, 0], 0.0))
    return _checked(form, model, Z)


def _mlp(Z: np.ndarray, t: np.ndarray, seed: int, p: dict[str, Any]) -> Form:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPRegressor

    n = len(t)
    early = n >= p["early_stopping_min_rows"]  # the validation split needs a few rows to mean anything
    n_train = n - int(np.ceil(p["validation_fraction"] * n)) if early else n
    model = MLPRegressor(hidden_layer_sizes=tuple(p["hidden"]), alpha=p["alpha"], learning_rate_init=p["lr"],
                         batch_size=max(1, min(p["batch_size"], n_train)), max_iter=p["max_iter"], early_stopping=early,
                         validation_fraction=p["validation_fraction"], n_iter_no_change=p["n_iter_no_change"],
                         tol=p["tol"], random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(Z, t)
    return _checked(MLPForm(model.coefs_, model.intercepts_), model, Z)


MODELS: Registry[ModelSpec] = Registry("predictor kind")
"""kind name -> ModelSpec, in the order 'auto' tries them (earlier kinds win ties)."""

MODELS.add("ridge", ModelSpec("ridge", "linear ridge regression, penalty chosen by leave-one-out", _ridge,
                              {"alphas": [float(a) for a in np.logspace(-2, 3, 11)]}))
MODELS.add("svr", ModelSpec("svr", "RBF support-vector regression on standardised targets", _svr,
                            {"C": 10.0, "epsilon": 0.1, "gamma_factor": 0.25}))
MODELS.add("gbr", ModelSpec("gbr", "gradient-boosted depth-3 trees, 100 stages, row subsampling", _gbr,
                            {"n_estimators": 100, "learning_rate": 0.1, "max_depth": 3, "subsample": 0.8,
                             "min_samples_leaf": 3, "max_features": 1.0}))
MODELS.add("mlp", ModelSpec("mlp", "one-hidden-layer ReLU MLP (adam, L2, early stopping from 30 rows)", _mlp,
                            {"hidden": [64], "alpha": 1.0, "lr": 1e-2, "batch_size": 32, "max_iter": 200,
                             "early_stopping_min_rows": 30, "validation_fraction": 0.15, "n_iter_no_change": 10,
                             "tol": 1e-5}))
MODELS.add("ensemble", ModelSpec("ensemble", "mean of the standardised predictions of ridge, svr, gbr and mlp",
                                 None, {}, members=("ridge", "svr", "gbr", "mlp")))


def base_kinds(kind: str) -> tuple[str, ...]:
    """The fitted kinds a kind needs: itself, or an ensemble's members."""
    spec = MODELS.get(kind)
    return spec.members or (spec.name,)


def fit_form(kind: str, Z: np.ndarray, t: np.ndarray, seed: int) -> Form:
    """Fit one kind on standardised rows Z and standardised targets t; its numpy form."""
    spec = MODELS.get(kind)
    if spec.members:
        return MeanForm({m: fit_form(m, Z, t, seed) for m in spec.members})
    assert spec.fit is not None
    return spec.fit(Z, t, seed, dict(spec.params))


def kind_params(kind: str) -> dict[str, Any]:
    """The hyperparameters a kind is fitted with (recorded in saved predictors), members' included."""
    spec = MODELS.get(kind)
    if spec.members:
        return {m: kind_params(m) for m in spec.members}
    return dict(spec.params)
