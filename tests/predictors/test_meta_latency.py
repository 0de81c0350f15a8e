"""Behavioural tests of the meta-learned few-shot latency predictor (predictors.latency)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.requirements import unavailable
from nasengine.predictors.metrics import spearman_rho

from nasengine.predictors.latency import AdaptedLatencyPredictor, MetaLatencyPredictor

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "latency"


def rho(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation."""
    return spearman_rho(a, b)


def synthetic(n: int = 600, layers: int = 8, choices: int = 4, n_dev: int = 9, seed: int = 0, noise: float = 0.02):
    """One-hot archs; each device = per-op costs (shared hardware factors x device mix) summed over layers,
    times a nonlinear layer-interaction term, with multiplicative noise. Also returns a MACs-like proxy."""
    rng = np.random.default_rng(seed)
    ops = rng.integers(0, choices, (n, layers))
    X = np.zeros((n, layers * choices))
    X[np.arange(n)[:, None], np.arange(layers) * choices + ops] = 1.0
    base = rng.uniform(0.5, 2.0, (layers, choices)) * (1.0 + np.arange(choices))
    macs = base[np.arange(layers), ops].sum(1)
    factors = rng.normal(0.0, 1.0, (3, layers, choices))

    def device(r: np.random.Generator) -> np.ndarray:
        mix = r.normal(0.0, 0.5, 3)
        lut = base * np.exp(np.tensordot(mix, factors, 1) + 0.1 * r.normal(size=(layers, choices)))
        per_layer = lut[np.arange(layers), ops]
        pair = per_layer[:, 0] * per_layer[:, -1]
        inter = 1.0 + 0.3 * np.tanh(pair / pair.mean() - 1)
        return (per_layer.sum(1) + r.uniform(0.5, 3.0)) * inter * np.exp(noise * r.normal(size=n))

    lat = {f"dev{i}": device(np.random.default_rng([seed, i])) for i in range(n_dev)}
    return X, lat, macs


@pytest.fixture(scope="module")
def data():
    X, lat, macs = synthetic()
    target = lat.pop("dev8")
    return X, lat, target, macs


@pytest.fixture(scope="module")
def fitted(data):
    X, lat, _, _ = data
    return MetaLatencyPredictor(seed=0, mlp="never").meta_fit(X, lat)


def test_contract_types_and_shapes(fitted, data):
    X, _, target, _ = data
    idx = fitted.select_support(X, 10)
    assert isinstance(idx, np.ndarray) and np.issubdtype(idx.dtype, np.integer)
    assert idx.shape == (10,) and len(set(idx.tolist())) == 10
    assert idx.min() >= 0 and idx.max() < len(X)
    dev = fitted.adapt(X[idx], target[idx])
    pred = dev.predict(X)
    assert isinstance(pred, np.ndarray) and pred.shape == (len(X),)
    assert np.all(np.isfinite(pred)) and np.all(pred > 0)


def test_adapted_beats_macs_proxy_on_held_out_device(fitted, data):
    X, _, target, macs = data
    macs_rho = rho(macs, target)
    for k in (10, 20):
        idx = fitted.select_support(X, k)
        r = rho(fitted.adapt(X[idx], target[idx]).predict(X), target)
        assert r > 0.9, f"k={k}: rho {r:.3f}"
        assert r > macs_rho + 0.1, f"k={k}: rho {r:.3f} vs MACs {macs_rho:.3f}"


def test_predictions_are_in_ms_scale(fitted, data):
    X, _, target, _ = data
    idx = fitted.select_support(X, 20)
    pred = fitted.adapt(X[idx], target[idx]).predict(X)
    ratio = np.median(pred / target)
    assert 0.8 < ratio < 1.25


def test_deterministic_given_seed(data):
    X, lat, target, _ = data
    a = MetaLatencyPredictor(seed=3, mlp="never").meta_fit(X, lat)
    b = MetaLatencyPredictor(seed=3, mlp="never").meta_fit(X, lat)
    ia, ib = a.select_support(X, 12), b.select_support(X, 12)
    np.testing.assert_array_equal(ia, ib)
    np.testing.assert_array_equal(a.adapt(X[ia], target[ia]).predict(X), b.adapt(X[ib], target[ib]).predict(X))


