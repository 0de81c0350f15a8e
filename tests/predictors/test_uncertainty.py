"""Bootstrap ensembles: a mean close to one fit on all rows, and a spread that grows where rows say little."""

from __future__ import annotations

import numpy as np
import pytest

from nasengine.predictors.accuracy import fit_bootstrap, fit_predictor


def _data(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.uniform(0.0, 1.0, (n, 3))
    return X, X @ np.array([2.0, -1.0, 0.5]) + rng.normal(0.0, 0.05, n)


@pytest.mark.parametrize("kind", ["ridge", "gbr"])
def test_mean_tracks_a_single_fit_and_spread_grows_off_the_data(kind: str) -> None:
    X, y = _data(60)
    ensemble = fit_bootstrap(X, y, kind, members=8, seed=3)
    inside, outside = np.full((1, 3), 0.5), np.array([[3.0, -2.0, 3.0]])
    mean, std = ensemble.predict_with_std(np.vstack([inside, outside]))
    single = fit_predictor(X, y, kind=kind).predict(inside)
    assert abs(mean[0] - single[0]) < 0.1
    assert std[0] > 0
    if kind == "ridge":  # a linear model extrapolates, so its members disagree off the data (trees stay flat)
        assert std[1] > 3 * std[0]
    again = fit_bootstrap(X, y, kind, members=8, seed=3).predict_with_std(inside)
    np.testing.assert_allclose(again[1], std[:1], rtol=1e-12)  # seeded: the same ensemble
    assert ensemble.kind == kind and len(ensemble.members) == 8


def test_tiny_or_bad_input_is_refused_or_handled() -> None:
    X, y = _data(6)
    assert fit_bootstrap(X, y, "ridge", members=4).predict_with_std(X)[0].shape == (6,)
    with pytest.raises(ValueError):
        fit_bootstrap(X, y, "ridge", members=0)
    with pytest.raises(ValueError):
        fit_bootstrap(X[:3], y[:3], "ridge")
