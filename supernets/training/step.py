"""One training step: which subnets it trains (the sandwich rule, shared or per-subnet resolution, a sampler) and
their losses (labels, and distillation from the largest subnet or a fixed teacher)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from nasengine.kernels.inputs import Inputs, as_args
from nasengine.search_spaces.space import Space
from nasengine.supernets.base import Supernet
from nasengine.supernets.training.losses import soft_cross_entropy
from nasengine.supernets.training.recipes import Phase
from nasengine.supernets.training.samplers import Scorer, SubnetSampler, frozen_norm_statistics
from nasengine.supernets.training.teacher import FrozenTeacher

SHARED_TAGS = frozenset({"resolution"})


def _with_shared(arch: dict, shared: dict) -> dict:
    return {**arch, **{k: v for k, v in shared.items() if k in arch}}


def step_archs(space: Space, rng: np.random.Generator, n_random: int,
               members: Sequence[dict] | None = None, sampler: SubnetSampler | None = None,
               score: Scorer | None = None, own_resolution: bool = False) -> list[dict]:
    """Subnets of one sandwich step: largest, smallest, then `n_random` drawn by `sampler` (default uniform);
    with `members` (sorted training), the largest and smallest member and `n_random` of the others.

    Genes tagged "resolution" are drawn once per step and shared by all of them (as in Once-for-All):
    every subnet sees the same images, the teacher's soft targets match the students' inputs, and a
    step costs about half of always running the largest subnet at the largest resolution. With
    `own_resolution` every subnet keeps its own (BigNAS): the largest always at the largest resolution, the
    smallest at the smallest, the others as drawn.
    """
    shared = {} if own_resolution else {g.name: g.options[int(rng.integers(len(g)))] for g in space.genes
                                        if g.tag in SHARED_TAGS}
    if members:
        middle = list(members[1:-1])
        picked = [middle[int(i)] for i in rng.permutation(len(middle))[: min(n_random, len(middle))]]
        chosen = [space.validate(_with_shared(dict(a), shared)) for a in (members[-1], members[0], *picked)]
        return list({space.key(a): a for a in chosen}.values())
    archs = [_with_shared(space.max(), shared)]
    if space.size > 1:
        archs.append(_with_shared(space.min(), shared))
        if sampler is None:
            archs += [_with_shared(space.sample(rng=rng), shared) for _ in range(n_random)]
        else:
            archs += sampler.draw(rng, n_random, shared, score or (lambda arch: 0.0))
    unique: dict[str, dict] = {}
    for arch in archs:
        unique.setdefault(space.key(arch), arch)
    return list(unique.values())


@dataclass(frozen=True)
class StepRule:
    """What one training step does besides the largest subnet: `n_random` sampled subnets (by `sampler`, default
    uniform), label smoothing, and distillation (weight, temperature, and a fixed `teacher` or in-place)."""

    n_random: int
    label_smoothing: float
    kd_weight: float = 1.0
    temperature: float = 1.0
    teacher: FrozenTeacher | None = None
    sampler: SubnetSampler | None = None
    own_resolution: bool = False  # each subnet at its own resolution (BigNAS) instead of one per step (OFA)


def train_step(net: Supernet, x: Inputs, y: torch.Tensor, phase: Phase, rng: np.random.Generator,
               rule: StepRule) -> float:
    """Sandwich step on the phase's space: the largest subnet learns the labels, the others the labels plus
    `kd_weight` times its soft targets (in-place distillation; Once-for-All's loss, which learns much faster
    on short schedules than distillation alone). With a fixed `teacher`, every subnet, the largest included,
    distils from the teacher's targets instead (the teacher sees the raw inputs at its own resolution).

    Gradients accumulate over all subnets; the caller steps the optimizer. Returns the largest subnet's loss.
    """
    def score(arch: dict) -> float:  # a candidate's loss on this batch, for samplers that rank candidates
        net.set_active(arch)
        with frozen_norm_statistics(net):
            return float(label_loss(net(*as_args(net.adapt_input(x, arch))), y, 0.0))

    n_random, label_smoothing, kd_weight = rule.n_random, rule.label_smoothing, rule.kd_weight
    teacher, temperature, sampler = rule.teacher, rule.temperature, rule.sampler
    own = {"own_resolution": True} if rule.own_resolution else {}
    if phase.members is not None:
        largest, *others = step_archs(phase.space, rng, n_random, members=phase.members, **own)
    elif sampler is not None:
        largest, *others = step_archs(phase.space, rng, n_random, sampler=sampler, score=score, **own)
    else:
        largest, *others = step_archs(phase.space, rng, n_random, **own)
    targets = teacher.probabilities(x, temperature) if teacher is not None else None
    raw = x
    net.set_active(largest)
    x = net.adapt_input(raw, largest)
    logits = net(*as_args(x))
    loss = label_loss(logits, y, label_smoothing)
    total = loss if targets is None else loss + kd_weight * soft_cross_entropy(logits, targets, temperature)
    total.backward()
    if targets is None:
        targets = F.softmax(logits.detach().float() / temperature, dim=-1)
    for arch in others:
        net.set_active(arch)
        out = net(*as_args(net.adapt_input(raw, arch) if rule.own_resolution else x))
        student = label_loss(out, y, label_smoothing) + kd_weight * soft_cross_entropy(out, targets, temperature)
        student.backward()
        if sampler is not None:
            sampler.observe(arch, float(student.detach()))
    return float(loss.detach())


def label_loss(logits: torch.Tensor, y: torch.Tensor, label_smoothing: float) -> torch.Tensor:
    """Cross-entropy of the targets: one per sample (a class), or one per position (the next token of a text
    block, logits (B, T, V)); the mean over every target."""
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), label_smoothing=label_smoothing)