def test_nan_sources_and_unseen_archs(data):
    X, lat, target, macs = data
    rng = np.random.default_rng(1)
    holes = {}
    for i, (name, v) in enumerate(lat.items()):
        v = v.copy()
        if i % 2 == 0:
            v[rng.random(len(v)) < 0.4] = np.nan
        holes[name] = v
    train = np.arange(len(X)) < 450
    model = MetaLatencyPredictor(seed=0, mlp="never").meta_fit(X[train], {k: v[train] for k, v in holes.items()})
    Xt, yt = X[~train], target[~train]
    idx = model.select_support(Xt, 20)
    r = rho(model.adapt(Xt[idx], yt[idx]).predict(Xt), yt)
    assert r > 0.85 and r > rho(macs[~train], yt) + 0.05


def test_other_width_integer_encoding_with_constant_column():
    rng = np.random.default_rng(5)
    n = 400
    depth = rng.integers(1, 5, n)
    width = rng.choice([16.0, 24.0, 32.0, 48.0], n)
    res = rng.integers(0, 4, n) * 32 + 96
    X = np.column_stack([depth, width, res, np.full(n, 7.0)]).astype(float)

    def dev(a, b, c, r):
        return a * depth * width**b * (res / 128.0) ** c * np.exp(0.02 * r.normal(size=n)) + 1.0

    lat = {}
    for i in range(5):
        a, b, c = np.random.default_rng(i).uniform([0.5, 1.0, 1.0], [2.0, 2.0, 2.0])
        lat[f"d{i}"] = dev(a, b, c, np.random.default_rng(i + 50))
    model = MetaLatencyPredictor(seed=0).meta_fit(X, lat)
    target = dev(1.0, 1.7, 1.2, np.random.default_rng(99))
    idx = model.select_support(X, 10)
    assert rho(model.adapt(X[idx], target[idx]).predict(X), target) > 0.9


def test_single_source_device(data):
    X, lat, target, _ = data
    model = MetaLatencyPredictor(seed=0, mlp="never").meta_fit(X, {"dev0": lat["dev0"]})
    idx = model.select_support(X, 20)
    pred = model.adapt(X[idx], target[idx]).predict(X)
    assert np.all(pred > 0) and rho(pred, target) > 0.5


def test_save_load_roundtrip(tmp_path, fitted, data):
    X, _, target, _ = data
    fitted.save(tmp_path / "meta")
    loaded = MetaLatencyPredictor.load(tmp_path / "meta")
    np.testing.assert_array_equal(fitted.select_support(X, 15), loaded.select_support(X, 15))
    idx = fitted.select_support(X, 15)
    dev = fitted.adapt(X[idx], target[idx])
    np.testing.assert_allclose(loaded.adapt(X[idx], target[idx]).predict(X), dev.predict(X), rtol=1e-12)
    dev.save(tmp_path / "dev")
    np.testing.assert_allclose(AdaptedLatencyPredictor.load(tmp_path / "dev").predict(X), dev.predict(X), rtol=1e-12)
    as_json = json.loads(json.dumps(dev.to_dict()))
    np.testing.assert_allclose(AdaptedLatencyPredictor.from_dict(as_json).predict(X), dev.predict(X), rtol=1e-12)
    assert not list(tmp_path.rglob("*.pkl"))


def test_exact_match_table_roundtrip(tmp_path, data):
    X, lat, target, _ = data
    lat = {k: np.where(np.arange(len(X)) % 5 == i % 5, np.nan, v) for i, (k, v) in enumerate(lat.items())}
    model = MetaLatencyPredictor(seed=0, mlp="never", grid=((0.0, 0.3),)).meta_fit(X, lat)
    assert model.basis.exact_weight > 0
    idx = model.select_support(X, 10)
    dev = model.adapt(X[idx], target[idx])
    model.save(tmp_path / "m")
    again = MetaLatencyPredictor.load(tmp_path / "m").adapt(X[idx], target[idx])
    np.testing.assert_allclose(again.predict(X), dev.predict(X), rtol=1e-12)
    strict = json.loads(json.dumps(dev.to_dict(), allow_nan=False))
    np.testing.assert_allclose(AdaptedLatencyPredictor.from_dict(strict).predict(X), dev.predict(X), rtol=1e-12)


