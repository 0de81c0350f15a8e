"""Static modules of exported subnets, and their JSON spec: a subnet reloads with no supernet class.

`to_spec(module)` describes a module tree built from this vocabulary as plain JSON; `from_spec(spec)`
rebuilds it (weights then come from safetensors). Unknown module types are refused, never evaluated.
"""

from __future__ import annotations

import sys
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional

import torch
from torch import nn

from nasengine.kernels import onnx_ops, quant_nodes
from nasengine.kernels.describe import OpSpec, shape_channels, shape_hw, shape_tokens
from nasengine.kernels.quant_nodes import QuantRule, keep_float, quantize_children
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
    """One module type of the static vocabulary and everything the engine does with it, given in one
    `register_static` call:

    - `spec_of(module) -> JSON args`, rebuilt by `build(**args)` (default: the class itself);
    - `short`: its name in layer signatures (`signature(module, kind_of)` when it wraps its children's kinds);
    - `describe(module, input_shape, output_shape) -> OpSpec | None`: the op this module adds itself, recorded
      after it ran (a leaf: all it computes; default: an element-wise op of kind `short`; a composite such as a
      residual: its add), and `describe_input`: an op it runs on its input before its children (SqueezeExcite's
      pooling) - costs, MACs and per-layer latency tables come from these;
    - `onnx(g, module, x, path)`: a direct converter for the ONNX writer (see kernels.onnx_ops; without one,
      torch.onnx exports the module);
    - `quantize(module, recurse)`: how onnxruntime's INT8 quantizer treats it, simulated (see kernels.quant_nodes).
      An op that holds weights must say; a weightless one defaults to its children's rules, or to FP32.
    """

    name: str
    cls: type[nn.Module]
    spec_of: Callable[[Any], dict[str, Any]]
    short: str
    describe: Describe | None = None
    onnx: Callable[..., str] | None = None
    quantize: QuantRule | None = None
    describe_input: Describe | None = None
    build: Callable[..., nn.Module] | None = None
    signature: Callable[[nn.Module, Callable[[nn.Module], str]], str] | None = None
    owner: str = ""  # the module that registered it: an export needs it imported to rebuild this type

    def kind(self, module: nn.Module, kind_of: Callable[[nn.Module], str]) -> str:
        """Its part of a layer signature: `short`, or what `signature(module, kind_of)` builds from its children."""
        return self.signature(module, kind_of) if self.signature is not None else self.short

    def describe_leaf(self, module: nn.Module, x: torch.Size, y: torch.Size) -> OpSpec | None:
        if self.describe is not None:
            return self.describe(module, x, y)
        if any(True for _ in module.parameters(recurse=False)):
            raise TypeError(f"cannot describe {type(module).__name__}: a leaf module with parameters of unknown "
                            f"cost (register it with describe=...)")
        return OpSpec(self.short, shape_channels(x), shape_channels(y), shape_hw(x), shape_hw(y),
                      extra=shape_tokens(x))


@dataclass(frozen=True)
class Composite:
    """How a composite op relates to its parts (the built-in Residual and SqueezeExcite need these; most ops
    don't): `describe_input`, an op it runs on its input before its children; `build(**args)`, how its spec's
    args (holding its children's specs) rebuild it; `signature(module, kind_of)`, its layer-signature part from
    its children's kinds."""

    describe_input: Describe | None = None
    build: Callable[..., nn.Module] | None = None
    signature: Callable[[nn.Module, Callable[[nn.Module], str]], str] | None = None


_BUILDERS: Registry[Callable[..., nn.Module]] = Registry("static module type")
_OPS: dict[type, StaticOp] = {}


def register_static(name: str, cls: type[nn.Module], spec_of: Callable[[Any], dict[str, Any]], *,
                    short: str | None = None, describe: Describe | None = None,
                    onnx: Callable[..., str] | None = None, quantize: QuantRule | None = None,
                    parts: Composite | None = None) -> StaticOp:
    """Add a module type to the vocabulary (for supernet families with ops of their own); names are unique.
    A leaf type that holds parameters needs `describe`, so its cost is known, and every type that holds
    parameters needs `quantize`, so INT8 estimates never silently skip it (see `check_static`)."""
    if cls in _OPS:
        raise ValueError(f"{cls.__name__} is already in the static vocabulary as {_OPS[cls].name!r}")
    parts = parts or Composite()
    _BUILDERS.add(name, parts.build or cls)
    owner = str(sys._getframe(1).f_globals.get("__name__", ""))  # the registering module (a plugin's, say)
    op = StaticOp(name, cls, spec_of, short if short is not None else name.lower(), describe, onnx, quantize,
                  parts.describe_input, parts.build, parts.signature, owner)
    _OPS[cls] = op
    return op


