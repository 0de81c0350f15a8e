"""Batch-norm recalibration: a subnet's BN statistics are re-estimated before it is evaluated or exported."""

from __future__ import annotations

from typing import Iterable

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm


@torch.no_grad()
def recalibrate_bn(net: nn.Module, batches: Iterable[torch.Tensor]) -> int:
    """Reset every BN layer's running statistics and re-estimate them as an exact average over `batches`.

    Only BN layers run in train mode (dropout stays off); the net is left in eval mode. Shared
    weight-sharing statistics are overwritten, so call this for the subnet about to be used.
    Returns the number of samples seen.
    """
    bns = [m for m in net.modules() if isinstance(m, _BatchNorm)]
    momenta = [bn.momentum for bn in bns]
    net.eval()
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average over all batches
        bn.train()
    seen = 0
    try:
        for x in batches:
            net(x)
            seen += int(x.shape[0])
    finally:
        for bn, momentum in zip(bns, momenta):
            bn.momentum = momentum
            bn.eval()
    if seen == 0:
        raise ValueError("BN recalibration needs at least one batch")
    return seen
