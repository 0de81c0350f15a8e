"""Mixed-precision fronts against all-FP32 and all-INT8 fronts, with the same strategy and evaluation budget.

Each run is an ordinary `nasengine search` (resumable, in its own directory) with `--quantization none`, `int8`
or `search`. The three fronts (error, measured latency) are judged with one reference: the ideal and nadir points
of the non-dominated set of every evaluation of every run, reference point 1.1 after normalisation. The latency
ratio at equal accuracy: for each accuracy reached on the FP32 front, the fastest subnet of the other front that
is at least as accurate, as FP32 latency / its latency (> 1: faster than FP32).

    python benchmarks/quant_fronts.py SUPERNET_DIR --work runs/quant_fronts [--evals 120] [--seeds 1]
        [--strategy linas] [--device ort-cpu-1t] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from nasengine.reporting.fronts import pareto_mask
from nasengine.searching.api import load_rows
from nasengine.searching.hypervolume import normalised_hypervolume
from nasengine.searching.runner import SearchRequest, search

MODES = ("none", "int8", "search")


def _front(points: np.ndarray) -> np.ndarray:
    """Non-dominated (error, latency) points sorted by error."""
    front = points[pareto_mask(points)]
    return front[np.argsort(front[:, 0])]


def latency_ratios(fp32_front: np.ndarray, other_front: np.ndarray) -> list[tuple[float, float]]:
    """(accuracy, FP32 latency / other's latency) at each FP32 front point the other front can match."""
    out = []
    for error, latency in fp32_front:
        matching = other_front[other_front[:, 0] <= error + 1e-12]
        if len(matching):
            out.append((1.0 - float(error), float(latency / matching[:, 1].min())))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("supernet_dir", type=Path)
    parser.add_argument("--work", type=Path, required=True, help="one run directory per mode and seed here")
    parser.add_argument("--evals", type=int, default=120)
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--strategy", default="linas")
    parser.add_argument("--device", default="ort-cpu-1t")
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--out", type=Path, default=None, help="write summary.json here")
    args = parser.parse_args()
    latency = f"latency_ms:{args.device}"
    modes = [m for m in args.modes.split(",") if m]
    points: dict[tuple[str, int], np.ndarray] = {}
    seconds: dict[str, float] = {}
    for seed in range(args.seeds):
        for mode in modes:
            out = args.work / f"{mode}-{seed}"
            started = time.perf_counter()
            search(SearchRequest(args.supernet_dir, out, (args.device,), args.evals, strategy=args.strategy,
                                 seed=seed, progress=False, quantization=mode))
            seconds[f"{mode}-{seed}"] = time.perf_counter() - started
            rows = load_rows(out)
            points[(mode, seed)] = np.array([[r.metrics["error"], r.metrics[latency]] for r in rows])
            print(f"{mode} seed {seed}: {len(rows)} rows in {seconds[f'{mode}-{seed}']:.0f} s", flush=True)
    union = _front(np.vstack(list(points.values())))
    ideal, nadir = union.min(axis=0).tolist(), union.max(axis=0).tolist()
    summary: dict = {"supernet": str(args.supernet_dir), "device": args.device, "strategy": args.strategy,
                     "evals": args.evals, "seeds": args.seeds, "ideal": ideal, "nadir": nadir, "reference": 1.1,
                     "seconds": seconds, "modes": {}}
    for mode in modes:
        hvs = [normalised_hypervolume(points[(mode, s)], ideal, nadir) for s in range(args.seeds)]
        fronts = [_front(points[(mode, s)]) for s in range(args.seeds)]
        entry = {"hypervolume": hvs, "hypervolume_mean": float(np.mean(hvs)),
                 "front": [f.tolist() for f in fronts]}
        if mode != "none" and "none" in modes:
            ratios = [latency_ratios(_front(points[("none", s)]), fronts[s]) for s in range(args.seeds)]
            flat = [r for per_seed in ratios for _, r in per_seed]
            entry["latency_ratio_at_equal_accuracy"] = ratios
            entry["latency_ratio_median"] = float(np.median(flat)) if flat else None
            entry["latency_ratio_max"] = float(np.max(flat)) if flat else None
        summary["modes"][mode] = entry
        print(f"{mode:<7} hypervolume {entry['hypervolume_mean']:.4f} "
              f"({', '.join(f'{h:.4f}' for h in hvs)})"
              + (f"; FP32/this latency at equal accuracy: median {entry['latency_ratio_median']:.2f}x, "
                 f"best {entry['latency_ratio_max']:.2f}x" if entry.get("latency_ratio_median") else ""))
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "summary.json").write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
