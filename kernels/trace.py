"""Derive per-layer op descriptions from a static module by tracing one forward pass with hooks.

A family then only exports static modules; `trace_layers` turns them into the LayerSpecs that costs and
per-layer latency tables use, so no family writes op descriptions by hand.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import torch
from torch import nn

from nasengine.kernels.describe import LayerSpec, OpSpec, shape_channels, shape_hw, shape_tokens
from nasengine.kernels.inputs import Inputs, as_args
from nasengine.kernels.static import static_op


class TracedLayer(NamedTuple):
    """One traced layer: module path, input shape without batch, its ops, the child module itself and the dtype
    of its input (int64 for a layer that looks up token ids)."""

    name: str
    input_shape: tuple[int, ...]
    spec: LayerSpec
    module: nn.Module
    input_dtype: str = "float32"


def _first_tensor(values: Any) -> torch.Tensor:
    if isinstance(values, torch.Tensor):
        return values
    return next(v for v in values if isinstance(v, torch.Tensor))


def leaf_op(module: nn.Module, x: torch.Size, y: torch.Size) -> OpSpec | None:
    """The OpSpec of one leaf module run on input shape `x` giving `y` (see kernels.static.StaticOp); None for
    inference no-ops. A leaf outside the vocabulary counts as an element-wise op unless it holds parameters."""
    op = static_op(type(module))
    if op is not None:
        return op.describe_leaf(module, x, y)
    if any(True for _ in module.parameters()):
        raise TypeError(f"cannot describe {type(module).__name__}: a leaf module with parameters of unknown cost")
    return OpSpec(type(module).__name__.lower(), shape_channels(x), shape_channels(y), shape_hw(x), shape_hw(y),
                  extra=shape_tokens(x))


def layer_kind(module: nn.Module) -> str:
    """A short structural signature, e.g. `conv_bn_relu` or `res(conv_bn_relu_conv_bn)_relu`."""
    if isinstance(module, nn.Sequential):
        return "_".join(k for k in (layer_kind(c) for c in module.children()) if k)
    if isinstance(module, nn.Conv2d) and module.groups > 1 and module.groups == module.in_channels:
        return "dwconv"
    op = static_op(type(module))
    return op.kind(module, layer_kind) if op is not None else type(module).__name__.lower()


def _is_block_group(module: nn.Module) -> bool:
    """An nn.Sequential whose children are all composite modules (blocks), like a stage of blocks."""
    children = list(module.children())
    return isinstance(module, nn.Sequential) and bool(children) and all(any(True for _ in c.children())
                                                                        for c in children)


def split_layers(module: nn.Module) -> list[tuple[str, nn.Module]]:
    """The layers of a static module: its top-level children, a child that groups blocks giving one per block.
    A module that is not a Sequential (several inputs, such as a text encoder) may list its layers itself
    with `named_layers()`, as (module path, module) in execution order."""
    if hasattr(module, "named_layers"):
        return list(module.named_layers())
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
def trace_layers(module: nn.Module, example: Inputs) -> list[TracedLayer]:
    """Run `module` on `example` (batch 1 is enough) and describe each layer by the ops its leaf modules ran, plus
    what each registered composite adds itself (`describe`, `describe_input` of its registration: a residual's
    add after its body, SqueezeExcite's pooling before and gating multiply after, attention's score products)."""
    layers = split_layers(module)
    shapes: list[tuple[int, ...]] = [() for _ in layers]
    dtypes: list[str] = ["float32" for _ in layers]
    ops: list[list[OpSpec]] = [[] for _ in layers]
    current = [-1]
    handles: list[torch.utils.hooks.RemovableHandle] = []

    def enter(index: int) -> Callable[..., None]:
        def hook(_: nn.Module, args: tuple[Any, ...]) -> None:
            current[0] = index
            first = _first_tensor(args)
            shapes[index] = tuple(first.shape[1:])
            dtypes[index] = "float32" if first.is_floating_point() else "int64"
        return hook

    def record(op: OpSpec | None) -> None:
        if op is not None and current[0] >= 0:
            ops[current[0]].append(op)

    def leaf(m: nn.Module, args: tuple[Any, ...], out: Any) -> None:
        record(leaf_op(m, _first_tensor(args).shape, _first_tensor(out).shape))

    def describe_with(describe: Any, before: bool) -> Callable[..., None]:
        """A hook recording what a registered op adds itself: before its children run (on its input), or after."""
        def hook(m: nn.Module, args: tuple[Any, ...], out: Any = None) -> None:
            x = _first_tensor(args).shape
            record(describe(m, x, x if before else _first_tensor(out).shape))
        return hook

    def free_parameters(count: int) -> Callable[..., None]:
        def hook(_: nn.Module, args: tuple[Any, ...]) -> None:
            record(OpSpec("free_parameters", 0, 0, extra=(("count", count),)))
        return hook

    try:
        for index, (_, layer) in enumerate(layers):
            handles.append(layer.register_forward_pre_hook(enter(index)))
        for sub in module.modules():
            op = static_op(type(sub))
            if op is not None and op.describe_input is not None:
                handles.append(sub.register_forward_pre_hook(describe_with(op.describe_input, before=True)))
            if not any(True for _ in sub.children()):
                handles.append(sub.register_forward_hook(leaf))
            elif op is not None and op.describe is not None:
                handles.append(sub.register_forward_hook(describe_with(op.describe, before=False)))
            own = sum(p.numel() for p in sub.parameters(recurse=False))
            if own and any(True for _ in sub.children()):
                handles.append(sub.register_forward_pre_hook(free_parameters(own)))
        module(*as_args(example))
    finally:
        for handle in handles:
            handle.remove()
    return [TracedLayer(name, shapes[i], LayerSpec(name, layer_kind(layer), tuple(ops[i])), layer, dtypes[i])
            for i, (name, layer) in enumerate(layers)]
