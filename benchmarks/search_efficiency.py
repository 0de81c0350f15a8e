"""How many real evaluations does each strategy need to reach 98 % of the true hypervolume of a tabular benchmark?

The table (benchmarks/tabular.py build ... --enumerate) holds every arch of a sub-space of a trained supernet's
space, each with the evaluator's accuracy and a latency, so its true Pareto front is known exactly. Each
strategy searches that sub-space through `nasengine.searching.api.run_search` (the engine's own search path),
with evaluations answered from the table; the hypervolume after every evaluation is normalised by the true
front's ideal and nadir points (reference point 1.1 in normalised units). As in `nasengine search`, the strategies
get the supernet's cost descriptors of every arch (`--no-features`: the encoding alone), which LINAS's predictors
use; evaluations (accuracy and latency) come only from the table.

    python benchmarks/search_efficiency.py SUPERNET_DIR TABLE.csv --restrict benchmarks/fmnist_subspace.json \
        --latency latency_ms:lut:ort-cpu-1t [--strategies random,nsga2,tpe,linas] [--seeds 5] [--budget 500]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nasengine import supernets
from nasengine.searching.api import RunSettings, SearchPlan, run_search
from nasengine.searching.hypervolume import hypervolume_by_evaluation, normalised_hypervolume
from nasengine.searching.objectives import Objective
from nasengine.searching.arch_features import cost_features
from nasengine.searching.supernet_metrics import Quantization
from nasengine.reporting.fronts import pareto_mask

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tabular import restricted  # noqa: E402

TARGET = 0.98


def load_table(path: Path, latency: str) -> dict[str, dict[str, float]]:
    frame = pd.read_csv(path)
    if latency not in frame:
        raise SystemExit(f"{path} has no column {latency!r} (columns: {', '.join(frame.columns)})")
    return {arch: {"error": 1.0 - float(acc), "latency_ms": float(ms)}
            for arch, acc, ms in frame[["arch", "accuracy", latency]].itertuples(index=False)}


def true_front_bounds(table: dict[str, dict[str, float]]) -> tuple[list[float], list[float], float]:
    costs = np.array([[m["error"], m["latency_ms"]] for m in table.values()])
    front = costs[pareto_mask(costs)]
    ideal, nadir = front.min(axis=0).tolist(), front.max(axis=0).tolist()
    return ideal, nadir, normalised_hypervolume(costs, ideal, nadir)


def run_one(space: Any, table: dict[str, dict[str, float]], strategy: str, seed: int, budget: int,
            ideal: list[float], nadir: list[float], true_hv: float, features: Any = None) -> dict[str, Any]:
    objectives = [Objective("error"), Objective("latency_ms")]

    def evaluate(arch: dict[str, Any]) -> tuple[dict[str, float], dict[str, Any]]:
        return dict(table[space.key(arch)]), {}

    started = time.perf_counter()
    result = run_search(space, objectives, [], evaluate, SearchPlan(strategy, budget, seed),
                        RunSettings(identity={"benchmark": "tabular"}, label=strategy), arch_features=features)
    seconds = time.perf_counter() - started
    curve = hypervolume_by_evaluation(result.rows, objectives, (), ideal, nadir) / true_hv
    reached = np.flatnonzero(curve >= TARGET)
    return {"strategy": strategy, "seed": seed, "evaluations": len(result.rows),
            "to_target": int(reached[0]) + 1 if len(reached) else None, "final_fraction": float(curve[-1]),
            "seconds": round(seconds, 2),
            "fraction_at": {n: float(curve[min(n, len(curve)) - 1]) for n in (50, 100, 200, 400) if n <= budget}}


def summarise(rows: list[dict[str, Any]], budget: int) -> list[dict[str, Any]]:
    out = []
    for strategy in dict.fromkeys(r["strategy"] for r in rows):
        mine = [r for r in rows if r["strategy"] == strategy]
        needed = [r["to_target"] if r["to_target"] is not None else float("inf") for r in mine]
        median = statistics.median(needed)
        out.append({"strategy": strategy, "seeds": len(mine), "median_to_target": median,
                    "per_seed": [r["to_target"] for r in mine],
                    "reached": sum(r["to_target"] is not None for r in mine),
                    "final_fraction": statistics.median(r["final_fraction"] for r in mine),
                    "seconds": statistics.median(r["seconds"] for r in mine)})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("supernet_dir", type=Path)
    parser.add_argument("table", type=Path)
    parser.add_argument("--restrict", type=Path, required=True)
    parser.add_argument("--latency", required=True, help="the table's latency column")
    parser.add_argument("--strategies", default="random,nsga2,tpe,linas")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--budget", type=int, default=500)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--no-features", dest="features", action="store_false",
                        help="strategies see the encoding alone, not the supernet's cost descriptors")
    args = parser.parse_args()
    net = supernets.from_config(supernets.io.read_config(args.supernet_dir))
    space = restricted(net.space, json.loads(args.restrict.read_text()))
    features = cost_features(net, Quantization("none")) if args.features else None
    table = load_table(args.table, args.latency)
    if len(table) != space.size:
        raise SystemExit(f"the table holds {len(table)} archs, the restricted space {space.size}: build it with "
                         f"--enumerate first")
    ideal, nadir, true_hv = true_front_bounds(table)
    print(f"table: {len(table)} archs, true front hypervolume {true_hv:.4f} (ideal {ideal}, nadir {nadir})")
    rows = []
    for strategy in args.strategies.split(","):
        for seed in range(args.seeds):
            rows.append(run_one(space, table, strategy, seed, args.budget, ideal, nadir, true_hv, features))
            print(json.dumps(rows[-1]), flush=True)
    summary = summarise(rows, args.budget)
    print(f"\n| strategy | evaluations to {TARGET:.0%} of the true hypervolume (median of {args.seeds} seeds) "
          f"| per seed | HV fraction at {args.budget} |")
    print("|---|---|---|---|")
    for s in summary:
        median = s["median_to_target"]
        shown = f">{args.budget}" if median == float("inf") else f"{median:g}"
        per_seed = ", ".join(str(n) if n is not None else f">{args.budget}" for n in s["per_seed"])
        print(f"| {s['strategy']} | {shown} | {per_seed} | {s['final_fraction']:.3f} |")
    if args.out:
        args.out.write_text(json.dumps({"runs": rows, "summary": summary, "true_hv": true_hv, "ideal": ideal,
                                        "nadir": nadir, "table": str(args.table)}, indent=1, default=str))


if __name__ == "__main__":
    main()
