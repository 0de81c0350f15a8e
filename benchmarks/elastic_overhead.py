"""Cost of weight sharing: the supernet running its largest subnet vs the static extraction of that subnet.

Inference (eval mode, batch 1 and 64) and one training step (forward + backward, batch 64), timed with the
engine's one timing loop, supernet and static interleaved in the same process. Prints a markdown table.

    python benchmarks/elastic_overhead.py [--threads 1] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from nasengine import supernets
from nasengine.measurement.devices.timing import TimingSettings, time_repeated


def infer(model: torch.nn.Module, x: torch.Tensor):
    def run() -> None:
        with torch.no_grad():
            model(x)
    return run


def train_step(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor):
    loss_fn = torch.nn.CrossEntropyLoss()

    def run() -> None:
        model.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", default=None, help="also write the figures to this JSON file")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    net = supernets.create("ofa_mbv3_digits")
    arch = net.space.max()
    net.set_active(arch)
    static = net.extract(arch)
    timing = TimingSettings(warmup_runs=3, warmup_seconds=0.1, min_repeats=10, min_seconds=0.5)
    rows = []
    for label, batch, mode in (("inference, batch 1", 1, "eval"), ("inference, batch 64", 64, "eval"),
                               ("training step, batch 64", 64, "train")):
        x = net.example_input(arch, batch)
        y = torch.randint(0, 10, (batch,))
        ratios, elastic_ms, static_ms = [], [], []
        for _ in range(args.rounds):
            times = []
            for model in (net, static):
                model.train(mode == "train")
                run = train_step(model, x, y) if mode == "train" else infer(model, x)
                times.append(time_repeated(run, timing).median_ms)
            elastic_ms.append(times[0])
            static_ms.append(times[1])
            ratios.append(times[0] / times[1])
        rows.append((label, float(np.median(elastic_ms)), float(np.median(static_ms)), float(np.median(ratios)),
                     float(np.min(ratios)), float(np.max(ratios))))
    print(f"ofa_mbv3_digits, largest subnet (resolution {arch['resolution']}), torch {torch.__version__}, "
          f"{args.threads} thread(s), {args.rounds} interleaved rounds\n")
    print("| workload | supernet (ms) | static (ms) | supernet / static (median, min-max over rounds) |")
    print("|---|---|---|---|")
    for label, e, s, r, lo, hi in rows:
        print(f"| {label} | {e:.2f} | {s:.2f} | {r:.3f} ({lo:.3f}-{hi:.3f}) |")
    if args.json:
        Path(args.json).write_text(json.dumps({label: {"supernet_ms": e, "static_ms": s, "ratio": r}
                                               for label, e, s, r, _, _ in rows}))


if __name__ == "__main__":
    main()
