"""BERT grown from a pretrained checkpoint on SST-2: the full subnet and the best subnet at half its latency.

Takes a supernet made by `nasengine train bert ... --data train.tsv --dev dev.tsv`, searches it (LINAS, error and
measured latency on the device), exports the full subnet and the most accurate searched subnet whose latency is at
most half the full one's, then re-times both exported ONNX files interleaved in this process (the ratio is what
counts on a noisy machine) and reports dev (test split) accuracy of each from the exports' manifests.

    python benchmarks/bert_sst2.py SN --work runs/bert_bench [--evals 48] [--device ort-cpu-1t]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

import pandas as pd

import supernets
from nasengine.devices import get_device
from nasengine.subnet import subnet_workload


def _cli(*args: object) -> None:
    subprocess.run([sys.executable, "-m", "nasengine", *map(str, args)], check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("supernet", type=Path)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--evals", type=int, default=48)
    parser.add_argument("--device", default="ort-cpu-1t")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    config = json.loads((args.supernet / "config.json").read_text())
    run = args.work / "search"
    _cli("search", args.supernet, "--device", args.device, "--strategy", "linas", "--evals", args.evals,
         "--out", run, "--quiet")
    net, _ = supernets.load_supernet(args.supernet)
    full_arch = net.space.max()
    full, half = args.work / "full", args.work / "half"
    _cli("export", run, "--out", full, "--device", args.device, "--arch", json.dumps(full_arch))
    full_ms = json.loads((full / "manifest.json").read_text())["latency_ms"]
    _cli("export", run, "--out", half, "--device", args.device, "--latency-budget", 0.5 * full_ms)
    device = get_device(args.device)
    workloads = {name: subnet_workload(path) for name, path in (("full", full), ("half", half))}
    times: dict[str, list[float]] = {name: [] for name in workloads}
    for _ in range(args.rounds):  # interleaved, so both see the same phases of the machine
        for name, workload in workloads.items():
            times[name].append(device.measure(workload).median_ms)
    ratios = [h / f for h, f in zip(times["half"], times["full"])]
    rows = []
    for name, path in (("full", full), ("half", half)):
        manifest = json.loads((path / "manifest.json").read_text())
        arch = manifest["arch"]
        rows.append({"subnet": name, "depth": arch["depth"], "hidden": arch["hidden"],
                     "heads": [arch[f"l{i}.heads"] for i in range(arch["depth"])],
                     "intermediate": [arch[f"l{i}.intermediate"] for i in range(arch["depth"])],
                     "params": manifest["params"], "macs": manifest["macs"],
                     "dev_accuracy": manifest["accuracy"], "val_accuracy": manifest["search_accuracy"],
                     "latency_ms": statistics.median(times[name])})
    training = config["training"]
    summary = {"training_seconds": training.get("seconds"), "epochs": training.get("epochs"),
               "train_samples": config["task"]["split"].get("max_train"), "final_accuracy": config["final_accuracy"],
               "latency_ratio_half_over_full": statistics.median(ratios), "ratios": ratios, "rows": rows,
               "evaluations": len(pd.read_csv(run / "results.csv"))}
    print(pd.DataFrame(rows).to_string(index=False))
    print(f"half / full latency (median of {args.rounds} interleaved rounds): {summary['latency_ratio_half_over_full']:.3f}")
    (args.work / "summary.json").write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
