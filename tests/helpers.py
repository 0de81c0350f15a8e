"""Shared test helpers: make freshly built networks look trained, so equivalence checks are not trivial."""

from __future__ import annotations

import torch
from torch import nn


def randomize_bn(module: nn.Module, gen: torch.Generator | None = None) -> None:
    """Non-trivial BN running statistics and affine parameters (fresh BN is the identity)."""
    gen = gen or torch.Generator().manual_seed(0)
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.rand(n, generator=gen) - 0.5)
            m.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=gen) + 0.5)
            m.bias.data.copy_(torch.rand(n, generator=gen) - 0.5)


def perturb(net: nn.Module) -> None:
    """Make BN statistics, SE gates and kernel transforms non-trivial, as after training."""
    gen = torch.Generator().manual_seed(0)
    randomize_bn(net, gen)
    for name, p in net.named_parameters():
        if "transforms" in name or "se.expand" in name:
            p.data += 0.05 * torch.randn(p.shape, generator=gen)
