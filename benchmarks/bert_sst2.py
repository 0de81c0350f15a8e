"""BERT grown from a pretrained checkpoint on SST-2: the full subnet and the best subnet at half its latency.

Takes a supernet made by `nasengine train bert ... --data train.tsv --dev dev.tsv`, searches it (LINAS, error and
measured latency on the device) and exports the full subnet. Search-time latencies drift with the machine, so the
half-latency pick is confirmed by re-timing: the `--candidates` most accurate searched subnets (val accuracy) whose
search-time latency is at most `--slack` times half the full one's are exported and re-timed interleaved with the
full subnet in this process; the pick is the most accurate one whose median ratio to full is at most 0.5. Dev
(test split) accuracy comes from the exports' manifests and plays no part in the choice.

    python benchmarks/bert_sst2.py SN --work runs/bert_bench [--evals 48] [--device ort-cpu-1t] [--candidates 4]

A sorted supernet (`--recipe sorted`) takes `--strategy members`: its members are the candidates, so the
half-latency pick is search-free and goes through the same re-timing.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

import pandas as pd

from nasengine import supernets
from nasengine.measurement.devices import get_device
from nasengine.exporting.subnet import subnet_workload


def _cli(*args: object) -> None:
    subprocess.run([sys.executable, "-m", "nasengine", *map(str, args)], check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("supernet", type=Path)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--evals", type=int, default=48)
    parser.add_argument("--strategy", default="linas", help="search strategy (members for a sorted supernet)")
    parser.add_argument("--device", default="ort-cpu-1t")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--candidates", type=int, default=4)
    parser.add_argument("--slack", type=float, default=1.15)
    args = parser.parse_args()
    config = json.loads((args.supernet / "config.json").read_text())
    run = args.work / "search"
    _cli("search", args.supernet, "--device", args.device, "--strategy", args.strategy, "--evals", args.evals,
         "--out", run, "--quiet")
    net, _ = supernets.load_supernet(args.supernet)
    full_arch = net.space.max()
    full = args.work / "full"
    _cli("export", run, "--out", full, "--device", args.device, "--arch", json.dumps(full_arch))
    full_ms = json.loads((full / "manifest.json").read_text())["latency_ms"]
    results = pd.read_csv(run / "results.csv")
    latency = f"latency_ms:{args.device}"
    near = results[results[latency] <= args.slack * 0.5 * full_ms].sort_values("accuracy", ascending=False)
    if near.empty:
        raise SystemExit(f"no searched subnet within {args.slack} x half the full latency ({full_ms:.2f} ms)")
    exports = {"full": full}
    for i, arch in enumerate(near["arch"].head(args.candidates)):
        exports[f"candidate{i}"] = args.work / f"candidate{i}"
        _cli("export", run, "--out", exports[f"candidate{i}"], "--device", args.device, "--arch", arch)
    device = get_device(args.device)
    workloads = {name: subnet_workload(path) for name, path in exports.items()}
    times: dict[str, list[float]] = {name: [] for name in workloads}
    for _ in range(args.rounds):  # interleaved, so all see the same phases of the machine
        for name, workload in workloads.items():
            times[name].append(device.measure(workload).median_ms)
    rows = []
    for name, path in exports.items():
        manifest = json.loads((path / "manifest.json").read_text())
        arch = manifest["arch"]
        ratios = [t / f for t, f in zip(times[name], times["full"])]
        rows.append({"subnet": name, "depth": arch["depth"], "hidden": arch["hidden"],
                     "heads": [arch[f"l{i}.heads"] for i in range(arch["depth"])],
                     "intermediate": [arch[f"l{i}.intermediate"] for i in range(arch["depth"])],
                     "params": manifest["params"], "macs": manifest["macs"],
                     "dev_accuracy": manifest["accuracy"], "val_accuracy": manifest["search_accuracy"],
                     "latency_ms": statistics.median(times[name]), "ratio_to_full": statistics.median(ratios),
                     "ratio_range": [min(ratios), max(ratios)]})
    fitting = [r for r in rows[1:] if r["ratio_to_full"] <= 0.5]
    pick = max(fitting, key=lambda r: r["val_accuracy"]) if fitting else None
    training = config["training"]
    summary = {"training_seconds": training.get("seconds"), "epochs": training.get("epochs"),
               "train_samples": config["task"]["split"].get("max_train"), "final_accuracy": config["final_accuracy"],
               "pick": None if pick is None else pick["subnet"], "rows": rows, "evaluations": len(results)}
    print(pd.DataFrame(rows).to_string(index=False))
    print("no candidate re-timed at <= 0.5x of full" if pick is None else
          f"pick {pick['subnet']}: {pick['ratio_to_full']:.3f}x of full (median of {args.rounds} interleaved rounds), "
          f"dev {pick['dev_accuracy']:.2%}, val {pick['val_accuracy']:.2%}")
    (args.work / "summary.json").write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
