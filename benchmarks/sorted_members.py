"""Sorted (nested) members against a searched front at the same latencies.

Evaluates the nested members of a supernet trained with `--recipe sorted` (an ordinary `nasengine search
--strategy members` run: accuracy on the validation split, latency measured on the device), reports each
member's accuracy relative to the largest member (on the validation split the search used and on the test
split), and, for each member's latency, the most accurate subnet of a searched run (e.g. LINAS on a
sandwich-trained supernet of the same family and data) that is at least as fast.

    python benchmarks/sorted_members.py SORTED_SN --searched RUN --work runs/sorted [--device ort-cpu-1t]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from nasengine import supernets
from nasengine.evaluation.evaluator import Evaluator
from nasengine.searching.runner import SearchRequest, search
from nasengine.tasks import task_from_spec


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sorted_supernet", type=Path)
    parser.add_argument("--searched", type=Path, required=True, help="run directory of a search to compare with")
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--device", default="ort-cpu-1t")
    args = parser.parse_args()
    latency = f"latency_ms:{args.device}"
    out = args.work / "members"
    search(SearchRequest(args.sorted_supernet, out, (args.device,), 4, strategy="members", progress=False))
    members = pd.read_csv(out / "results.csv")
    searched = pd.read_csv(args.searched / "results.csv")
    full = float(members["accuracy"].iloc[-1])
    net, config = supernets.load_supernet(args.sorted_supernet)
    on_test = Evaluator(net, task_from_spec(config["task"]), split="test")
    test = [on_test.evaluate(json.loads(arch)) for arch in members["arch"]]
    rows = []
    for i, member in members.iterrows():
        faster = searched[searched[latency] <= member[latency]]
        best = float(faster["accuracy"].max()) if len(faster) else float("nan")
        rows.append({"member": i, "params": int(member["params"]), "macs": int(member["macs"]),
                     "latency_ms": float(member[latency]), "accuracy": float(member["accuracy"]),
                     "relative_to_full": float(member["accuracy"]) / full,
                     "test_accuracy": test[i], "test_relative_to_full": test[i] / test[-1],
                     "searched_best_at_latency": best, "searched_minus_member": best - float(member["accuracy"])})
    table = pd.DataFrame(rows)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    args.work.mkdir(parents=True, exist_ok=True)
    (args.work / "summary.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
