"""How well do the surrogate predictors (predictors.accuracy) rank held-out subnets, by training-set size?

Reads a tabular benchmark (a CSV with an `arch` column of canonical arch JSON and numeric target columns, as
written by benchmarks/tabular.py), encodes the archs one-hot in the supernet's own search space, and for each
training size and predictor kind trains on a random subset and scores the rows it did not see (Kendall tau,
Spearman rho, MAPE; mean +- std over repeats). Also times one fit at the largest size and prediction
throughput. The table may still be growing: the rows complete when it is read are used, and counted.

    python benchmarks/accuracy_predictors.py SUPERNET_DIR TABLE.csv [--target accuracy] [--sizes 25,50,100,200]
        [--repeats 5] [--kinds ridge,svr,gbr,mlp,ensemble,auto] [--holdout N] [--log-target] [--out results.json]
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")  # small matrices: one thread each, leave the cores to others

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nasengine.predictors.accuracy import MODELS, fit_predictor, quality_by_size, summarise_quality  # noqa: E402
from nasengine.search_spaces import Space  # noqa: E402
from nasengine.search_spaces.storage import atomic_write  # noqa: E402
from nasengine.supernets.io import read_config  # noqa: E402


def load_space(supernet_dir: Path) -> Space:
    """The supernet's search space, from its config.json (no weights are loaded)."""
    config = read_config(supernet_dir)
    if isinstance(config.get("space"), dict):
        return Space.from_dict(config["space"])
    from nasengine import supernets  # older configs without a stored space: rebuild the family to get it

    return supernets.from_config(config).space


def read_table(path: Path, space: Space, target: str) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
    """One-hot encodings and targets of the table's complete rows (a snapshot: the file may be growing).
    Rows with an unparsable or invalid arch, or a missing/non-finite target, are skipped; duplicates keep the
    first occurrence. Returns (X, y, counts)."""
    text = path.read_text(encoding="utf-8")
    if not text.endswith("\n"):  # a row being appended right now
        text = text[: text.rfind("\n") + 1]
    reader = csv.DictReader(io.StringIO(text))
    if reader.fieldnames is None or "arch" not in reader.fieldnames or target not in reader.fieldnames:
        raise SystemExit(f"{path}: needs columns 'arch' and {target!r}; has {reader.fieldnames}")
    archs, values, seen = [], [], set()
    counts = {"read": 0, "bad_arch": 0, "bad_target": 0, "duplicate": 0}
    for row in reader:
        counts["read"] += 1
        try:
            arch = space.canonical(json.loads(row["arch"]))
        except (TypeError, ValueError, KeyError):
            counts["bad_arch"] += 1
            continue
        try:
            value = float(row[target])
        except (TypeError, ValueError):
            value = math.nan
        if not math.isfinite(value):
            counts["bad_target"] += 1
            continue
        key = space.key(arch)
        if key in seen:
            counts["duplicate"] += 1
            continue
        seen.add(key)
        archs.append(arch)
        values.append(value)
    counts["used"] = len(archs)
    if not archs:
        raise SystemExit(f"{path}: no usable rows for target {target!r} ({counts})")
    return space.encode_many(archs, "onehot").astype(np.float64), np.asarray(values), counts


def timings(X: np.ndarray, y: np.ndarray, kinds: list[str], size: int, seed: int,
            log_target: bool = False) -> dict[str, dict[str, float]]:
    """Fit seconds on `size` rows (best of 3) and prediction rows/s on 20,000 rows (best of 3), per kind."""
    big = np.tile(X, (int(np.ceil(20000 / len(X))), 1))[:20000]
    out = {}
    for kind in kinds:
        fits, preds = [], []
        for r in range(3):
            started = time.perf_counter()
            model = fit_predictor(X[:size], y[:size], kind=kind, seed=seed + r, log_target=log_target)
            fits.append(time.perf_counter() - started)
            started = time.perf_counter()
            model.predict(big)
            preds.append(time.perf_counter() - started)
        small = min(_seconds(lambda: model.predict(X[:100])) for _ in range(5))
        out[kind] = {"fit_rows": size, "fit_seconds": min(fits), "predict_rows_per_s": len(big) / min(preds),
                     "predict_100_rows_ms": 1e3 * small, "chosen": model.kind}
    return out


