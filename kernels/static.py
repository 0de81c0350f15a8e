"""Static modules of exported subnets, and their JSON spec: a subnet reloads with no supernet class.

`to_spec(module)` describes a module tree built from this vocabulary as plain JSON; `from_spec(spec)`
rebuilds it (weights then come from safetensors). Unknown module types are refused, never evaluated.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Callable, Mapping

import torch
from torch import nn

from search_spaces.registry import Registry


class Residual(nn.Module):
    """body(x) + x."""

    def __init__(self, body: nn.Module):
        super().__init__()
        self.body = body

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + x


class SqueezeExcite(nn.Module):
    """Channel gating: x * hardsigmoid(expand(relu(reduce(mean_hw(x)))))."""

    def __init__(self, channels: int, mid: int):
        super().__init__()
        self.reduce = nn.Conv2d(channels, mid, 1, bias=True)
        self.act = nn.ReLU(inplace=True)
        self.expand = nn.Conv2d(mid, channels, 1, bias=True)
        self.gate = nn.Hardsigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean((2, 3), keepdim=True)
        return x * self.gate(self.expand(self.act(self.reduce(s))))


class GlobalAvgPool(nn.Module):
    """Mean over the spatial dimensions, flattened to (batch, channels)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean((2, 3))


def _conv_spec(m: nn.Conv2d) -> dict[str, Any]:
    return {"in_channels": m.in_channels, "out_channels": m.out_channels, "kernel_size": m.kernel_size[0],
            "stride": m.stride[0], "padding": m.padding[0], "groups": m.groups, "bias": m.bias is not None}


_SPEC_OF: dict[type, tuple[str, Callable[[Any], dict[str, Any]]]] = {
    nn.Conv2d: ("Conv2d", _conv_spec),
    nn.BatchNorm2d: ("BatchNorm2d", lambda m: {"num_features": m.num_features, "eps": m.eps}),
    nn.Linear: ("Linear", lambda m: {"in_features": m.in_features, "out_features": m.out_features,
                                     "bias": m.bias is not None}),
    nn.ReLU: ("ReLU", lambda m: {}),
    nn.Hardswish: ("Hardswish", lambda m: {}),
    nn.Hardsigmoid: ("Hardsigmoid", lambda m: {}),
    nn.SiLU: ("SiLU", lambda m: {}),
    nn.GELU: ("GELU", lambda m: {"approximate": m.approximate}),
    nn.Identity: ("Identity", lambda m: {}),
    nn.Dropout: ("Dropout", lambda m: {"p": m.p}),
    nn.LayerNorm: ("LayerNorm", lambda m: {"normalized_shape": list(m.normalized_shape), "eps": m.eps}),
    GlobalAvgPool: ("GlobalAvgPool", lambda m: {}),
    SqueezeExcite: ("SqueezeExcite", lambda m: {"channels": m.reduce.in_channels, "mid": m.reduce.out_channels}),
}

_BUILDERS: Registry[Callable[..., nn.Module]] = Registry("static module type")
for _cls, (_name, _) in _SPEC_OF.items():
    _BUILDERS.add(_name, _cls)


def register_static(name: str, cls: type[nn.Module], spec_of: Callable[[Any], dict[str, Any]]) -> None:
    """Add a module type to the vocabulary (for supernet families with ops of their own); names are unique."""
    _BUILDERS.add(name, cls)
    _SPEC_OF[cls] = (name, spec_of)


def to_spec(module: nn.Module) -> dict[str, Any]:
    """JSON description of a static module tree; TypeError for a module outside the vocabulary."""
    if isinstance(module, nn.Sequential):
        return {"type": "Sequential", "children": [[name, to_spec(child)] for name, child in module.named_children()]}
    if isinstance(module, Residual):
        return {"type": "Residual", "body": to_spec(module.body)}
    entry = _SPEC_OF.get(type(module))
    if entry is None:
        raise TypeError(f"{type(module).__name__} is not a static export module")
    name, spec_of = entry
    return {"type": name, "args": spec_of(module)}


def from_spec(spec: Mapping[str, Any]) -> nn.Module:
    """Rebuild the module tree described by `to_spec` (weights uninitialised until loaded)."""
    kind = spec.get("type")
    if kind == "Sequential":
        return nn.Sequential(OrderedDict((name, from_spec(child)) for name, child in spec["children"]))
    if kind == "Residual":
        return Residual(from_spec(spec["body"]))
    builder = _BUILDERS.find(str(kind))
    if builder is None:
        raise ValueError(f"unknown static module type {kind!r} in subnet config")
    return builder(**spec.get("args", {}))
