"""Build a tabular NAS benchmark from the engine itself: N distinct subnets of a trained supernet, each with
the evaluator's accuracy (BN recalibrated, validation split) and a latency from a device (a lookup table or a
measuring device), so that the true Pareto front of the table is known by enumeration.

    python benchmarks/tabular.py build SUPERNET_DIR --out table.csv [--archs 2000] [--device lut:ort-cpu-1t]
        [--restrict restrict.json --enumerate] [--val-subset 2000]

`--restrict` narrows the supernet's space (JSON {"by_tag": {tag: [options]}, "by_name": {gene: [options]}});
with `--enumerate` every arch of that sub-space is evaluated, so its true Pareto front is known exactly (the
search-efficiency benchmark searches that sub-space). `--val-subset N` scores on a fixed, stratification-free
first N images of the validation split (faster; stated with the figures). Rows are appended as they are
evaluated, so a killed build resumes where it stopped. Accuracy is taken once per arch; the latency column is
filled for every row that lacks one (a second device adds another column).
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from nasengine.measurement.devices import Workload, get_device
from nasengine.evaluation.evaluator import Evaluator
from nasengine.training.loading import load_trained
from nasengine.tasks import task_from_spec
from nasengine.search_spaces.samplers import sample_unique
from nasengine.search_spaces.space import Space
from nasengine.search_spaces.storage import atomic_file

COLUMNS = ["arch", "accuracy", "params", "macs"]


def read_rows(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def write_rows(path: Path, rows: list[dict[str, object]], columns: list[str]) -> None:
    with atomic_file(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, columns)
        writer.writeheader()
        writer.writerows(rows)


def restricted(space: Space, restriction: dict[str, Any] | None) -> Space:
    if not restriction:
        return space
    return space.restrict(by_tag=restriction.get("by_tag"), by_name=restriction.get("by_name"))


def build(supernet_dir: Path, out: Path, n_archs: int, seed: int, devices: list[str],
          restriction: dict[str, Any] | None = None, enumerate_all: bool = False,
          val_subset: int | None = None) -> None:
    torch.set_num_threads(1)
    net, config = load_trained(supernet_dir)
    task = task_from_spec(config["task"])
    evaluator = Evaluator(net, task, "val")
    if val_subset is not None:
        split = evaluator.split
        evaluator.split = replace(split, inputs=split.inputs[:val_subset], labels=split.labels[:val_subset],
                                  identity={**split.identity, "first": val_subset})
    space = restricted(net.space, restriction)
    if enumerate_all:
        archs = space.enumerate()
        print(f"enumerating {len(archs)} archs of the restricted space", flush=True)
    else:
        archs = sample_unique(space, n_archs, seed=seed, include_extremes=True)
    rows: list[dict[str, object]] = list(read_rows(out))
    columns = list(rows[0].keys()) if rows else list(COLUMNS)
    done = {r["arch"] for r in rows}
    started, new = time.perf_counter(), 0
    with open(out, "a", newline="") as f:
        writer = csv.DictWriter(f, columns, extrasaction="ignore")
        if not rows:
            writer.writeheader()
        for arch in archs:
            key = net.space.key(arch)
            if key in done:
                continue
            cost = net.cost(arch)
            row = {"arch": key, "accuracy": evaluator.evaluate(arch), "params": cost.params, "macs": cost.macs}
            writer.writerow(row)
            f.flush()
            rows.append(row)
            new += 1
            if new % 50 == 0:
                rate = new / (time.perf_counter() - started)
                print(f"{len(rows)}/{len(archs)} archs ({rate:.2f}/s)", flush=True)
    for name in devices:
        device = get_device(name, supernet_dir=supernet_dir)
        column = f"latency_ms:{name}"
        if column not in columns:
            columns.append(column)
        for row in rows:
            if row.get(column) in (None, ""):
                arch = json.loads(str(row["arch"]))
                workload = Workload(arch, str(row["arch"]), lambda a=arch: net.extract(a), net.input_shape(arch),
                                    describe=lambda a=arch: net.describe(a))
                row[column] = device.measure(workload).median_ms
        write_rows(out, rows, columns)
    print(f"{len(rows)} rows in {out} ({new} evaluated now, {time.perf_counter() - started:.0f} s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("build", help="evaluate subnets of a trained supernet into a table")
    p.add_argument("supernet_dir", type=Path)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--archs", type=int, default=2000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", action="append", default=[], help="latency column from this device (repeatable)")
    p.add_argument("--restrict", type=Path, default=None, help="JSON file narrowing the space (by_tag, by_name)")
    p.add_argument("--enumerate", action="store_true", help="evaluate every arch of the (restricted) space")
    p.add_argument("--val-subset", type=int, default=None, help="score on the first N validation images")
    args = parser.parse_args()
    restriction = json.loads(args.restrict.read_text()) if args.restrict else None
    build(args.supernet_dir, args.out, args.archs, args.seed, args.device, restriction, args.enumerate,
          args.val_subset)


if __name__ == "__main__":
    main()
