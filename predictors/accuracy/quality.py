"""Learning curves for reports: how well each kind ranks held-out archs as the training set grows.

For each repeat the rows are shuffled once (seeded); training sets of the requested sizes are nested prefixes
of that order, so a larger size only adds rows. Held-out rows are either every row not used for training
(default; uses small tables fully) or, with `holdout=k`, the same k rows for every size of that repeat
(comparable across sizes).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np

from nasengine.predictors.accuracy.data import MIN_ROWS, check_xy
from nasengine.predictors.accuracy.models import MODELS
from nasengine.predictors.accuracy.select import AUTO, fit_predictor, scores

MIN_TEST = 5
"""A size is skipped when fewer held-out rows than this would remain."""


@dataclass(frozen=True)
class QualityRow:
    """One (size, kind, repeat) cell: held-out quality and what it cost. `chosen` is the kind "auto" picked."""

    size: int
    kind: str
    repeat: int
    n_test: int
    kendall_tau: float
    spearman_rho: float
    mape: float
    fit_seconds: float
    chosen: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def quality_by_size(X: Any, y: Any, sizes: Sequence[int] = (25, 50, 100, 200), seed: int = 0, repeats: int = 5,
                    kinds: Sequence[str] | None = None, holdout: int | None = None, **fit: Any) -> list[QualityRow]:
    """Train each kind (default: every registered kind; "auto" allowed) on random subsets of each size and score
    it on held-out rows; one QualityRow per (size, kind, repeat). Sizes that leave fewer than MIN_TEST
    held-out rows are skipped; ValueError when none fits or a size is below MIN_ROWS. `fit`: more arguments of
    fit_predictor for every model (`folds`, `log_target`)."""
    X, y = check_xy(X, y)
    n = len(y)
    names = list(MODELS) if kinds is None else list(dict.fromkeys(kinds))
    for k in names:
        if k != AUTO:
            MODELS.get(k)
    sizes = sorted({int(s) for s in sizes})
    if not sizes or sizes[0] < MIN_ROWS:
        raise ValueError(f"training sizes must be at least {MIN_ROWS}; got {sizes}")
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1; got {repeats}")
    if holdout is not None and not MIN_TEST <= holdout <= n - MIN_ROWS:
        raise ValueError(f"holdout must be between {MIN_TEST} and {n - MIN_ROWS} rows for {n} rows; got {holdout}")
    pool_size = n - holdout if holdout is not None else n - MIN_TEST
    usable = [s for s in sizes if s <= pool_size]
    if not usable:
        raise ValueError(f"no training size in {sizes} leaves {holdout or MIN_TEST} held-out rows out of {n}")
    rows: list[QualityRow] = []
    for r in range(repeats):
        perm = np.random.default_rng([seed, r]).permutation(n)
        for s in usable:
            train = perm[:s]
            test = perm[n - holdout:] if holdout is not None else perm[s:]
            for k in names:
                started = time.perf_counter()
                model = fit_predictor(X[train], y[train], kind=k, seed=seed + r, **fit)
                seconds = time.perf_counter() - started
                sc = scores(y[test], model.predict(X[test]))
                rows.append(QualityRow(size=s, kind=k, repeat=r, n_test=len(test), kendall_tau=sc["kendall_tau"],
                                       spearman_rho=sc["spearman_rho"], mape=sc["mape"], fit_seconds=seconds,
                                       chosen=model.kind))
    return rows


def summarise_quality(rows: Sequence[QualityRow]) -> list[dict[str, Any]]:
    """Mean and standard deviation over repeats per (size, kind), in first-seen order; NaNs are ignored."""
    groups: dict[tuple[int, str], list[QualityRow]] = {}
    for row in rows:
        groups.setdefault((row.size, row.kind), []).append(row)
    out = []
    for (size, kind), group in groups.items():
        entry: dict[str, Any] = {"size": size, "kind": kind, "repeats": len(group),
                                 "n_test": float(np.mean([g.n_test for g in group]))}
        for metric in ("kendall_tau", "spearman_rho", "mape", "fit_seconds"):
            values = np.array([getattr(g, metric) for g in group], dtype=float)
            values = values[np.isfinite(values)]
            entry[f"{metric}_mean"] = float(values.mean()) if values.size else float("nan")
            entry[f"{metric}_std"] = float(values.std()) if values.size else float("nan")
        chosen = [g.chosen for g in group]
        entry["chosen"] = {c: chosen.count(c) for c in dict.fromkeys(chosen)}
        out.append(entry)
    return out
