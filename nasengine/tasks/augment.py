"""Training-time augmentations of image batches, named in task specs so any command can rebuild them."""

from __future__ import annotations

import math
from typing import Callable, Sequence

import torch
import torch.nn.functional as F

Augment = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


def random_affine(x: torch.Tensor, gen: torch.Generator, max_shift: float = 0.06, max_rotate_deg: float = 6.0,
                  scale_range: float = 0.06) -> torch.Tensor:
    """Small random rotations, scalings and sub-pixel shifts, batched (bilinear resampling at native size)."""
    n = x.shape[0]
    angle = (torch.rand(n, generator=gen) * 2 - 1) * math.radians(max_rotate_deg)
    scale = 1 + (torch.rand(n, generator=gen) * 2 - 1) * scale_range
    shift = (torch.rand(n, 2, generator=gen) * 2 - 1) * max_shift * 2
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def horizontal_flip(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Mirror a random half of the batch left to right."""
    flip = torch.rand(x.shape[0], generator=gen) < 0.5
    return torch.where(flip[:, None, None, None], x.flip(-1), x)


AUGMENTATIONS: dict[str, Augment] = {"affine": random_affine, "hflip": horizontal_flip}


def compose(names: Sequence[str]) -> Augment | None:
    """One augmentation applying `names` in order (None when empty); ValueError for an unknown name."""
    unknown = [n for n in names if n not in AUGMENTATIONS]
    if unknown:
        raise ValueError(f"unknown augmentation {unknown[0]!r}; known: {', '.join(sorted(AUGMENTATIONS))}")
    steps = [AUGMENTATIONS[n] for n in names]
    if not steps:
        return None

    def apply(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        for step in steps:
            x = step(x, gen)
        return x

    return apply
