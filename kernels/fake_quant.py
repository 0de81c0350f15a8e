"""Fake-quantised torch estimate of the INT8 graph onnxruntime's static QDQ quantiser deploys.

Mirrors `quantize_static` (QDQ, MinMax, INT8 symmetric per-channel weights, UINT8 asymmetric per-tensor activations)
on the BN-folded subnet: every tensor into or out of a node onnxruntime quantises by default (Conv, Gemm, Add, Mul,
Relu, GlobalAveragePool, Sigmoid) is rounded to the grid of its calibrated range, Hardswish / Hardsigmoid run FP32
between them, a Relu after a quantised node is fused into it, biases are int32 at input_scale * weight_scale.
"""

from __future__ import annotations

from typing import Collection, Iterable

import torch
from torch import nn

from nasengine.kernels.inputs import Inputs, as_args

from nasengine.kernels.fold import fold_batchnorm
from nasengine.kernels.quant_nodes import ActQuant, QuantOp, fuse_relus, passthrough, \
    quantizes_weights
from nasengine.kernels.static import quantization_rule, static_op
from nasengine.kernels.trace import split_layers

def _silent(m: nn.Module) -> bool:
    op = static_op(type(m))
    return op is not None and op.quantize is passthrough


def _quantized(m: nn.Module) -> nn.Module:
    """`m` with every node onnxruntime would quantise wrapped to simulate it: each module by the rule its
    registration names; the children of a Sequential in order, with Relus fused into the node before them."""
    if type(m) is nn.Sequential:
        for name, child in list(m.named_children()):
            setattr(m, name, _quantized(child))
        return fuse_relus(m, _silent)
    return quantization_rule(m)(m, _quantized)


def holds_quantized_weights(module: nn.Module) -> bool:
    """Whether any module inside `module` has its own weights put on the INT8 grid by its rule (a conv or linear
    layer: what a precision policy chooses FP32 or INT8 for)."""
    for m in module.modules():
        op = static_op(type(m))
        weight = getattr(m, "weight", None)
        if op is not None and quantizes_weights(op.quantize) and isinstance(weight, torch.Tensor) and weight.dim() >= 2:
            return True
    return False


def quantizable_paths(module: nn.Module) -> list[str]:
    """split_layers paths of the layers holding quantized weights (those a precision policy chooses for); a module
    that is one layer (no Sequential, no `named_layers`) is the path ""."""
    if type(module) is not nn.Sequential and not hasattr(module, "named_layers"):
        return [""] if holds_quantized_weights(module) else []
    return [path for path, layer in split_layers(module) if holds_quantized_weights(layer)]


def _int8_paths(layers: list[tuple[str, nn.Module]], int8_layers: Collection[str]) -> list[str]:
    """The listed layers plus the weightless ones after an INT8 layer (a pooling goes with the layer feeding it),
    as `nasengine.graphs.quantization.nodes_of_layers` picks ONNX nodes; ValueError for names that are no layer."""
    wanted = set(int8_layers)
    unknown = sorted(wanted - {path for path, _ in layers})
    if unknown:
        raise ValueError(f"unknown layers {unknown}; known layers: {', '.join(path for path, _ in layers)}")
    out: list[str] = []
    current = False
    for path, layer in layers:
        if path in wanted:
            current = True
        elif any(True for _ in layer.parameters()):
            current = False
        if current:
            out.append(path)
    return out


@torch.no_grad()
def fake_quantize(module: nn.Module, int8_layers: Collection[str], calibration: Iterable[Inputs]) -> nn.Module:
    """A new eval-mode copy of `module`, BN folded, simulating onnxruntime's static QDQ INT8 for the split_layers
    paths in `int8_layers` (the rest stays FP32), activation ranges calibrated on `calibration` (model inputs)."""
    out = fold_batchnorm(module)  # a deep copy: `module` is never touched
    layers = split_layers(out)
    paths = _int8_paths(layers, int8_layers)
    for path, layer in layers:
        if path not in paths:
            continue
        if layer is out:  # a module that is no nn.Sequential is a single layer
            out = _quantized(layer).eval()
        else:
            parent, _, name = path.rpartition(".")
            setattr(out.get_submodule(parent) if parent else out, name, _quantized(layer).eval())
    if not paths:
        return out
    seen = 0
    for x in calibration:  # observers only record here: ranges come from the FP32 graph, as in onnxruntime
        out(*as_args(x))
        seen += 1
    if seen == 0:
        raise ValueError("fake_quantize needs at least one calibration batch")
    for kind in (ActQuant, QuantOp):  # activation grids first: a bias is rounded at its input's scale
        for m in out.modules():
            if isinstance(m, kind):
                m.freeze()
    return out
