"""Mixed-precision fronts against all-FP32 and all-INT8 fronts, with the same strategy and evaluation budget.

Each run is an ordinary `nasengine search` (resumable, in its own directory) with `--quantization none`, `int8`
or `search`. The three fronts (error, measured latency) are judged with one reference: the ideal and nadir points
of the non-dominated set of every evaluation of every run, reference point 1.1 after normalisation. The latency
ratio at equal accuracy: for each accuracy reached on the FP32 front, the fastest subnet of the other front that
is at least as accurate, as FP32 latency / its latency (> 1: faster than FP32); for the searched policy also
against the better uniform policy at each accuracy (the front of the FP32 and INT8 runs of the same seed together).

    python benchmarks/quant_fronts.py SUPERNET_DIR --work runs/quant_fronts [--evals 120] [--seeds 1]
        [--strategy linas] [--device ort-cpu-1t] [--out DIR] [--ablate-priors]

With the device's tables at FP32 and INT8 in SUPERNET_DIR (`nasengine device profile DEVICE SN [--precision int8]`)
the searched policy starts from priced proposals (searching/policy_prior.py); `--ablate-priors` also runs it
without the INT8 table, and the summary says how well the tables priced each run's subnets before measuring them.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import numpy as np

from nasengine.evaluation.evaluator import Evaluator
from nasengine.measurement.devices import Workload, get_device
from nasengine.measurement.lut import LatencyTable
from nasengine.predictors.metrics import kendall_tau, mape
from nasengine.reporting.fronts import pareto_mask
from nasengine.searching.api import load_rows
from nasengine.searching.arch_features import latency_priors
from nasengine.searching.hypervolume import normalised_hypervolume
from nasengine.searching.runner import SearchRequest, search
from nasengine.searching.supernet_metrics import Quantization
from nasengine.search_spaces.quantization import int8_layers, quantizes, split_policy, weight_only_layers
from nasengine.tasks import task_from_spec
from nasengine.training.loading import load_trained

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


def prior_quality(supernet_dir: Path, device: str, mode: str, rows: list) -> dict | None:
    """How well the device's tables price the run's measured subnets before measuring them: Kendall tau and MAPE of
    the policy-priced latency (the prior LINAS gets) and of the FP32 table alone; None without tables."""
    table = supernet_dir / "latency_tables" / f"{device}.json"
    prior = latency_priors(supernet_dir, (device,)).get(device)
    if prior is None or not table.is_file():
        return None
    net, _ = load_trained(supernet_dir)
    quantization = Quantization(mode, tuple(net.quantizable_layers()) if mode != "none" else ())
    fp32 = LatencyTable.load(table)
    measured, priced, fp32_only = [], [], []
    for row in rows:
        network, policy = quantization.policy(row.arch)
        layers = net.describe(network)
        measured.append(row.metrics[f"latency_ms:{device}"])
        priced.append(prior(network, layers, policy))
        fp32_only.append(fp32.predict(layers))
    return {"kendall_tau_priced": kendall_tau(measured, priced), "mape_priced": mape(measured, priced),
            "kendall_tau_fp32_table": kendall_tau(measured, fp32_only), "mape_fp32_table": mape(measured, fp32_only)}


def _search_or_load(request: SearchRequest) -> tuple[list, bool]:
    """(the run's rows, whether it searched now): a finished run directory (as many rows as evaluations asked) is
    read, not replayed."""
    done = request.out / "results.csv"
    if done.is_file() and len(rows := load_rows(request.out)) >= request.evals:
        return rows, False
    search(request)
    return load_rows(request.out), True


def retime_fronts(supernet_dir: Path, device_name: str, runs: dict[str, list], rounds: int) -> dict[str, np.ndarray]:
    """Each run's front subnets (error, latency) with the latency re-measured: every front subnet of every run, as
    deployed (its quantized graph), timed on the device in `rounds` interleaved rounds whose order rotates, the
    median kept. Runs measured at different times see the machine in different phases (the same subnet drifts by
    10-25 % between runs here); re-timing them together judges the fronts on one clock."""
    net, config = load_trained(supernet_dir)
    evaluator = Evaluator(net, task_from_spec(config["task"]), "val")
    device = get_device(device_name, supernet_dir=supernet_dir)
    latency = f"latency_ms:{device_name}"
    fronts: dict[str, list] = {}
    for name, rows in runs.items():
        points = np.array([[r.metrics["error"], r.metrics[latency]] for r in rows])
        fronts[name] = [rows[i] for i in np.flatnonzero(pareto_mask(points))]
    workloads: dict[str, Workload] = {}
    for rows in fronts.values():
        for row in rows:
            network, _ = split_policy(row.arch)
            policy = json.loads(row.details.get("quant_policy", "{}"))
            key = json.dumps([net.space.key(network), policy], sort_keys=True)
            if key in workloads:
                continue
            graph = (evaluator.deployed_graph(network, int8_layers(policy), weight_only=weight_only_layers(policy))
                     if quantizes(policy) else None)
            workloads[key] = Workload.of_supernet(net, network, lambda a=network: evaluator.quantization_inputs(a),
                                                  dynamic_onnx=graph, policy=policy if graph is not None else None)
    keys = list(workloads)
    timed: dict[str, list[float]] = {k: [] for k in keys}
    for r in range(rounds):
        for i in range(len(keys)):
            key = keys[(i + r * 7) % len(keys)]
            timed[key].append(device.measure(workloads[key]).median_ms)
        print(f"re-timing: round {r + 1}/{rounds} of {len(keys)} subnets", flush=True)
    out = {}
    for name, rows in fronts.items():
        points = []
        for row in rows:
            network, _ = split_policy(row.arch)
            key = json.dumps([net.space.key(network), json.loads(row.details.get("quant_policy", "{}"))],
                             sort_keys=True)
            points.append([row.metrics["error"], float(np.median(timed[key]))])
        out[name] = np.array(points)
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
    parser.add_argument("--retime", type=int, default=0, metavar="ROUNDS",
                        help="also judge the fronts on latencies re-measured together, interleaved over ROUNDS")
    parser.add_argument("--ablate-priors", action="store_true",
                        help="also search the policy without the device's non-FP32 tables (no priced policies, no "
                             "proposals), judged against the same reference")
    args = parser.parse_args()
    latency = f"latency_ms:{args.device}"
    modes = [m for m in args.modes.split(",") if m]
    points: dict[tuple[str, int], np.ndarray] = {}
    seconds: dict[str, float] = {}
    priors: dict[str, dict | None] = {}
    all_rows: dict[str, list] = {}
    for seed in range(args.seeds):
        for mode in modes:
            out = args.work / f"{mode}-{seed}"
            started = time.perf_counter()
            rows, ran = _search_or_load(SearchRequest(args.supernet_dir, out, (args.device,), args.evals,
                                                      strategy=args.strategy, seed=seed, progress=False,
                                                      quantization=mode))
            seconds[f"{mode}-{seed}"] = time.perf_counter() - started if ran else None
            all_rows[f"{mode}-{seed}"] = rows
            points[(mode, seed)] = np.array([[r.metrics["error"], r.metrics[latency]] for r in rows])
            priors[f"{mode}-{seed}"] = prior_quality(args.supernet_dir, args.device, mode, rows)
            print(f"{mode} seed {seed}: {len(rows)} rows" + (f" in {time.perf_counter() - started:.0f} s" if ran
                                                             else " (finished before: read)"), flush=True)
    ablation: dict[int, np.ndarray] = {}
    if args.ablate_priors:  # the same supernet, its FP32 table only: what the search does without the priors
        bare = args.work / "supernet-fp32-table-only"
        if not bare.exists():
            shutil.copytree(args.supernet_dir, bare, ignore=shutil.ignore_patterns("*.int8.json", "*.w8.json",
                                                                                 "*.w4.json"))
        for seed in range(args.seeds):
            out = args.work / f"search-noprior-{seed}"
            started = time.perf_counter()
            all_rows[out.name], ran = _search_or_load(SearchRequest(bare, out, (args.device,), args.evals,
                                                                    strategy=args.strategy, seed=seed,
                                                                    progress=False, quantization="search"))
            seconds[out.name] = time.perf_counter() - started if ran else None
            ablation[seed] = np.array([[r.metrics["error"], r.metrics[latency]] for r in all_rows[out.name]])
            print(f"search without table priors, seed {seed}: {len(all_rows[out.name])} rows", flush=True)
    union = _front(np.vstack(list(points.values())))
    ideal, nadir = union.min(axis=0).tolist(), union.max(axis=0).tolist()
    summary: dict = {"supernet": str(args.supernet_dir), "device": args.device, "strategy": args.strategy,
                     "evals": args.evals, "seeds": args.seeds, "ideal": ideal, "nadir": nadir, "reference": 1.1,
                     "seconds": seconds, "prior_quality": priors, "modes": {}}
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
        if mode == "search" and {"none", "int8"} <= set(modes):  # against the better uniform policy per accuracy
            best_uniform = [_front(np.vstack([points[("none", s)], points[("int8", s)]])) for s in range(args.seeds)]
            ratios = [latency_ratios(best_uniform[s], fronts[s]) for s in range(args.seeds)]
            flat = [r for per_seed in ratios for _, r in per_seed]
            entry["latency_ratio_vs_best_uniform"] = ratios
            entry["latency_ratio_vs_best_uniform_median"] = float(np.median(flat)) if flat else None
            entry["latency_ratio_vs_best_uniform_max"] = float(np.max(flat)) if flat else None
        summary["modes"][mode] = entry
        print(f"{mode:<7} hypervolume {entry['hypervolume_mean']:.4f} "
              f"({', '.join(f'{h:.4f}' for h in hvs)})"
              + (f"; FP32/this latency at equal accuracy: median {entry['latency_ratio_median']:.2f}x, "
                 f"best {entry['latency_ratio_max']:.2f}x" if entry.get("latency_ratio_median") else "")
              + (f"; best uniform/this: median {entry['latency_ratio_vs_best_uniform_median']:.2f}x, best "
                 f"{entry['latency_ratio_vs_best_uniform_max']:.2f}x"
                 if entry.get("latency_ratio_vs_best_uniform_median") else ""))
    if ablation:
        hvs = [normalised_hypervolume(ablation[s], ideal, nadir) for s in range(args.seeds)]
        summary["search_without_table_priors"] = {"hypervolume": hvs, "hypervolume_mean": float(np.mean(hvs))}
        print(f"search without table priors: hypervolume {np.mean(hvs):.4f} ({', '.join(f'{h:.4f}' for h in hvs)})")
    if args.retime:
        retimed = retime_fronts(args.supernet_dir, args.device, all_rows, args.retime)
        main_runs = [f"{m}-{s}" for m in modes for s in range(args.seeds)]
        union_r = _front(np.vstack([retimed[k] for k in main_runs]))
        ideal_r, nadir_r = union_r.min(axis=0).tolist(), union_r.max(axis=0).tolist()
        entry = {"rounds": args.retime, "ideal": ideal_r, "nadir": nadir_r,
                 "hypervolume": {k: normalised_hypervolume(v, ideal_r, nadir_r) for k, v in retimed.items()},
                 "front": {k: _front(v).tolist() for k, v in retimed.items()}}
        if {"none", "int8", "search"} <= set(modes):
            ratios = []
            for s in range(args.seeds):
                uniform = _front(np.vstack([retimed[f"none-{s}"], retimed[f"int8-{s}"]]))
                ratios += [r for _, r in latency_ratios(uniform, _front(retimed[f"search-{s}"]))]
            entry["latency_ratio_vs_best_uniform_median"] = float(np.median(ratios)) if ratios else None
            entry["latency_ratio_vs_best_uniform_max"] = float(np.max(ratios)) if ratios else None
            fp32 = [r for s in range(args.seeds)
                    for _, r in latency_ratios(_front(retimed[f"none-{s}"]), _front(retimed[f"search-{s}"]))]
            entry["latency_ratio_vs_fp32_median"] = float(np.median(fp32)) if fp32 else None
        summary["retimed"] = entry
        print("re-timed fronts, hypervolume: " + ", ".join(f"{k} {v:.4f}" for k, v in entry["hypervolume"].items()))
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "summary.json").write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
