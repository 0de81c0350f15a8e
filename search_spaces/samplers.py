"""Seeded ways to draw sets of architectures from a space."""

from __future__ import annotations

from typing import Callable

import numpy as np

from nasengine.search_spaces.space import Arch, Space


def sample_unique(space: Space, n: int, seed: int = 0, include_extremes: bool = False,
                  max_tries_factor: int = 50) -> list[Arch]:
    """`n` distinct canonical archs, uniformly drawn; optionally starting with the min and max archs."""
    if n < 0:
        raise ValueError(f"cannot sample {n} architectures")
    n = min(n, space.size)
    rng = np.random.default_rng(seed)
    out: list[Arch] = []
    seen: set[str] = set()

    def add(arch: Arch) -> None:
        key = space.key(arch)
        if key not in seen and len(out) < n:
            seen.add(key)
            out.append(arch)

    if include_extremes:
        add(space.min())
        add(space.max())
    tries = 0
    while len(out) < n and tries < max_tries_factor * max(n, 1):
        add(space.sample(rng=rng))
        tries += 1
    return out


NESTED_MEMBERS = 4


def nested_archs(space: Space, count: int = NESTED_MEMBERS) -> list[Arch]:
    """`count` nested archs from the smallest to the largest (SortedNet / MatFormer members): member k takes
    every gene at the same fraction k / (count - 1) of its options, so each member contains the previous one in
    every dimension (depth, width, kernel, resolution, ...). Precision genes (tag `quant`) stay at FP32."""
    if count < 2:
        raise ValueError(f"nested members need at least 2 members, got {count}")
    members: list[Arch] = []
    for k in range(count):
        fraction = k / (count - 1)
        arch = {g.name: g.options[0] if g.tag == "quant" else g.options[round(fraction * (len(g) - 1))]
                for g in space.genes}
        canonical = space.validate({name: value for name, value in arch.items()
                                    if space.is_active(space.gene(name), arch)})
        if not members or space.key(members[-1]) != space.key(canonical):
            members.append(canonical)
    return members


class SandwichSampler:
    """Per training step: the largest arch, the smallest, and `n_random` uniform ones (the sandwich rule)."""

    def __init__(self, space: Space, n_random: int = 2, seed: int = 0):
        self.space = space
        self.n_random = n_random
        self.rng = np.random.default_rng(seed)

    def __call__(self) -> list[Arch]:
        return [self.space.max(), self.space.min()] + [self.space.sample(rng=self.rng) for _ in range(self.n_random)]


ArchSampler = Callable[[], list[Arch]]
