"""Training-step cost of text batches grouped by length against shuffled batches, in one process.

Both arms train the same BERT supernet (the installed MiniLM-L6 by default) on the same TSV with the sandwich
step; the shuffled arm is the baseline. Arms alternate in rounds so machine drift hits both. Reports padded
tokens per batch (after trimming) and seconds per step, and the ratio grouped / shuffled.

    python benchmarks/text_batching.py TRAIN.tsv [--checkpoint DIR] [--steps 30] [--rounds 3] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from nasengine import supernets
from nasengine.tasks import open_data
from nasengine.tasks.base import EpochBatches
from nasengine.supernets.bert_import import default_checkpoint
from nasengine.supernets.training.loop import StepRule, train_step
from nasengine.supernets.training.recipes import get_recipe


def time_arm(net: supernets.Supernet, data: EpochBatches, steps: int, epoch: int) -> tuple[float, float]:
    """Seconds per sandwich step and padded positions per batch over `steps` batches of `epoch`."""
    phase = get_recipe("sandwich").phases(net.space, 1)[0]
    rng = np.random.default_rng(epoch)
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-5)
    positions, seconds = 0, 0.0
    net.train()
    for step, (x, y) in enumerate(data.batches(epoch)):
        if step == steps:
            break
        positions += int(x["input_ids"].numel())
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        train_step(net, x, y, phase, rng, StepRule(1, 0.1))
        optimizer.step()
        seconds += time.perf_counter() - start
    return seconds / steps, positions / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("train", type=Path)
    parser.add_argument("--checkpoint", type=Path, default=None)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None, help="write the figures as JSON here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    checkpoint = args.checkpoint or default_checkpoint()
    task = open_data(str(args.train), {"tokenizer": str(checkpoint)})
    net = supernets.create("bert", checkpoint=str(checkpoint), num_classes=task.num_classes)
    grouped = task.train_data(32, seed=0)
    shuffled = EpochBatches(task.split("train"), 32, seed=0)
    figures: dict[str, list[tuple[float, float]]] = {"shuffled": [], "grouped": []}
    for round_ in range(args.rounds):
        for name, data in (("shuffled", shuffled), ("grouped", grouped)):
            figures[name].append(time_arm(net, data, args.steps, epoch=round_))
            step, positions = figures[name][-1]
            print(f"round {round_ + 1} {name:8s} {step:.3f} s/step  {positions:.0f} positions/batch", flush=True)
    summary = {name: {"seconds_per_step": float(np.median([s for s, _ in rows])),
                      "positions_per_batch": float(np.mean([p for _, p in rows]))} for name, rows in figures.items()}
    summary["ratio_grouped_over_shuffled"] = (summary["grouped"]["seconds_per_step"]
                                              / summary["shuffled"]["seconds_per_step"])
    print(json.dumps(summary, indent=2))
    if args.out is not None:
        args.out.write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