def test_more_features_than_archs_and_tiny_support():
    rng = np.random.default_rng(2)
    n, d = 80, 300
    X = rng.normal(size=(n, d))
    w = np.abs(rng.normal(size=(3, d)))
    lat = {f"d{i}": np.exp(0.02 * (X @ (w[i % 3] + 0.1 * rng.normal(size=d))) / np.sqrt(d)) for i in range(4)}
    model = MetaLatencyPredictor(seed=0).meta_fit(X, lat)
    target = np.exp(0.02 * (X @ w[0]) / np.sqrt(d))
    idx = model.select_support(X, 15)
    assert rho(model.adapt(X[idx], target[idx]).predict(X), target) > 0.8
    one = model.adapt(X[:1], target[:1]).predict(X)
    assert np.all(one > 0) and np.all(np.isfinite(one))


def test_bad_inputs(fitted, data):
    X, lat, target, _ = data
    with pytest.raises(ValueError, match="meta_fit"):
        MetaLatencyPredictor().adapt(X[:5], target[:5])
    with pytest.raises(ValueError, match="meta_fit"):
        MetaLatencyPredictor().select_support(X, 5)
    with pytest.raises(ValueError, match="shape"):
        MetaLatencyPredictor().meta_fit(X, {"a": lat["dev0"][:-1]})
    with pytest.raises(ValueError, match="positive"):
        MetaLatencyPredictor().meta_fit(X, {"a": -lat["dev0"]})
    with pytest.raises(ValueError, match="non-empty"):
        MetaLatencyPredictor().meta_fit(X, {})
    with pytest.raises(ValueError, match="k must be"):
        fitted.select_support(X[:5], 6)
    with pytest.raises(ValueError, match="k must be"):
        fitted.select_support(X, 0)
    with pytest.raises(ValueError, match="columns"):
        fitted.select_support(X[:, :-1], 3)
    with pytest.raises(ValueError, match="shape"):
        fitted.adapt(X[:5], target[:4])
    with pytest.raises(ValueError, match="positive"):
        fitted.adapt(X[:3], np.array([1.0, 0.0, 2.0]))
    with pytest.raises(ValueError, match="NaN"):
        fitted.adapt(np.full((2, X.shape[1]), np.nan), np.ones(2))


def _load_fbnet(n: int):
    import pandas as pd

    with open(DATA / "fbnet" / "archs.jsonl", encoding="utf-8") as fh:
        ops = np.array([json.loads(line)["ops"] for _, line in zip(range(n), fh)])
    X = np.zeros((n, ops.shape[1] * 9))
    X[np.arange(n)[:, None], np.arange(ops.shape[1]) * 9 + ops] = 1.0
    table = pd.read_csv(DATA / "fbnet" / "latency_ms.csv").set_index("arch_id").loc[: n - 1]
    return X, {c: table[c].to_numpy(float) for c in table.columns}


def test_real_fbnet_held_out_devices():
    if not (DATA / "fbnet" / "latency_ms.csv").is_file():
        unavailable(f"shared latency data not found at {DATA}")
    X, lat = _load_fbnet(1000)
    for held_out, bar in (("raspi4", 0.93), ("titan_rtx_32", 0.95)):
        src = {k: v for k, v in lat.items() if k != held_out}
        model = MetaLatencyPredictor(seed=0, mlp="never").meta_fit(X, src)
        idx = model.select_support(X, 20)
        r = rho(model.adapt(X[idx], lat[held_out][idx]).predict(X), lat[held_out])
        assert r > bar, f"{held_out}: rho {r:.3f}"


def test_residual_mlp_encoder_persists(tmp_path, data):
    X, lat, target, _ = data
    model = MetaLatencyPredictor(seed=0, mlp="always", grid=((0.0, 0.0),)).meta_fit(X, lat)
    assert model.basis.encoder.mlp, "mlp='always' must train the residual MLP"
    idx = model.select_support(X, 20)
    dev = model.adapt(X[idx], target[idx])
    assert rho(dev.predict(X), target) > 0.9
    dev.save(tmp_path / "dev")
    np.testing.assert_allclose(AdaptedLatencyPredictor.load(tmp_path / "dev").predict(X), dev.predict(X), rtol=1e-12)
    with pytest.raises(ValueError, match="mlp"):
        MetaLatencyPredictor(mlp="sometimes")
