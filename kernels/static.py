"""Static modules of exported subnets, and their JSON spec: a subnet reloads with no supernet class.

`to_spec(module)` describes a module tree built from this vocabulary as plain JSON; `from_spec(spec)`
rebuilds it (weights then come from safetensors). Unknown module types are refused, never evaluated.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional

import torch
from torch import nn

from nasengine.kernels.describe import OpSpec, shape_channels, shape_hw, shape_tokens
from nasengine.search_spaces.registry import Registry


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


Describe = Callable[[nn.Module, torch.Size, torch.Size], Optional[OpSpec]]


@dataclass
class StaticOp:
    """One module type of the static vocabulary and everything the engine does with it: its JSON spec (`spec_of`,
    rebuilt by calling `cls(**args)`), its short name in layer signatures (`short`), how a leaf of this type is
    described as an op for costs and latency tables (`describe(module, input_shape, output_shape)`; by default an
    element-wise op of kind `short`), and, when the ONNX writer converts it directly, its converter (`onnx`;
    types without one are exported by torch.onnx). Adding an op is one `register_static` call."""

    name: str
    cls: type[nn.Module]
    spec_of: Callable[[Any], dict[str, Any]]
    short: str
    describe: Describe | None = None
    onnx: Callable[..., str] | None = None

    def describe_leaf(self, module: nn.Module, x: torch.Size, y: torch.Size) -> OpSpec | None:
        if self.describe is not None:
            return self.describe(module, x, y)
        if any(True for _ in module.parameters(recurse=False)):
            raise TypeError(f"cannot describe {type(module).__name__}: a leaf module with parameters of unknown "
                            f"cost (register it with describe=...)")
        return OpSpec(self.short, shape_channels(x), shape_channels(y), shape_hw(x), shape_hw(y),
                      extra=shape_tokens(x))


_BUILDERS: Registry[Callable[..., nn.Module]] = Registry("static module type")
_OPS: dict[type, StaticOp] = {}


def register_static(name: str, cls: type[nn.Module], spec_of: Callable[[Any], dict[str, Any]], *,
                    short: str | None = None, describe: Describe | None = None,
                    onnx: Callable[..., str] | None = None) -> StaticOp:
    """Add a module type to the vocabulary (for supernet families with ops of their own); names are unique.
    A leaf type that holds parameters needs `describe`, so its cost is known."""
    _BUILDERS.add(name, cls)
    short = short or name.lower()
    op = StaticOp(name, cls, spec_of, short, describe, onnx)
    _OPS[cls] = op
    return op


def static_op(cls: type) -> StaticOp | None:
    """The vocabulary entry of a module type, or None when it is not in the vocabulary."""
    return _OPS.get(cls)


def set_onnx_converter(cls: type[nn.Module], converter: Callable[..., str]) -> None:
    """Attach the ONNX writer's direct converter to a vocabulary type (the writer registers its own)."""
    _OPS[cls].onnx = converter


def _silent(m: nn.Module, x: torch.Size, y: torch.Size) -> None:
    return None  # no-ops at inference: recorded as nothing


def _describe_conv(m: nn.Conv2d, x: torch.Size, y: torch.Size) -> OpSpec:
    return OpSpec("conv2d", m.in_channels, m.out_channels, shape_hw(x), shape_hw(y), int(m.kernel_size[0]),
                  int(m.stride[0]), m.groups, m.bias is not None)


for _cls, _name, _spec, _extra in (
        (nn.Conv2d, "Conv2d", _conv_spec, {"short": "conv", "describe": _describe_conv}),
        (nn.BatchNorm2d, "BatchNorm2d", lambda m: {"num_features": m.num_features, "eps": m.eps},
         {"short": "bn", "describe": lambda m, x, y: OpSpec("batchnorm2d", m.num_features, m.num_features,
                                                          shape_hw(x), shape_hw(y))}),
        (nn.Linear, "Linear", lambda m: {"in_features": m.in_features, "out_features": m.out_features,
                                         "bias": m.bias is not None},
         {"describe": lambda m, x, y: OpSpec("linear", m.in_features, m.out_features, bias=m.bias is not None,
                                             extra=shape_tokens(x))}),
        (nn.Embedding, "Embedding", lambda m: {"num_embeddings": m.num_embeddings, "embedding_dim": m.embedding_dim},
         {"short": "emb", "describe": lambda m, x, y: OpSpec("embedding", m.num_embeddings, m.embedding_dim,
                                                           extra=(("tokens", int(x.numel())),))}),
        (nn.ReLU, "ReLU", lambda m: {}, {}),
        (nn.Hardswish, "Hardswish", lambda m: {}, {"short": "hswish"}),
        (nn.Hardsigmoid, "Hardsigmoid", lambda m: {}, {}),
        (nn.SiLU, "SiLU", lambda m: {}, {}),
        (nn.GELU, "GELU", lambda m: {"approximate": m.approximate}, {}),
        (nn.Tanh, "Tanh", lambda m: {}, {}),
        (nn.Identity, "Identity", lambda m: {}, {"short": "", "describe": _silent}),
        (nn.Dropout, "Dropout", lambda m: {"p": m.p}, {"short": "", "describe": _silent}),
        (nn.LayerNorm, "LayerNorm", lambda m: {"normalized_shape": list(m.normalized_shape), "eps": m.eps},
         {"short": "ln", "describe": lambda m, x, y: OpSpec("layernorm", shape_channels(x), shape_channels(y),
                                                          shape_hw(x), shape_hw(y), extra=shape_tokens(x))}),
        (GlobalAvgPool, "GlobalAvgPool", lambda m: {},
         {"short": "pool", "describe": lambda m, x, y: OpSpec("global_pool", shape_channels(x), shape_channels(x),
                                                            shape_hw(x), (1, 1))}),
        (SqueezeExcite, "SqueezeExcite", lambda m: {"channels": m.reduce.in_channels, "mid": m.reduce.out_channels},
         {"short": "se"}),
):
    register_static(_name, _cls, _spec, **_extra)


def to_spec(module: nn.Module) -> dict[str, Any]:
    """JSON description of a static module tree; TypeError for a module outside the vocabulary."""
    if isinstance(module, nn.Sequential):
        return {"type": "Sequential", "children": [[name, to_spec(child)] for name, child in module.named_children()]}
    if isinstance(module, Residual):
        return {"type": "Residual", "body": to_spec(module.body)}
    entry = _OPS.get(type(module))
    if entry is None:
        raise TypeError(f"{type(module).__name__} is not a static export module")
    return {"type": entry.name, "args": entry.spec_of(module)}


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
