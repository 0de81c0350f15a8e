"""Accuracy and latency predictors over architecture encodings (arrays in, numbers out; no torch models)."""

from predictors.accuracy import FittedPredictor, cross_validate, fit_predictor, quality_by_size
from predictors.metrics import QualityReport, kendall_tau, mape, quality_report, spearman_rho

__all__ = [
    "FittedPredictor", "QualityReport", "cross_validate", "fit_predictor", "kendall_tau", "mape", "quality_by_size",
    "quality_report", "spearman_rho",
]