def static_op(cls: type) -> StaticOp | None:
    """The vocabulary entry of a module type, or None when it is not in the vocabulary."""
    return _OPS.get(cls)


def registering_modules(module: nn.Module) -> list[str]:
    """The Python modules, other than nasengine's own, that must be imported for `module`'s spec to rebuild: those
    defining its classes and those that registered its types (a plugin may register a torch class)."""
    found = set()
    for sub in module.modules():
        op = _OPS.get(type(sub))
        for name in (type(sub).__module__, op.owner if op is not None else ""):
            if name and name != "torch" and not name.startswith(("torch.", "nasengine.")):
                found.add(name)
    return sorted(found)


def quantization_rule(module: nn.Module) -> QuantRule:
    """The rule fake quantization applies to `module`: its registration's; without one, a module holding no weights
    of its own takes its children's rules (or stays FP32), and one holding weights is a TypeError naming it."""
    op = _OPS.get(type(module))
    if op is not None and op.quantize is not None:
        return op.quantize
    if any(True for _ in module.parameters(recurse=False)):
        what = f"static op {op.name!r}" if op is not None else f"{type(module).__name__} (no static op)"
        raise TypeError(f"{what} holds weights but its registration gives no quantization rule; pass quantize= to "
                        f"nasengine.kernels.register_static (nasengine.kernels.quant_nodes: quantize_node, "
                        f"keep_float, ...)")
    return quantize_children if any(True for _ in module.children()) else keep_float


def check_static(module: nn.Module) -> None:
    """TypeError naming the first module of `module` the engine cannot handle: a type outside the vocabulary, a
    leaf holding weights without a cost description, or a type holding weights without a quantization rule."""
    for sub in module.modules():
        if type(sub) is nn.Sequential:
            continue
        op = static_op(type(sub))
        if op is None:
            raise TypeError(f"{type(sub).__name__} is not a static export module (register it with "
                            f"nasengine.kernels.register_static)")
        holds = any(True for _ in sub.parameters(recurse=False))
        if holds and op.describe is None and not any(True for _ in sub.children()):
            raise TypeError(f"static op {op.name!r} holds weights but its registration gives no cost description; "
                            f"pass describe= to register_static")
        quantization_rule(sub)


def _silent(m: nn.Module, x: torch.Size, y: torch.Size) -> None:
    return None  # no-ops at inference: recorded as nothing


def _describe_conv(m: nn.Conv2d, x: torch.Size, y: torch.Size) -> OpSpec:
    return OpSpec("conv2d", m.in_channels, m.out_channels, shape_hw(x), shape_hw(y), int(m.kernel_size[0]),
                  int(m.stride[0]), m.groups, m.bias is not None)


def _combine(kind: str) -> Describe:
    """An element-wise op joining two tensors of the output's shape (a residual's add, a gate's multiply)."""
    return lambda m, x, y: OpSpec(kind, shape_channels(y), shape_channels(y), shape_hw(y), shape_hw(y))


def _pool_input(m: nn.Module, x: torch.Size, y: torch.Size) -> OpSpec:
    return OpSpec("global_pool", shape_channels(x), shape_channels(x), shape_hw(x), (1, 1))