def _seconds(fn: Any) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def _pm(mean: float, std: float, digits: int = 3) -> str:
    return "n/a" if not math.isfinite(mean) else f"{mean:.{digits}f} ± {std:.{digits}f}"


def markdown(summary: list[dict[str, Any]]) -> str:
    lines = ["| train size | kind | Kendall tau | Spearman rho | MAPE | fit s | held-out rows | auto picked |",
             "|---:|---|---|---|---|---:|---:|---|"]
    for s in summary:
        picked = ", ".join(f"{k}×{n}" for k, n in s["chosen"].items()) if s["kind"] == "auto" else ""
        lines.append(f"| {s['size']} | {s['kind']} | {_pm(s['kendall_tau_mean'], s['kendall_tau_std'])} | "
                     f"{_pm(s['spearman_rho_mean'], s['spearman_rho_std'])} | "
                     f"{_pm(s['mape_mean'], s['mape_std'], 4)} | {s['fit_seconds_mean']:.2f} | {s['n_test']:.0f} | "
                     f"{picked} |")
    return "\n".join(lines)


def _clean(value: Any) -> Any:
    """NaN/inf -> None, recursively, for strict JSON."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("supernet_dir", type=Path)
    ap.add_argument("table", type=Path)
    ap.add_argument("--target", default="accuracy")
    ap.add_argument("--sizes", default="25,50,100,200")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--kinds", default=",".join([*MODELS, "auto"]), help="comma list of kinds; 'auto' = chosen by CV")
    ap.add_argument("--holdout", type=int, default=None,
                    help="score every size on the same N held-out rows per repeat (default: all unused rows)")
    ap.add_argument("--log-target", action="store_true", help="fit log(target) (latency, params, macs)")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None, help="write every row and the summary here as JSON")
    args = ap.parse_args(argv)

    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    space = load_space(args.supernet_dir)
    X, y, counts = read_table(args.table, space, args.target)
    print(f"{args.table}: {counts['used']} rows used for {args.target!r} (read {counts['read']}, skipped "
          f"{counts['bad_arch']} bad arch, {counts['bad_target']} missing target, {counts['duplicate']} duplicate); "
          f"{X.shape[1]} one-hot features", flush=True)
    started = time.perf_counter()
    rows = quality_by_size(X, y, sizes=sizes, seed=args.seed, repeats=args.repeats, kinds=kinds,
                           holdout=args.holdout, folds=args.folds, log_target=args.log_target)
    summary = summarise_quality(rows)
    used_sizes = sorted({r.size for r in rows})
    skipped = [s for s in sizes if s not in used_sizes]
    print(f"\n{args.target}: held-out quality, mean ± std over {args.repeats} repeats "
          f"({time.perf_counter() - started:.0f} s)" + (f"; sizes {skipped} skipped (too few rows)" if skipped else ""))
    print(markdown(summary))
    timing = timings(X, y, kinds, max(used_sizes), args.seed, args.log_target)
    print(f"\ntimings (1 thread, best of 3): fit on {max(used_sizes)} rows x {X.shape[1]} features; predict")
    print("| kind | fit s | predict rows/s (20k rows) | predict 100 rows ms |\n|---|---:|---:|---:|")
    for kind, t in timing.items():
        print(f"| {kind} | {t['fit_seconds']:.3f} | {t['predict_rows_per_s']:,.0f} | {t['predict_100_rows_ms']:.2f} |")
    if args.out:
        record = {"supernet_dir": str(args.supernet_dir), "table": str(args.table), "target": args.target,
                  "rows": counts, "n_features": int(X.shape[1]), "sizes": sizes, "sizes_used": used_sizes,
                  "repeats": args.repeats, "kinds": kinds, "holdout": args.holdout, "log_target": args.log_target,
                  "folds": args.folds, "seed": args.seed, "summary": summary, "timing": timing,
                  "results": [r.to_dict() for r in rows]}
        atomic_write(args.out, json.dumps(_clean(record), indent=1, allow_nan=False))
        print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
