"""BatchNorm folding of static modules: a conv followed by its BN becomes one conv with a bias.

Deployable graphs (FP32 and INT8 ONNX) and the fake-quantised estimate both run folded convolutions, so the
quantiser sees the weights the device will run and no BN node stands between a conv and its activation.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


@torch.no_grad()
def folded_conv_params(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """(weight, bias) of the conv computing bn(conv(x)) in eval mode."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    weight = conv.weight * scale.reshape(-1, 1, 1, 1)
    bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
    return weight, (bias - bn.running_mean) * scale + bn.bias


def foldable(first: nn.Module, second: nn.Module) -> bool:
    """A Conv2d directly followed by a BatchNorm2d over its outputs."""
    return isinstance(first, nn.Conv2d) and isinstance(second, nn.BatchNorm2d) \
        and second.num_features == first.out_channels and second.track_running_stats


@torch.no_grad()
def fold_batchnorm(module: nn.Module) -> nn.Module:
    """A copy of `module` (eval mode) where every conv followed by a BN sibling in an nn.Sequential absorbs it;
    the BN becomes an Identity under the same name, so module paths are unchanged."""
    out = copy.deepcopy(module).eval()
    for parent in out.modules():
        if not isinstance(parent, nn.Sequential):
            continue
        names = [name for name, _ in parent.named_children()]
        for first, second in zip(names, names[1:]):
            conv, bn = getattr(parent, first), getattr(parent, second)
            if not foldable(conv, bn):
                continue
            weight, bias = folded_conv_params(conv, bn)
            fused = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                              conv.dilation, conv.groups, bias=True)
            fused.weight.copy_(weight)
            fused.bias.copy_(bias)
            setattr(parent, first, fused)
            setattr(parent, second, nn.Identity())
    return out
