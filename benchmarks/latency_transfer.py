"""Few-shot latency transfer across device families: NASFLAT's FBNet tasks F0-F5, with an ablation.

Each task meta-trains on the full latency tables of its source devices, adapts to each target device from k
architectures measured on it, and scores Spearman rho on all 5,000 architectures of the target (support
included); the task's score is the mean over its targets, then over seeds. Rows of the ablation:

- ours: one-hot encoding + the op descriptions' cost descriptors, support chosen by the predictor;
- ours, random support: the same predictor, k random architectures;
- no descriptors: one-hot encoding only (the encoding the predictor had before), support chosen by it;
- HELP's 10 reference archs: ours adapted on HELP's fixed hardware-embedding architectures (k = 10);
- descriptor ridge: RidgeCV on the standardized log cost descriptors alone, trained on the predictor's support
  (what the descriptors give without any source device);
- MACs: the MACs proxy (no measurement).

Run: python benchmarks/latency_transfer.py [--seeds 5] [--out benchmarks/results/latency_transfer.md]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):  # one core each: small matrices
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402
from sklearn.linear_model import RidgeCV  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

from latency_spaces import DATA_ROOT, DESCRIPTORS, LatencySpace, load_space, reference_arch_ids  # noqa: E402

from nasengine.predictors.latency import MetaLatencyPredictor  # noqa: E402
from nasengine.predictors.metrics import spearman_rho  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
KS = (10, 20)
_GPUS = [f"{gpu}_{batch}" for gpu in ("1080ti", "2080ti", "titan_rtx", "titanx", "titanxp") for batch in (1, 32, 64)]
# NASFLAT (MLSys 2024) transfer tasks on the FBNet space: source devices -> target devices.
TASKS: dict[str, tuple[list[str], list[str]]] = {
    "F0": (["1080ti_1", "1080ti_32", "1080ti_64", "silver_4114", "silver_4210r", "samsung_a50", "pixel3",
            "essential_ph_1", "samsung_s7"], ["fpga", "raspi4", "eyeriss"]),
    "F1": (["2080ti_1", "essential_ph_1", "silver_4114", "titan_rtx_1", "titan_rtx_32"],
           ["eyeriss", "fpga", "raspi4", "samsung_a50", "samsung_s7"]),
    "F2": (["essential_ph_1", "gold_6226", "gold_6240", "pixel3", "raspi4"],
           ["1080ti_1", "1080ti_32", "2080ti_32", "titan_rtx_1", "titanxp_1"]),
    "F3": (["essential_ph_1", "pixel2", "pixel3", "raspi4", "samsung_s7"],
           ["1080ti_1", "1080ti_32", "2080ti_1", "titan_rtx_1", "titan_rtx_32"]),
    "F4": (["1080ti_64", "2080ti_1", "eyeriss", "gold_6226", "gold_6240", "raspi4", "samsung_s7", "silver_4210r",
            "titan_rtx_1", "titan_rtx_32"], ["1080ti_1", "pixel2", "essential_ph_1"]),
    "F5": (_GPUS, ["gold_6226", "essential_ph_1", "samsung_s7", "pixel2"]),
}
# Mean rho per task as published (NASFLAT's result files): HELP with 10 samples, MultiPredict and NASFLAT with 20.
PUBLISHED = {
    "HELP (10)": (0.966, 0.794, 0.544, 0.414, 0.799, 0.407),
    "MultiPredict (20)": (0.944, 0.757, 0.567, 0.435, 0.764, 0.470),
    "NASFLAT (20)": (0.775, 0.749, 0.847, 0.844, 0.684, 0.534),
}
ROWS = ("ours", "ours_random", "no_descriptors", "help_ref", "descriptor_ridge", "macs")
LABELS = {
    "ours": "ours (encoding + cost descriptors, our support)",
    "ours_random": "ours, random support",
    "no_descriptors": "no descriptors (one-hot only), our support",
    "help_ref": "ours on HELP's 10 reference archs",
    "descriptor_ridge": "ridge on cost descriptors alone, our support",
    "macs": "MACs proxy (no measurement)",
}


def descriptor_ridge(D: np.ndarray, idx: np.ndarray, y: np.ndarray) -> np.ndarray:
    """RidgeCV of log latency on standardized log descriptors, fitted on the support rows."""
    Z = np.log1p(D)
    Z = (Z - Z.mean(0)) / np.where(Z.std(0) > 0, Z.std(0), 1.0)
    return RidgeCV(alphas=np.logspace(-3, 3, 13)).fit(Z[idx], np.log(y[idx])).predict(Z)


def run_task(data: LatencySpace, sources: list[str], targets: list[str], seed: int,
             scores: dict[tuple[str, int], list[float]]) -> float:
    """Score every row of the ablation on one task and seed (appends per-target rho); returns meta-fit seconds."""
    X_full, X_onehot = data.with_descriptors(), data.X
    src = {name: data.latencies[name] for name in sources}
    started = time.perf_counter()
    ours = MetaLatencyPredictor(seed=seed, descriptors=len(DESCRIPTORS)).meta_fit(X_full, src)
    fit_seconds = time.perf_counter() - started
    plain = MetaLatencyPredictor(seed=seed).meta_fit(X_onehot, src)
    ref = reference_arch_ids("fbnet")
    for target in targets:
        y = data.latencies[target]
        scores.setdefault(("macs", 0), []).append(spearman_rho(data.macs, y))
        scores.setdefault(("help_ref", 10), []).append(spearman_rho(ours.adapt(X_full[ref], y[ref]).predict(X_full), y))
        for k in KS:
            idx = ours.select_support(X_full, k)
            rand = np.random.default_rng([seed, k]).choice(len(y), k, replace=False)
            plain_idx = plain.select_support(X_onehot, k)
            found = {
                "ours": ours.adapt(X_full[idx], y[idx]).predict(X_full),
                "ours_random": ours.adapt(X_full[rand], y[rand]).predict(X_full),
                "no_descriptors": plain.adapt(X_onehot[plain_idx], y[plain_idx]).predict(X_onehot),
                "descriptor_ridge": descriptor_ridge(data.descriptors, idx, y),
            }
            for row, pred in found.items():
                scores.setdefault((row, k), []).append(spearman_rho(pred, y))
    return fit_seconds


def throughput(data: LatencySpace, n: int = 100_000) -> tuple[float, float]:
    """Candidates scored per second by an adapted predictor (task F3's, k = 20) on n encodings, single core: the
    whole call (descriptor transform, feature map, source encoder, head) and the best of 3 runs."""
    sources, targets = TASKS["F3"]
    X = data.with_descriptors()
    model = MetaLatencyPredictor(seed=0, descriptors=len(DESCRIPTORS)).meta_fit(
        X, {name: data.latencies[name] for name in sources})
    idx = model.select_support(X, 20)
    adapted = model.adapt(X[idx], data.latencies[targets[0]][idx])
    candidates = X[np.random.default_rng(0).integers(0, len(X), n)]
    best = np.inf
    for _ in range(3):
        started = time.perf_counter()
        adapted.predict(candidates)
        best = min(best, time.perf_counter() - started)
    return n / best, float(model.basis.encoder.mlp != [])


def cell(scores: dict[tuple[str, int], list[float]], row: str, k: int) -> float:
    """Mean of one row at one k, or NaN when that row does not exist at k."""
    key = (row, 0) if row == "macs" else (row, k)
    return float(np.mean(scores[key])) if key in scores else float("nan")


def report(per_task: dict[str, dict[tuple[str, int], list[float]]], seeds: int, fit_seconds: list[float]) -> list[str]:
    """Markdown: the ablation per k, and the published figures beside our main row."""
    tasks = list(TASKS)
    out = [f"Seeds: {seeds} (the meta-fit seed and the random support change; D-optimal support is chosen by the "
           f"fitted predictor). Meta-fit wall time {np.mean(fit_seconds):.1f} s mean, {np.max(fit_seconds):.1f} s "
           "max, one core.", ""]
    for k in KS:
        out += [f"k = {k} measured architectures per target", "",
                "| row | " + " | ".join(tasks) + " | mean |", "|---|" + "---|" * (len(tasks) + 1)]
        for row in ROWS:
            vals = [cell(per_task[t], row, k) for t in tasks]
            if all(np.isnan(vals)):
                continue
            text = " | ".join("" if np.isnan(v) else f"{v:.3f}" for v in vals)
            out.append(f"| {LABELS[row]} | {text} | {np.nanmean(vals):.3f} |")
        out.append("")
    out += ["Published (mean rho per task) beside ours:", "",
            "| method | " + " | ".join(tasks) + " |", "|---|" + "---|" * len(tasks)]
    for name, vals in PUBLISHED.items():
        out.append(f"| {name} | " + " | ".join(f"{v:.3f}" for v in vals) + " |")
    best = [max(v[i] for v in PUBLISHED.values()) for i in range(len(tasks))]
    for k in KS:
        ours = [cell(per_task[t], "ours", k) for t in tasks]
        marks = [f"**{v:.3f}**" if v >= b else f"{v:.3f} (below {b:.3f})" for v, b in zip(ours, best)]
        out.append(f"| ours ({k}) | " + " | ".join(marks) + " |")
    out.append("")
    return out


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--tasks", default=",".join(TASKS), help="comma list of F0..F5")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "latency_transfer.md"))
    args = parser.parse_args(argv)
    if not DATA_ROOT.is_dir():
        sys.exit(f"latency data not found at {DATA_ROOT}")
    unknown = sorted(set(args.tasks.split(",")) - set(TASKS))
    if unknown or args.seeds < 1:
        sys.exit(f"unknown tasks {unknown} (expected F0..F5)" if unknown else "--seeds must be at least 1")
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:  # pragma: no cover
        pass
    data = load_space("fbnet")
    per_task: dict[str, dict[tuple[str, int], list[float]]] = {}
    fit_seconds: list[float] = []
    for name in args.tasks.split(","):
        sources, targets = TASKS[name]
        scores: dict[tuple[str, int], list[float]] = {}
        for seed in range(args.seeds):
            fit_seconds.append(run_task(data, sources, targets, seed, scores))
        per_task[name] = scores
        print(f"{name}: ours k=10 {cell(scores, 'ours', 10):.3f} k=20 {cell(scores, 'ours', 20):.3f} | random "
              f"{cell(scores, 'ours_random', 10):.3f} / {cell(scores, 'ours_random', 20):.3f} | no descriptors "
              f"{cell(scores, 'no_descriptors', 10):.3f} / {cell(scores, 'no_descriptors', 20):.3f}", flush=True)
    if set(per_task) != set(TASKS):
        return  # a partial run prints only
    rate, with_mlp = throughput(data)
    print(f"scoring: {rate:,.0f} candidates/s (one core)")
    lines = ["# Few-shot latency transfer across device families (NASFLAT's FBNet tasks)", "",
             f"Generated {time.strftime('%Y-%m-%d %H:%M')} by `python benchmarks/latency_transfer.py --seeds "
             f"{args.seeds}`. Data: HELP's FBNet latency tables in ../shared/data/latency/fbnet.", ""]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    speed = [f"Scoring speed of an adapted predictor (F3, k = 20{', residual MLP in the encoder' if with_mlp else ''}"
             f"): {rate:,.0f} candidates/s on one core (100,000 encodings per call, best of 3).", ""]
    out.write_text("\n".join(lines + report(per_task, args.seeds, fit_seconds) + speed) + "\n", encoding="utf-8")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
