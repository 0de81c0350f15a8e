"""The one training loop: any recipe, any supernet, in-place distillation from the largest subnet."""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Protocol

import numpy as np
import torch
import torch.nn.functional as F

from supernets.base import Supernet
from supernets.training.checkpoint import load_checkpoint, save_checkpoint
from supernets.training.losses import soft_cross_entropy
from search_spaces.space import Space
from supernets.training.recipes import Phase, Recipe


class EpochData(Protocol):
    """Training batches of a task: `batches(epoch)` yields (inputs, labels), reproducibly per epoch."""

    steps_per_epoch: int

    def batches(self, epoch: int) -> Iterable[tuple[torch.Tensor, torch.Tensor]]: ...


@dataclass(frozen=True)
class TrainSettings:
    epochs: int = 40
    lr: float = 4e-3
    weight_decay: float = 0.05
    label_smoothing: float = 0.1
    n_random: int = 2
    kd_weight: float = 1.0
    warmup_epochs: int = 1
    grad_clip: float = 5.0
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


StepHook = Callable[[int, int, float], None]
EpochHook = Callable[[int, Phase, dict[str, float]], dict[str, float] | None]


def _phase_of(phases: list[Phase], epoch: int) -> tuple[Phase, bool]:
    """The phase that `epoch` belongs to, and whether the phase starts at this epoch."""
    start = 0
    for phase in phases:
        if epoch < start + phase.epochs:
            return phase, epoch == start
        start += phase.epochs
    return phases[-1], False


def _lr_factor(step: int, total: int, warmup: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


SHARED_TAGS = frozenset({"resolution"})


def _with_shared(arch: dict, shared: dict) -> dict:
    return {**arch, **{k: v for k, v in shared.items() if k in arch}}


def step_archs(space: Space, rng: np.random.Generator, n_random: int) -> list[dict]:
    """Subnets of one sandwich step: largest, smallest, then `n_random` uniform ones.

    Genes tagged "resolution" are drawn once per step and shared by all of them (as in Once-for-All):
    every subnet sees the same images, the teacher's soft targets match the students' inputs, and a
    step costs about half of always running the largest subnet at the largest resolution.
    """
    shared = {g.name: g.options[int(rng.integers(len(g)))] for g in space.genes if g.tag in SHARED_TAGS}
    archs = [_with_shared(space.max(), shared)]
    if space.size > 1:
        archs.append(_with_shared(space.min(), shared))
        archs += [_with_shared(space.sample(rng=rng), shared) for _ in range(n_random)]
    unique: dict[str, dict] = {}
    for arch in archs:
        unique.setdefault(space.key(arch), arch)
    return list(unique.values())


def train_step(net: Supernet, x: torch.Tensor, y: torch.Tensor, phase: Phase, rng: np.random.Generator,
               n_random: int, label_smoothing: float, kd_weight: float = 1.0) -> float:
    """Sandwich step on the phase's space: the largest subnet learns the labels, the others the labels plus
    `kd_weight` times its soft targets (in-place distillation; Once-for-All's loss, which learns much faster
    on short schedules than distillation alone).

    Gradients accumulate over all subnets; the caller steps the optimizer. Returns the largest subnet's loss.
    """
    largest, *others = step_archs(phase.space, rng, n_random)
    net.set_active(largest)
    x = net.adapt_input(x, largest)
    logits = net(x)
    loss = F.cross_entropy(logits, y, label_smoothing=label_smoothing)
    loss.backward()
    teacher = F.softmax(logits.detach(), dim=-1)
    for arch in others:
        net.set_active(arch)
        out = net(x)
        (F.cross_entropy(out, y, label_smoothing=label_smoothing)
         + kd_weight * soft_cross_entropy(out, teacher)).backward()
    return float(loss.detach())


def train_supernet(net: Supernet, recipe: Recipe, data: EpochData, settings: TrainSettings,
                   checkpoint_root: Path | None = None, on_step: StepHook | None = None,
                   on_epoch_end: EpochHook | None = None) -> list[dict[str, float]]:
    """Train `net` with `recipe`; resumes from the newest checkpoint under `checkpoint_root` if any.

    Randomness (shuffling, subnet sampling, dropout) is re-seeded from (seed, epoch) at each epoch start,
    so a resumed run continues exactly as the uninterrupted one would. Returns one log row per epoch.
    """
    phases = recipe.phases(net.space, settings.epochs)
    decay, no_decay = [], []
    for name, p in net.named_parameters():
        (no_decay if p.ndim <= 1 or "transforms" in name else decay).append(p)
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": settings.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=settings.lr)
    total_steps = settings.epochs * data.steps_per_epoch
    warmup_steps = settings.warmup_epochs * data.steps_per_epoch
    log: list[dict[str, float]] = []
    start_epoch = 0
    if checkpoint_root is not None:
        meta = load_checkpoint(checkpoint_root, net, optimizer)
        if meta is not None:
            start_epoch, log = int(meta["epoch"]) + 1, list(meta["log"])
    for epoch in range(start_epoch, settings.epochs):
        phase, starts_now = _phase_of(phases, epoch)
        if starts_now:
            net.prepare_phase(set(phase.tags))
            if epoch > 0:  # the phase may have reordered channels: moments of the old order would misdirect steps
                optimizer.state.clear()
        torch.manual_seed(settings.seed * 100_003 + epoch)
        rng = np.random.default_rng([settings.seed, epoch])
        net.train()
        started, losses = time.perf_counter(), []
        for step, (x, y) in enumerate(data.batches(epoch)):
            global_step = epoch * data.steps_per_epoch + step
            for group in optimizer.param_groups:
                group["lr"] = settings.lr * _lr_factor(global_step, total_steps, warmup_steps)
            optimizer.zero_grad(set_to_none=True)
            losses.append(train_step(net, x, y, phase, rng, settings.n_random, settings.label_smoothing,
                                     settings.kd_weight))
            torch.nn.utils.clip_grad_norm_(net.parameters(), settings.grad_clip)
            optimizer.step()
            if on_step is not None:
                on_step(epoch, step, losses[-1])
        row: dict[str, Any] = {"epoch": epoch, "phase": phase.name, "loss": float(np.mean(losses)),
                               "lr": optimizer.param_groups[0]["lr"], "seconds": time.perf_counter() - started}
        if on_epoch_end is not None:
            row.update(on_epoch_end(epoch, phase, row) or {})
        log.append(row)
        if checkpoint_root is not None:
            save_checkpoint(checkpoint_root, epoch, net, optimizer, {"log": log, "settings": settings.to_dict()})
    net.set_active(net.space.max())
    return log
