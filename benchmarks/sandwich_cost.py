"""What a sandwich step costs beyond the work it does: the supernet's step (largest, smallest and one random
subnet, in-place distillation, one AdamW step) against the sum of the same subnets' steps as static networks
(extracted, same inputs, losses and optimiser), interleaved in one process, on 1 and 2 torch threads.

A ratio near 1 means weight sharing costs nothing beyond the subnets' own arithmetic; what is above 1 is Python
slicing, kernel transforms and allocation. Then the data-parallel rows of benchmarks/ddp_and_checkpoints.py
(1 process x 1 or 2 threads against 2 processes x 1 thread at the same global batch).

    python benchmarks/sandwich_cost.py [--rounds 5] [--steps 6] [--batch 64] [--no-ddp]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F

from nasengine import supernets
from nasengine.supernets.training.loop import StepRule, label_loss, step_archs, train_step
from nasengine.supernets.training.losses import soft_cross_entropy
from nasengine.supernets.training.recipes import Sandwich


def sandwich_seconds(net: supernets.Supernet, x: torch.Tensor, y: torch.Tensor, seed: int) -> float:
    (phase,) = Sandwich().phases(net.space, 1)
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-4)
    net.train()
    started = time.perf_counter()
    optimizer.zero_grad(set_to_none=True)
    train_step(net, x, y, phase, np.random.default_rng(seed), StepRule(1, 0.1))
    optimizer.step()
    return time.perf_counter() - started


def static_seconds(net: supernets.Supernet, x: torch.Tensor, y: torch.Tensor, seed: int) -> float:
    """The same step's subnets as static modules: extraction is outside the clock, the work inside."""
    archs = step_archs(net.space, np.random.default_rng(seed), 1)
    modules = [net.extract(a).train() for a in archs]
    optimizers = [torch.optim.AdamW(m.parameters(), lr=1e-4) for m in modules]
    inputs = net.adapt_input(x, archs[0])  # the step's subnets share its resolution
    started = time.perf_counter()
    teacher = None
    for module, optimizer in zip(modules, optimizers):
        optimizer.zero_grad(set_to_none=True)
        logits = module(inputs)
        loss = label_loss(logits, y, 0.1)
        if teacher is None:
            teacher = F.softmax(logits.detach(), dim=-1)
        else:
            loss = loss + soft_cross_entropy(logits, teacher)
        loss.backward()
        optimizer.step()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=6, help="steps per round and side")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--no-ddp", action="store_true")
    args = parser.parse_args()
    torch.manual_seed(0)
    net = supernets.create_for_task("ofa_mbv3", 1, 10, (28, 28))  # the Fashion-MNIST job's supernet
    x, y = torch.randn(args.batch, 1, 28, 28), torch.randint(0, 10, (args.batch,))
    print(f"ofa_mbv3 (Fashion-MNIST size), batch {args.batch}, {args.rounds} rounds x {args.steps} steps, medians\n")
    print("| threads | sandwich step | sum of static subnet steps | supernet / static |")
    print("|---|---|---|---|")
    for threads in (1, 2):
        torch.set_num_threads(threads)
        ratios, sandwich, static = [], [], []
        for r in range(args.rounds):
            seeds = range(r * args.steps, (r + 1) * args.steps)
            a = [sandwich_seconds(net, x, y, s) for s in seeds]
            b = [static_seconds(net, x, y, s) for s in seeds]
            ratios.append(sum(a) / sum(b))
            sandwich += a
            static += b
        print(f"| {threads} | {statistics.median(sandwich) * 1e3:.0f} ms | {statistics.median(static) * 1e3:.0f} ms | "
              f"{statistics.median(ratios):.3f} |", flush=True)
    if not args.no_ddp:
        from ddp_and_checkpoints import ddp_rows  # same folder; its family is the embedded job's

        print("\n| configuration (ofa_mbv3_digits, same global batch) | median step |")
        print("|---|---|")
        for name, seconds in ddp_rows(args.batch, args.steps):
            print(f"| {name} | {seconds * 1e3:.0f} ms |")


if __name__ == "__main__":
    main()
