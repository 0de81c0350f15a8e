"""Does weight sharing rank subnets like training them alone would? Kendall tau, inherited vs from scratch.

For `--archs` subnets (the smallest, the largest, then uniform samples) of a trained supernet: the inherited
accuracy (weights from the supernet, BN recalibrated) and the accuracy of the same arch trained alone from
scratch with the supernet's own training settings (same data, epochs, batch, optimiser, schedule,
augmentation), both on the task's test split. Beside it, the tau of two free proxies (MACs, params) against
the same from-scratch accuracies: a supernet that ranks no better than counting MACs adds nothing.

    python benchmarks/ranking.py runs/supernet [--archs 15] [--workers 2] [--out rows.jsonl]
"""

from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nasengine import supernets
from nasengine.evaluation.evaluator import Evaluator
from nasengine.training.loading import load_trained
from nasengine.tasks import task_from_spec
from nasengine.predictors.metrics import kendall_tau, spearman_rho
from nasengine.search_spaces.samplers import sample_unique
from nasengine.supernets.training import SingleArch, TrainSettings, train_supernet


def train_alone(supernet_dir: str, arch: dict[str, Any], threads: int) -> dict[str, float]:
    """Train `arch` alone from scratch with the supernet's settings; test accuracy and wall seconds."""
    torch.set_num_threads(threads)
    _, config = load_trained(Path(supernet_dir))
    training = config["training"]
    task = task_from_spec(config["task"])
    settings = TrainSettings(**{k: training[k] for k in TrainSettings.__dataclass_fields__ if k in training})
    started = time.perf_counter()
    torch.manual_seed(settings.seed)
    alone = supernets.from_config(config)
    train_supernet(alone, SingleArch(arch), task.train_data(training["batch_size"], settings.seed), settings)
    scratch = Evaluator(alone, task, "val").evaluate(arch, task.split("test"))
    return {"scratch": scratch, "train_seconds": time.perf_counter() - started}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("supernet_dir", type=Path)
    parser.add_argument("--archs", type=int, default=15)
    parser.add_argument("--workers", type=int, default=1, help="archs trained at once, one process each")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process")
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--out", type=Path, default=None, help="write the per-arch rows as JSON lines here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    net, config = load_trained(args.supernet_dir)
    task = task_from_spec(config["task"])
    test = task.split("test")
    archs = sample_unique(net.space, args.archs, seed=args.seed, include_extremes=True)
    inherited_eval = Evaluator(net, task, "val")
    inherited = [inherited_eval.evaluate(arch, test) for arch in archs]
    rows: list[dict[str, Any]] = []
    with ProcessPoolExecutor(args.workers) as pool:
        futures = [pool.submit(train_alone, str(args.supernet_dir), arch, args.threads) for arch in archs]
        for i, (arch, acc, future) in enumerate(zip(archs, inherited, futures)):
            cost = net.cost(arch)
            rows.append({"arch": arch, "macs": cost.macs, "params": cost.params, "inherited": acc, **future.result()})
            print(f"[{i + 1}/{len(archs)}] MMACs {cost.macs / 1e6:.2f} inherited {acc:.2%} "
                  f"scratch {rows[-1]['scratch']:.2%} ({rows[-1]['train_seconds']:.0f}s)", flush=True)
    if args.out:
        args.out.write_text("".join(json.dumps(r) + "\n" for r in rows))
    scratch = [r["scratch"] for r in rows]
    training = config["training"]
    print(f"\n{len(rows)} archs, {training['epochs']} epochs each, test split of {task.name} ({len(test)} images)\n")
    print("| MMACs | params | inherited acc | from-scratch acc | gap (points) |")
    print("|---|---|---|---|---|")
    for r in sorted(rows, key=lambda r: r["macs"]):
        print(f"| {r['macs'] / 1e6:.2f} | {r['params']:,} | {r['inherited']:.2%} | {r['scratch']:.2%} | "
              f"{100 * (r['inherited'] - r['scratch']):+.2f} |")
    print()
    for name, values in (("inherited", [r["inherited"] for r in rows]), ("MACs", [r["macs"] for r in rows]),
                         ("params", [r["params"] for r in rows])):
        print(f"{name:>9}: Kendall tau {kendall_tau(scratch, values):.3f}, Spearman rho "
              f"{spearman_rho(scratch, values):.3f}")
    gaps = np.array([r["inherited"] - r["scratch"] for r in rows]) * 100
    print(f"\nsmallest subnet gap {gaps[0]:+.2f} points, largest {gaps[1]:+.2f} points "
          f"(inherited minus from scratch); mean |gap| {np.abs(gaps).mean():.2f}")


if __name__ == "__main__":
    main()
