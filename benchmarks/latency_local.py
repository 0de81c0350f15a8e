"""The few-shot latency predictor on this machine's own devices and the engine's own search space.

Measures a seeded pool of subnets of a trained supernet on every local device (the same measurement path and
per-device cache as `nasengine device adapt`, so a rerun reuses them), then leaves each device out in turn:
meta-train on the others, measure k archs picked by the predictor, and rank the whole pool. Yardsticks as in
latency_meta.py (MACs, most similar source, ridge on the sources), run with the same support. Prints markdown.

    python benchmarks/latency_local.py runs/supernet [--pool 150] [--devices ort-cpu-1t,...] [--seeds 3]
        [--retest-rounds 3]

--retest-rounds R measures the pool R more times on the first device, each round in a fresh random order, and
judges the predictor against the per-arch median of all rounds: on sub-millisecond models one pass in pool order
carries drift (the machine's load changes while it runs), which no function of the architecture can predict.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from latency_meta import KS, full_label_reference, most_similar, rho, ridge_on_sources  # noqa: E402

from nasengine.measurement.devices import Workload, get_device  # noqa: E402
from nasengine.measurement.adapt import DATA_DIR, LatencyCache, _measure_pool, arch_features  # noqa: E402
from nasengine.measurement.devices.predicted import N_DESCRIPTORS  # noqa: E402
from nasengine.progress import Progress  # noqa: E402
from nasengine.training.loading import load_trained  # noqa: E402
from nasengine.predictors.latency import MetaLatencyPredictor  # noqa: E402
from nasengine.search_spaces.samplers import sample_unique  # noqa: E402

DEVICES = "ort-cpu-1t,ort-cpu-2t,ort-cpu-1t-int8,ort-cpu-2t-int8,torch-cpu-1t,torch-cpu-2t"


def retest(net: object, device: object, archs: list, first: np.ndarray, rounds: int, seed: int = 0) -> np.ndarray:
    """(rounds + 1, n) latencies: the cached pass, then `rounds` passes each in a new random order."""
    rng = np.random.default_rng(seed)
    out = [first]
    with Progress(rounds * len(archs), "retest rounds", "measurement", True) as bar:
        for _ in range(rounds):
            values = np.empty(len(archs))
            for i in rng.permutation(len(archs)):
                values[i] = device.measure(Workload.of_supernet(net, archs[i])).median_ms  # type: ignore[attr-defined]
                bar.update(1)
            out.append(values)
    return np.stack(out)


def judge_on_retest(X: np.ndarray, lat: np.ndarray, names: list[str], passes: np.ndarray, seeds: int) -> None:
    """Ours (support from the single cached pass, as `device adapt` measures it) against the median of all passes
    of the first device; prints the test-retest rho between passes as the noise ceiling."""
    pairs = [rho(passes[a], passes[b]) for a in range(len(passes)) for b in range(a + 1, len(passes))]
    truth = np.median(passes, 0)
    y = lat[:, 0]
    print(f"\n{names[0]}: {len(passes)} passes over the pool (the cached one in pool order, {len(passes) - 1} in "
          f"random orders); test-retest rho between passes {min(pairs):.3f}-{max(pairs):.3f} (mean "
          f"{np.mean(pairs):.3f}); cached pass vs the median of all {rho(y, truth):.3f}")
    for k in KS:
        vals = []
        for s in range(seeds):
            model = MetaLatencyPredictor(seed=s, descriptors=N_DESCRIPTORS)
            model.meta_fit(X, {names[j]: lat[:, j] for j in range(1, len(names))})
            idx = model.select_support(X, k)
            pred = model.adapt(X[idx], y[idx]).predict(X)
            rest = np.setdiff1d(np.arange(len(y)), idx)
            vals.append((rho(pred, truth), rho(pred[rest], truth[rest])))
        m = np.mean(vals, 0)
        print(f"  k={k}: ours vs the median of all passes: rho {m[0]:.3f} over all {len(y)}, {m[1]:.3f} over the "
              f"{len(y) - k} archs outside the support (mean of {seeds} seeds)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("supernet", type=Path)
    parser.add_argument("--pool", type=int, default=150)
    parser.add_argument("--devices", default=DEVICES)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--retest-rounds", type=int, default=0)
    args = parser.parse_args()
    net, _ = load_trained(args.supernet)
    names = args.devices.split(",")
    archs = sample_unique(net.space, args.pool, seed=0, include_extremes=True)
    X = np.stack([arch_features(net.space, a, net.describe(a)) for a in archs])
    macs = np.array([net.cost(a).macs for a in archs], dtype=float)
    cache = LatencyCache(args.supernet / DATA_DIR)
    started = time.perf_counter()
    with Progress(len(archs) * len(names), "measure pool", "measurement", True) as bar:
        lat = np.stack([_measure_pool(net, get_device(n, supernet_dir=args.supernet), archs, cache, bar)
                        for n in names], 1)
    print(f"\n{len(archs)} subnets of {args.supernet} measured on {len(names)} devices "
          f"({time.perf_counter() - started:.0f} s, cached in {args.supernet / DATA_DIR}); features = one-hot genes "
          f"+ {N_DESCRIPTORS} cost descriptors ({X.shape[1]} columns), as `nasengine device adapt` uses; "
          f"{args.seeds} seeds\n")
    print("| left-out device | latency range (ms) | "
          + " | ".join(f"ours k={k} | MACs | most similar k={k} | ridge k={k}" for k in KS) + " | full-label ref |")
    print("|---|---|" + "---|" * (4 * len(KS) + 1))
    means: dict[str, list[float]] = {}
    for t, name in enumerate(names):
        others = [j for j in range(len(names)) if j != t]
        y, src = lat[:, t], lat[:, others]
        cells = []
        for k in KS:
            vals = {"ours": [], "sim": [], "ridge": []}
            for s in range(args.seeds):
                model = MetaLatencyPredictor(seed=s, descriptors=N_DESCRIPTORS)
                model.meta_fit(X, {names[j]: lat[:, j] for j in others})
                idx = model.select_support(X, k)
                vals["ours"].append(rho(model.adapt(X[idx], y[idx]).predict(X), y))
                vals["sim"].append(rho(most_similar(src, idx, y), y))
                vals["ridge"].append(rho(ridge_on_sources(src, idx, y), y))
            row = {f"ours k={k}": np.mean(vals["ours"]), f"MACs k={k}": rho(macs, y),
                   f"most similar k={k}": np.mean(vals["sim"]), f"ridge k={k}": np.mean(vals["ridge"])}
            for key, v in row.items():
                means.setdefault(key, []).append(float(v))
            cells += [f"{v:.3f}" for v in row.values()]
        X_log = np.hstack([X[:, :-N_DESCRIPTORS], np.log1p(X[:, -N_DESCRIPTORS:])])  # costs on a log scale
        ref = full_label_reference(X_log, src, y)  # 5-fold ridge given ALL of the device's labels: a noise ceiling
        means.setdefault("ref", []).append(ref)
        cells.append(f"{ref:.3f}")
        print(f"| {name} | {y.min():.3f}–{y.max():.3f} | " + " | ".join(cells) + " |")
    print("| **mean** | | " + " | ".join(f"**{np.mean(v):.3f}**" for v in means.values()) + " |")
    if args.retest_rounds > 0:
        device = get_device(names[0], supernet_dir=args.supernet)
        judge_on_retest(X, lat, names, retest(net, device, archs, lat[:, 0], args.retest_rounds), args.seeds)


if __name__ == "__main__":
    main()
