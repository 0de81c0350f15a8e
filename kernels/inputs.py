"""Input transforms shared by supernets and exported subnets, so both see identical inputs."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def resize_images(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of an (N, C, H, W) batch to `size` (align_corners=False); identity when already there."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)


def apply_input_transform(x: torch.Tensor, spec: dict) -> torch.Tensor:
    """Apply a transform described as data (`{"resize": [h, w]}` or `{}`), as stored in exported configs."""
    unknown = set(spec) - {"resize"}
    if unknown:
        raise ValueError(f"unknown input transform {sorted(unknown)[0]!r}")
    if "resize" in spec:
        x = resize_images(x, tuple(spec["resize"]))
    return x