for _cls, _name, _spec, _extra in (
        (nn.Conv2d, "Conv2d", _conv_spec, {"short": "conv", "describe": _describe_conv, "onnx": onnx_ops.conv,
                                           "quantize": quant_nodes.quantize_node}),
        (nn.BatchNorm2d, "BatchNorm2d", lambda m: {"num_features": m.num_features, "eps": m.eps},
         {"short": "bn", "describe": lambda m, x, y: OpSpec("batchnorm2d", m.num_features, m.num_features,
                                                          shape_hw(x), shape_hw(y)),
          "onnx": onnx_ops.batchnorm, "quantize": quant_nodes.quantize_node}),
        (nn.Linear, "Linear", lambda m: {"in_features": m.in_features, "out_features": m.out_features,
                                         "bias": m.bias is not None},
         {"describe": lambda m, x, y: OpSpec("linear", m.in_features, m.out_features, bias=m.bias is not None,
                                             extra=shape_tokens(x)),
          "onnx": onnx_ops.linear, "quantize": quant_nodes.quantize_node}),
        (nn.Embedding, "Embedding", lambda m: {"num_embeddings": m.num_embeddings, "embedding_dim": m.embedding_dim},
         {"short": "emb", "describe": lambda m, x, y: OpSpec("embedding", m.num_embeddings, m.embedding_dim,
                                                           extra=(("tokens", int(x.numel())),)),
          "quantize": keep_float}),
        (nn.ReLU, "ReLU", lambda m: {}, {"onnx": onnx_ops.relu, "quantize": quant_nodes.fused_relu}),
        (nn.Hardswish, "Hardswish", lambda m: {}, {"short": "hswish", "onnx": onnx_ops.hardswish}),
        (nn.Hardsigmoid, "Hardsigmoid", lambda m: {}, {"onnx": onnx_ops.hardsigmoid}),
        (nn.SiLU, "SiLU", lambda m: {}, {"onnx": onnx_ops.silu, "quantize": quant_nodes.silu}),
        (nn.GELU, "GELU", lambda m: {"approximate": m.approximate}, {}),
        (nn.Tanh, "Tanh", lambda m: {}, {}),
        (nn.Identity, "Identity", lambda m: {}, {"short": "", "describe": _silent, "onnx": onnx_ops.identity,
                                                 "quantize": quant_nodes.passthrough}),
        (nn.Dropout, "Dropout", lambda m: {"p": m.p}, {"short": "", "describe": _silent, "onnx": onnx_ops.identity,
                                                       "quantize": quant_nodes.passthrough}),
        (nn.LayerNorm, "LayerNorm", lambda m: {"normalized_shape": list(m.normalized_shape), "eps": m.eps},
         {"short": "ln", "describe": lambda m, x, y: OpSpec("layernorm", shape_channels(x), shape_channels(y),
                                                          shape_hw(x), shape_hw(y), extra=shape_tokens(x)),
          "quantize": keep_float}),
        (GlobalAvgPool, "GlobalAvgPool", lambda m: {},
         {"short": "pool", "describe": lambda m, x, y: OpSpec("global_pool", shape_channels(x), shape_channels(x),
                                                            shape_hw(x), (1, 1)),
          "onnx": onnx_ops.global_avg_pool, "quantize": quant_nodes.quantize_node}),
        (SqueezeExcite, "SqueezeExcite", lambda m: {"channels": m.reduce.in_channels, "mid": m.reduce.out_channels},
         {"short": "se", "describe": _combine("mul"), "onnx": onnx_ops.squeeze_excite,
          "quantize": quant_nodes.squeeze_excite, "parts": Composite(describe_input=_pool_input)}),
        (Residual, "Residual", lambda m: {"body": to_spec(m.body)},
         {"short": "res", "describe": _combine("add"), "onnx": onnx_ops.residual, "quantize": quant_nodes.residual,
          "parts": Composite(build=lambda body: Residual(from_spec(body)),
                             signature=lambda m, kind_of: f"res({kind_of(m.body)})")}),
):
    register_static(_name, _cls, _spec, **_extra)


def to_spec(module: nn.Module) -> dict[str, Any]:
    """JSON description of a static module tree; TypeError for a module outside the vocabulary."""
    if type(module) is nn.Sequential:
        return {"type": "Sequential", "children": [[name, to_spec(child)] for name, child in module.named_children()]}
    entry = _OPS.get(type(module))
    if entry is None:
        raise TypeError(f"{type(module).__name__} is not a static export module")
    return {"type": entry.name, "args": entry.spec_of(module)}


def from_spec(spec: Mapping[str, Any]) -> nn.Module:
    """Rebuild the module tree described by `to_spec` (weights uninitialised until loaded)."""
    kind = spec.get("type")
    if kind == "Sequential":
        return nn.Sequential(OrderedDict((name, from_spec(child)) for name, child in spec["children"]))
    builder = _BUILDERS.find(str(kind))
    if builder is None:
        raise ValueError(f"unknown static module type {kind!r} in subnet config")
    if kind == "Residual" and "args" not in spec:  # exports of nasengine 0.1 wrote the body beside the type
        return builder(body=spec["body"])
    return builder(**spec.get("args", {}))
