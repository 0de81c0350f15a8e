"""Does weight sharing rank subnets like training them alone would? Kendall tau, inherited vs from scratch.

For `--archs` subnets (the smallest, the largest, then uniform samples) of a trained supernet: the inherited
accuracy (weights from the supernet, BN recalibrated) and the accuracy of the same arch trained alone from
scratch with the supernet's own training settings (same epochs, optimiser, schedule, augmentation), both on
the task's test split. Prints a per-arch table and the rank correlations.

    python benchmarks/ranking.py runs/supernet [--archs 12] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

import supernets
from nasengine.evaluation import Evaluator
from nasengine.tasks import get_task
from predictors.metrics import kendall_tau, spearman_rho
from search_spaces.samplers import sample_unique
from supernets.training import SingleArch, TrainSettings, train_supernet


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("supernet_dir", type=Path)
    parser.add_argument("--archs", type=int, default=12)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None, help="write the per-arch rows as JSON lines here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    net, config = supernets.load_supernet(args.supernet_dir)
    training = config["training"]
    task = get_task(config["task"])
    test = task.split("test")
    settings = TrainSettings(**{k: training[k] for k in TrainSettings.__dataclass_fields__ if k in training})
    archs = sample_unique(net.space, args.archs, seed=2024, include_extremes=True)
    inherited_eval = Evaluator(net, task, "val")
    rows = []
    for i, arch in enumerate(archs):
        inherited = inherited_eval.evaluate(arch, test)
        started = time.perf_counter()
        torch.manual_seed(settings.seed)
        alone = supernets.from_config(config)
        train_supernet(alone, SingleArch(arch), task.train_data(training["batch_size"], settings.seed), settings)
        scratch = Evaluator(alone, task, "val").evaluate(arch, test)
        rows.append({"arch": arch, "macs": net.cost(arch).macs, "inherited": inherited, "scratch": scratch,
                     "train_seconds": time.perf_counter() - started})
        print(f"[{i + 1}/{len(archs)}] macs {rows[-1]['macs'] / 1e6:.2f}M inherited {inherited:.2%} "
              f"scratch {scratch:.2%} ({rows[-1]['train_seconds']:.0f}s)", flush=True)
    if args.out:
        args.out.write_text("".join(json.dumps(r) + "\n" for r in rows))
    inherited = [r["inherited"] for r in rows]
    scratch = [r["scratch"] for r in rows]
    print(f"\n{len(rows)} archs, {settings.epochs} epochs each, test split of {task.name} ({len(test)} images)\n")
    print("| MMACs | inherited acc | from-scratch acc |")
    print("|---|---|---|")
    for r in sorted(rows, key=lambda r: r["macs"]):
        print(f"| {r['macs'] / 1e6:.2f} | {r['inherited']:.2%} | {r['scratch']:.2%} |")
    print(f"\nKendall tau {kendall_tau(scratch, inherited):.3f}, Spearman rho {spearman_rho(scratch, inherited):.3f}")


if __name__ == "__main__":
    main()
