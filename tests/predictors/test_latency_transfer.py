"""Few-shot latency transfer to a device unlike every source: cost descriptors let the head follow what the new
device pays for (ops launched rather than MACs), chosen per device by the evidence."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from nasengine.predictors.latency import AdaptedLatencyPredictor, MetaLatencyPredictor
from nasengine.predictors.metrics import spearman_rho
from tests.requirements import unavailable

REPO = Path(__file__).resolve().parents[2]
DATA = REPO.parent / "shared" / "data" / "latency"


def two_families(n: int = 800, layers: int = 10, seed: int = 0):
    """Archs of `layers` slots, each a skip or one of 4 ops of growing MACs. 'Phones' pay per MAC (with their own
    per-op mix), the 'GPU' pays per op launched; descriptors = [MACs, ops launched]."""
    rng = np.random.default_rng(seed)
    choice = rng.integers(0, 5, (n, layers))  # 0 = skip
    X = np.zeros((n, layers * 5))
    X[np.arange(n)[:, None], np.arange(layers) * 5 + choice] = 1.0
    op_macs = np.array([0.0, 1.0, 2.0, 4.0, 8.0]) * rng.uniform(0.5, 1.5, (layers, 1))
    macs = op_macs[np.arange(layers), choice].sum(1)
    ops = (choice > 0).sum(1).astype(float)
    phones = {f"phone{i}": (macs * rng.uniform(0.8, 1.2) + 2.0) * np.exp(0.02 * rng.normal(size=n)) for i in range(5)}
    gpu = (1.0 + 0.5 * ops + 0.01 * macs) * np.exp(0.01 * rng.normal(size=n))
    return X, np.stack([macs * 1e6, ops], 1), phones, gpu


def test_descriptors_carry_a_new_device_family() -> None:
    X, D, phones, gpu = two_families()
    with_desc = MetaLatencyPredictor(seed=0, mlp="never", descriptors=2).meta_fit(np.hstack([X, D]), phones)
    plain = MetaLatencyPredictor(seed=0, mlp="never").meta_fit(X, phones)
    XD = np.hstack([X, D])
    idx = with_desc.select_support(XD, 20)
    ours = with_desc.adapt(XD[idx], gpu[idx])
    r_ours = spearman_rho(ours.predict(XD), gpu)
    idx_plain = plain.select_support(X, 20)
    r_plain = spearman_rho(plain.adapt(X[idx_plain], gpu[idx_plain]).predict(X), gpu)
    assert r_ours > 0.9 and r_ours > r_plain + 0.1, (r_ours, r_plain)
    # a device like the sources still gets the sources' prior, and is predicted as well as without descriptors
    phone = phones.pop("phone4")
    again = MetaLatencyPredictor(seed=0, mlp="never", descriptors=2).meta_fit(XD, phones)
    idx = again.select_support(XD, 10)
    assert spearman_rho(again.adapt(XD[idx], phone[idx]).predict(XD), phone) > 0.95


def test_descriptor_model_roundtrips_and_rejects_bad_descriptors(tmp_path: Path) -> None:
    X, D, phones, gpu = two_families(n=300)
    XD = np.hstack([X, D])
    model = MetaLatencyPredictor(seed=1, mlp="never", descriptors=2).meta_fit(XD, phones)
    idx = model.select_support(XD, 12)
    dev = model.adapt(XD[idx], gpu[idx])
    model.save(tmp_path / "meta")
    loaded = MetaLatencyPredictor.load(tmp_path / "meta")
    assert loaded.descriptors == 2
    np.testing.assert_allclose(loaded.adapt(XD[idx], gpu[idx]).predict(XD), dev.predict(XD), rtol=1e-12)
    dev.save(tmp_path / "dev")
    np.testing.assert_allclose(AdaptedLatencyPredictor.load(tmp_path / "dev").predict(XD), dev.predict(XD),
                               rtol=1e-12)
    strict = json.loads(json.dumps(dev.to_dict(), allow_nan=False))
    np.testing.assert_allclose(AdaptedLatencyPredictor.from_dict(strict).predict(XD), dev.predict(XD), rtol=1e-12)
    bad = XD.copy()
    bad[0, -1] = -1.0
    with pytest.raises(ValueError, match="non-negative"):
        dev.predict(bad)
    for wrong in (-1, 1.5, True):
        with pytest.raises(ValueError, match="descriptors"):
            MetaLatencyPredictor(descriptors=wrong)
    with pytest.raises(ValueError, match="leave encoding columns"):
        MetaLatencyPredictor(descriptors=XD.shape[1]).meta_fit(XD, phones)


def test_phones_to_gpus_on_real_latencies() -> None:
    """NASFLAT's task F3 (sources: phones and a Raspberry Pi; targets: GPUs at batch 1 and 32) on 1,000 FBNet
    archs: with descriptors the few-shot head ranks the GPUs well; the one-hot encoding alone could not (0.40)."""
    if not (DATA / "fbnet" / "latency_ms.csv").is_file():
        unavailable(f"shared latency data not found at {DATA}")
    sys.path.insert(0, str(REPO / "benchmarks"))
    from latency_spaces import DESCRIPTORS, load_space
    from latency_transfer import TASKS

    data = load_space("fbnet", n_archs=1000)
    X = data.with_descriptors()
    sources, targets = TASKS["F3"]
    model = MetaLatencyPredictor(seed=0, mlp="never", descriptors=len(DESCRIPTORS)).meta_fit(
        X, {name: data.latencies[name] for name in sources})
    idx = model.select_support(X, 20)
    scores = [spearman_rho(model.adapt(X[idx], data.latencies[t][idx]).predict(X), data.latencies[t])
              for t in targets[:3]]
    assert np.mean(scores) > 0.9, scores


def test_flat_or_tiny_support_keeps_the_prior_and_constant_descriptors_drop_out() -> None:
    X, D, phones, gpu = two_families(n=300)
    D = np.hstack([D, np.zeros((len(D), 1))])  # a cost this family never has (attention MACs of a CNN)
    XD = np.hstack([X, D])
    model = MetaLatencyPredictor(seed=0, mlp="never", descriptors=3).meta_fit(XD, phones)
    assert model.basis.descriptors.count == 3 and model.basis.descriptors.width == 2
    phone = phones["phone0"]
    for idx in ([5], [5, 9], [5, 9, 11]):  # one or two points, or three equal latencies: nothing to reject it on
        flat = np.full(len(idx), 3.0) if len(idx) == 3 else phone[idx]
        dev = model.adapt(XD[idx], flat)
        assert dev.mean_weight == 1.0
        assert spearman_rho(dev.predict(XD), phone) > 0.5, "the sources' prior must still rank the archs"
    odd = XD.copy()
    odd[:, -1] = 1e9  # a value never seen in meta-training on the dropped column changes nothing
    idx = model.select_support(XD, 10)
    dev = model.adapt(XD[idx], gpu[idx])
    np.testing.assert_allclose(dev.predict(odd), dev.predict(XD), rtol=1e-12)
