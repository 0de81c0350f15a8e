"""Derive per-layer op descriptions from a static module by tracing one forward pass with hooks.

A family then only exports static modules; `trace_layers` turns them into the LayerSpecs that costs and
per-layer latency tables use, so no family writes op descriptions by hand.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import torch
from torch import nn

from kernels.describe import LayerSpec, OpSpec
from kernels.transformer import SelfAttention
from kernels.static import GlobalAvgPool, Residual, SqueezeExcite

ACTIVATION_KINDS: dict[type[nn.Module], str] = {
    nn.ReLU: "relu", nn.Hardswish: "hswish", nn.Hardsigmoid: "hardsigmoid", nn.SiLU: "silu", nn.GELU: "gelu",
}
_SILENT: tuple[type[nn.Module], ...] = (nn.Identity, nn.Dropout)  # no-ops at inference: recorded as nothing
_SHORT: dict[type[nn.Module], str] = {
    nn.Conv2d: "conv", nn.BatchNorm2d: "bn", nn.Linear: "linear", GlobalAvgPool: "pool", SqueezeExcite: "se",
    nn.LayerNorm: "ln", SelfAttention: "attn", **ACTIVATION_KINDS,
}


class TracedLayer(NamedTuple):
    """One traced layer: module path, input shape without batch, its ops, and the child module itself."""

    name: str
    input_shape: tuple[int, ...]
    spec: LayerSpec
    module: nn.Module


def _hw(shape: torch.Size) -> tuple[int, int]:
    return (int(shape[-2]), int(shape[-1])) if len(shape) == 4 else (1, 1)


def _channels(shape: torch.Size) -> int:
    """Channels of an image batch (B, C, H, W), of a sequence batch (B, T, C) or of features (B, C)."""
    if len(shape) == 3:
        return int(shape[-1])
    return int(shape[1]) if len(shape) >= 2 else 1


def _tokens(shape: torch.Size) -> tuple[tuple[str, Any], ...]:
    """`(("tokens", T),)` for a sequence batch (B, T, C); nothing for images and features."""
    return (("tokens", int(shape[1])),) if len(shape) == 3 else ()


def _first_tensor(values: Any) -> torch.Tensor:
    if isinstance(values, torch.Tensor):
        return values
    return next(v for v in values if isinstance(v, torch.Tensor))


def leaf_op(module: nn.Module, x: torch.Size, y: torch.Size) -> OpSpec | None:
    """The OpSpec of one leaf module run on input shape `x` giving `y`; None for inference no-ops."""
    if isinstance(module, _SILENT):
        return None
    if isinstance(module, nn.Conv2d):
        return OpSpec("conv2d", module.in_channels, module.out_channels, _hw(x), _hw(y), int(module.kernel_size[0]),
                      int(module.stride[0]), module.groups, module.bias is not None)
    if isinstance(module, nn.Linear):
        return OpSpec("linear", module.in_features, module.out_features, bias=module.bias is not None,
                      extra=_tokens(x))
    if isinstance(module, nn.BatchNorm2d):
        return OpSpec("batchnorm2d", module.num_features, module.num_features, _hw(x), _hw(y))
    if isinstance(module, GlobalAvgPool):
        return OpSpec("global_pool", _channels(x), _channels(x), _hw(x), (1, 1))
    if any(True for _ in module.parameters()) and type(module) not in _SHORT:
        raise TypeError(f"cannot describe {type(module).__name__}: a leaf module with parameters of unknown cost")
    kind = ACTIVATION_KINDS.get(type(module), type(module).__name__.lower())
    return OpSpec(kind, _channels(x), _channels(y), _hw(x), _hw(y), extra=_tokens(x))


def layer_kind(module: nn.Module) -> str:
    """A short structural signature, e.g. `conv_bn_relu` or `res(conv_bn_relu_conv_bn)_relu`."""
    if isinstance(module, Residual):
        return f"res({layer_kind(module.body)})"
    if isinstance(module, nn.Sequential):
        return "_".join(k for k in (layer_kind(c) for c in module.children()) if k)
    if isinstance(module, _SILENT):
        return ""
    if isinstance(module, nn.Conv2d) and module.groups > 1 and module.groups == module.in_channels:
        return "dwconv"
    return _SHORT.get(type(module), type(module).__name__.lower())


def _is_block_group(module: nn.Module) -> bool:
    """An nn.Sequential whose children are all composite modules (blocks), like a stage of blocks."""
    children = list(module.children())
    return isinstance(module, nn.Sequential) and bool(children) and all(any(True for _ in c.children())
                                                                        for c in children)


def split_layers(module: nn.Module) -> list[tuple[str, nn.Module]]:
    """The layers of a static module: its top-level children, a child that groups blocks giving one per block."""
    if not isinstance(module, nn.Sequential):
        return [(type(module).__name__.lower(), module)]
    layers: list[tuple[str, nn.Module]] = []
    for name, child in module.named_children():
        if _is_block_group(child):
            layers += [(f"{name}.{sub}", block) for sub, block in child.named_children()]
        else:
            layers.append((name, child))
    return layers


@torch.no_grad()
def trace_layers(module: nn.Module, example: torch.Tensor) -> list[TracedLayer]:
    """Run `module` on `example` (batch 1 is enough) and describe each layer by the ops its leaf modules ran.

    Residual adds an `add` op after its body; SqueezeExcite records its pooling and gating multiply.
    """
    layers = split_layers(module)
    shapes: list[tuple[int, ...]] = [() for _ in layers]
    ops: list[list[OpSpec]] = [[] for _ in layers]
    current = [-1]
    handles: list[torch.utils.hooks.RemovableHandle] = []

    def enter(index: int) -> Callable[..., None]:
        def hook(_: nn.Module, args: tuple[Any, ...]) -> None:
            current[0] = index
            shapes[index] = tuple(_first_tensor(args).shape[1:])
        return hook

    def record(op: OpSpec | None) -> None:
        if op is not None and current[0] >= 0:
            ops[current[0]].append(op)

    def leaf(m: nn.Module, args: tuple[Any, ...], out: Any) -> None:
        record(leaf_op(m, _first_tensor(args).shape, _first_tensor(out).shape))

    def se_enter(m: nn.Module, args: tuple[Any, ...]) -> None:
        x = _first_tensor(args).shape
        record(OpSpec("global_pool", _channels(x), _channels(x), _hw(x), (1, 1)))

    def attention(m: nn.Module, args: tuple[Any, ...], out: Any) -> None:
        y = _first_tensor(out).shape
        record(OpSpec("attention", _channels(y), _channels(y),
                      extra=(*_tokens(y), ("heads", int(m.heads)), ("head_dim", int(m.head_dim)))))

    def free_parameters(count: int) -> Callable[..., None]:
        def hook(_: nn.Module, args: tuple[Any, ...]) -> None:
            record(OpSpec("free_parameters", 0, 0, extra=(("count", count),)))
        return hook

    def combine(kind: str) -> Callable[..., None]:
        def hook(_: nn.Module, args: tuple[Any, ...], out: Any) -> None:
            y = _first_tensor(out).shape
            record(OpSpec(kind, _channels(y), _channels(y), _hw(y), _hw(y)))
        return hook

    try:
        for index, (_, layer) in enumerate(layers):
            handles.append(layer.register_forward_pre_hook(enter(index)))
        for sub in module.modules():
            if isinstance(sub, Residual):
                handles.append(sub.register_forward_hook(combine("add")))
            elif isinstance(sub, SqueezeExcite):
                handles.append(sub.register_forward_pre_hook(se_enter))
                handles.append(sub.register_forward_hook(combine("mul")))
            elif not any(True for _ in sub.children()):
                handles.append(sub.register_forward_hook(leaf))
            elif isinstance(sub, SelfAttention):
                handles.append(sub.register_forward_hook(attention))
            own = sum(p.numel() for p in sub.parameters(recurse=False))
            if own and any(True for _ in sub.children()):
                handles.append(sub.register_forward_pre_hook(free_parameters(own)))
        module(example)
    finally:
        for handle in handles:
            handle.remove()
    return [TracedLayer(name, shapes[i], LayerSpec(name, layer_kind(layer), tuple(ops[i])), layer)
            for i, (name, layer) in enumerate(layers)]
