"""The Fashion-MNIST job end to end through the CLI: train `ofa_mbv3` once, search it on a device, export.

Times each command as a whole process and prints what BENCHMARKS.md reports: training time and accuracy of
the largest and smallest subnets, the searched Pareto front (span in measured latency, accuracy along it),
and the exported subnet. The recipe (training subset, epochs, batch) is chosen to fit about 30 minutes of
training on 2 CPU cores; change it with the options.

    python benchmarks/fashion_mnist_job.py --out runs/fmnist [--max-train 16000 --epochs 6 --evals 200]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd


def run(args: list[str]) -> float:
    """Run `nasengine ARGS` to completion (resuming if interrupted before); returns wall seconds."""
    started = time.perf_counter()
    print("$ nasengine " + " ".join(args), flush=True)
    subprocess.run([sys.executable, "-m", "nasengine", *args], check=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--max-train", type=int, default=16000)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--evals", type=int, default=200)
    parser.add_argument("--device", default="ort-cpu-1t")
    args = parser.parse_args()
    sn, run_dir, exp = args.out / "supernet", args.out / "search", args.out / "subnet"
    times = {
        "train_s": run(["train", "ofa_mbv3", "--data", "fashion-mnist", "--max-train", str(args.max_train),
                        "--epochs", str(args.epochs), "--batch-size", str(args.batch_size), "--out", str(sn),
                        "--quiet"]),
        "search_s": run(["search", str(sn), "--device", args.device, "--evals", str(args.evals), "--out",
                         str(run_dir), "--quiet"]),
        "export_s": run(["export", str(run_dir), "--out", str(exp), "--overwrite", "--quiet"]),
    }
    config = json.loads((sn / "config.json").read_text())
    latency = f"latency_ms:{args.device}"
    pareto = pd.read_csv(run_dir / "pareto.csv").sort_values(latency)
    manifest = json.loads((exp / "manifest.json").read_text())
    summary = {
        "recipe": {k: config["training"][k] for k in ("epochs", "batch_size", "lr", "n_random", "recipe")},
        "data": {"max_train": args.max_train, "sizes": config["task"]["split"]["sizes"]},
        "times_s": {k: round(v, 1) for k, v in times.items()},
        "final_accuracy": config["final_accuracy"],
        "front": {"n": len(pareto), "latency_ms": [round(pareto[latency].min(), 4),
                                                   round(pareto[latency].max(), 4)],
                  "span": round(pareto[latency].max() / pareto[latency].min(), 2),
                  "accuracy": [round(pareto["accuracy"].iloc[0], 4), round(pareto["accuracy"].iloc[-1], 4)],
                  "monotone": bool(pareto["accuracy"].is_monotonic_increasing)},
        "export": {"test_accuracy": manifest["accuracy"], "latency_ms": manifest["latency_ms"],
                   "params": manifest["params"]},
    }
    print(json.dumps(summary, indent=2))
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
