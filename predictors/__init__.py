"""Accuracy and latency predictors over architecture encodings (arrays in, numbers out; no torch models)."""

from nasengine.search_spaces._bare_name import defer_bare_name

defer_bare_name(__name__)  # under its bare name (a checkout's root on sys.path) the name goes to its owner

from nasengine.predictors.accuracy import FittedPredictor, cross_validate, fit_predictor, quality_by_size
from nasengine.predictors.metrics import QualityReport, kendall_tau, mape, quality_report, spearman_rho

__all__ = [
    "FittedPredictor", "QualityReport", "cross_validate", "fit_predictor", "kendall_tau", "mape", "quality_by_size",
    "quality_report", "spearman_rho",
]
