"""Fast surrogate predictors of any search objective (accuracy, latency, params) from architecture encodings.

Lightly trained scikit-learn regressors (ridge, RBF SVR, gradient boosting, a small MLP, and their ensemble),
refitted every generation inside an evolutionary search: fitting takes well under a few seconds on ~200 rows,
prediction is plain numpy, and saved predictors are JSON (no pickle).

>>> from predictors.accuracy import fit_predictor
>>> model = fit_predictor(X, y)            # kind chosen by 5-fold CV Kendall tau     # doctest: +SKIP
>>> model.kind, model.cv[model.kind]["kendall_tau"], model.predict(X_new)         # doctest: +SKIP
"""

from nasengine.predictors.accuracy.data import MIN_ROWS
from nasengine.predictors.accuracy.fitted import FittedPredictor
from nasengine.predictors.accuracy.models import MODELS, ModelSpec
from nasengine.predictors.accuracy.quality import QualityRow, quality_by_size, summarise_quality
from nasengine.predictors.accuracy.select import choose_kind, cross_validate, fit_predictor
from nasengine.predictors.accuracy.uncertainty import BootstrapEnsemble, fit_bootstrap

__all__ = [
    "MIN_ROWS", "MODELS", "BootstrapEnsemble", "FittedPredictor", "ModelSpec", "QualityRow", "choose_kind",
    "cross_validate", "fit_bootstrap", "fit_predictor", "quality_by_size", "summarise_quality",
]
