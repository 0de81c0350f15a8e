"""Ranking and error metrics used to judge every predictor the same way."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats


def kendall_tau(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Kendall's tau-b between two score vectors (1 = same ranking)."""
    tau = stats.kendalltau(np.asarray(y_true, float), np.asarray(y_pred, float)).statistic
    return float(tau)


def spearman_rho(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Spearman's rank correlation between two score vectors."""
    rho = stats.spearmanr(np.asarray(y_true, float), np.asarray(y_pred, float)).statistic
    return float(rho)


def mape(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Mean absolute percentage error, as a fraction (0.05 = 5 %)."""
    y_true = np.asarray(y_true, float)
    y_pred = np.asarray(y_pred, float)
    return float(np.mean(np.abs(y_pred - y_true) / np.abs(y_true)))


@dataclass(frozen=True)
class QualityReport:
    """How well a predictor ranks and fits held-out targets."""

    n: int
    kendall_tau: float
    spearman_rho: float
    mape: float

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def quality_report(y_true: np.ndarray, y_pred: np.ndarray) -> QualityReport:
    """All three numbers at once, on the same pairs."""
    return QualityReport(
        n=int(len(y_true)),
        kendall_tau=kendall_tau(y_true, y_pred),
        spearman_rho=spearman_rho(y_true, y_pred),
        mape=mape(y_true, y_pred),
    )
