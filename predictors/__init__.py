"""Accuracy and latency predictors over architecture encodings (arrays in, numbers out; no torch models)."""

from predictors.metrics import QualityReport, kendall_tau, mape, quality_report, spearman_rho

__all__ = ["QualityReport", "kendall_tau", "mape", "quality_report", "spearman_rho"]
