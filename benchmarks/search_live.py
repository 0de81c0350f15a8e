"""Search efficiency on the live supernet: real evaluations (BN recalibration + validation accuracy) and real
latency measurements, per strategy and seed, judged against the front of every evaluation of every run.

Each run is an ordinary `nasengine search` (through the runner, into its own run directory, resumable). The
reference front is the non-dominated set of all rows of all runs (the "long run": strategies x seeds x budget
evaluations); the hypervolume after each evaluation of each run is normalised by that front's ideal and nadir
points (reference point 1.1) and reported as a fraction of the reference front's hypervolume.

    python benchmarks/search_live.py SUPERNET_DIR --work runs/live [--strategies random,nsga2,linas]
        [--seeds 3] [--evals 100] [--device ort-cpu-1t] [--baseline nsga2]

The last table asks the question of issue #23: with how many real evaluations does each strategy reach the
hypervolume that the baseline (median over its seeds) reaches with its whole budget? Runs already in --work are
read back, not repeated, so strategies can be added to a comparison one invocation at a time.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np

from nasengine.reporting.fronts import pareto_mask
from nasengine.searching.api import load_rows
from nasengine.searching.hypervolume import hypervolume_by_evaluation, normalised_hypervolume
from nasengine.searching.objectives import Objective
from nasengine.searching.runner import SearchRequest, search


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("supernet_dir", type=Path)
    parser.add_argument("--work", type=Path, required=True, help="one run directory per strategy and seed here")
    parser.add_argument("--strategies", default="random,nsga2,linas")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--evals", type=int, default=100)
    parser.add_argument("--device", default="ort-cpu-1t")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--baseline", default="nsga2", help="the strategy whose final hypervolume is the target")
    parser.add_argument("--evals-of", action="append", default=[], metavar="STRATEGY=N",
                        help="a budget of its own for one strategy (repeatable; the others get --evals)")
    args = parser.parse_args()
    budgets = {name: int(n) for name, n in (item.split("=", 1) for item in args.evals_of)}
    latency = f"latency_ms:{args.device}"
    objectives = [Objective("error"), Objective(latency, device=args.device)]
    runs: dict[tuple[str, int], list] = {}
    seconds: dict[tuple[str, int], float] = {}
    for strategy in args.strategies.split(","):
        for seed in range(args.seeds):
            out = args.work / f"{strategy}-{seed}"
            started = time.perf_counter()
            search(SearchRequest(args.supernet_dir, out, (args.device,), budgets.get(strategy, args.evals),
                                 strategy=strategy, seed=seed,
                                 progress=False))
            seconds[(strategy, seed)] = time.perf_counter() - started
            runs[(strategy, seed)] = load_rows(out)
            print(f"{strategy} seed {seed}: {len(runs[(strategy, seed)])} rows in {seconds[(strategy, seed)]:.0f} s",
                  flush=True)
    everything = [r for rows in runs.values() for r in rows]
    costs = np.array([[r.metrics["error"], r.metrics[latency]] for r in everything])
    front = costs[pareto_mask(costs)]
    ideal, nadir = front.min(axis=0).tolist(), front.max(axis=0).tolist()
    reference_hv = normalised_hypervolume(costs, ideal, nadir)
    print(f"reference: {len(everything)} evaluations, front of {len(front)}, hypervolume {reference_hv:.4f}")
    table = []
    curves = {run: hypervolume_by_evaluation(rows, objectives, (), ideal, nadir) / reference_hv
              for run, rows in runs.items()}
    for (strategy, seed), rows in runs.items():
        curve = curves[(strategy, seed)]
        reach = {t: (int(np.flatnonzero(curve >= t)[0]) + 1 if (curve >= t).any() else None) for t in (0.9, 0.95)}
        table.append({"strategy": strategy, "seed": seed, "final": float(curve[-1]),
                      "at_half": float(curve[len(curve) // 2 - 1]), "to_90": reach[0.9], "to_95": reach[0.95],
                      "seconds": round(seconds[(strategy, seed)], 1)})
    print(f"\n| strategy | HV fraction after {args.evals // 2} | after {args.evals} | evaluations to 90 % "
          f"| to 95 % | seconds per run |")
    print("|---|---|---|---|---|---|")
    for strategy in args.strategies.split(","):
        mine = [t for t in table if t["strategy"] == strategy]

        def med(key: str) -> str:
            values = [t[key] if t[key] is not None else float("inf") for t in mine]
            m = statistics.median(values)
            return f">{args.evals}" if m == float("inf") else f"{m:.3g}"

        print(f"| {strategy} | {med('at_half')} | {med('final')} | {med('to_90')} | {med('to_95')} "
              f"| {statistics.median(t['seconds'] for t in mine):.0f} |")
    baseline = [curve[-1] for (strategy, _), curve in curves.items() if strategy == args.baseline]
    target = statistics.median(baseline) if baseline else None
    if target is not None:
        print(f"\n{args.baseline} reaches {target:.3f} of the reference hypervolume after {args.evals} evaluations "
              f"(median of {len(baseline)} seeds)\n")
        print(f"| strategy | evaluations to reach {target:.3f} (median) | per seed | fraction after 25 / 50 / 100 "
              f"(medians) |")
        print("|---|---|---|---|")
        for strategy in args.strategies.split(","):
            mine = [curve for (s, _), curve in curves.items() if s == strategy]
            reach = [int(np.flatnonzero(c >= target)[0]) + 1 if (c >= target).any() else None for c in mine]
            for t, n in zip((t for t in table if t["strategy"] == strategy), reach):
                t["to_baseline"] = n
            m = statistics.median(n if n is not None else float("inf") for n in reach)
            at = " / ".join(f"{statistics.median(c[min(k, len(c)) - 1] for c in mine):.3f}" for k in (25, 50, 100))
            print(f"| {strategy} | {'>' + str(args.evals) if m == float('inf') else f'{m:g}'} "
                  f"| {', '.join(str(n) if n is not None else '>' + str(args.evals) for n in reach)} | {at} |")
    if args.out:
        args.out.write_text(json.dumps({"runs": table, "reference_hv": reference_hv, "ideal": ideal, "nadir": nadir,
                                        "evaluations": len(everything), "baseline": args.baseline,
                                        "baseline_target": target}, indent=1))


if __name__ == "__main__":
    main()
