"""Direct ONNX converters of the built-in static ops, named in their registration (`register_static(..., onnx=...)`).

A converter is `convert(g, module, x, path) -> output name`: it adds the module's nodes to the graph builder `g`
(`g.node(op, inputs, name, **attributes)`, `g.const(tensor, name)`, `g.convert(child, x, path)`) and needs no onnx
import here. Nodes are named by the module path they compute, with `/part` for a module written as several nodes,
so a layer maps to its nodes by prefix.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


def child_path(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def conv_node(g: Any, m: nn.Conv2d, x: str, path: str, weight: torch.Tensor, bias: torch.Tensor | None) -> str:
    """A Conv node of `m`'s geometry with the given weights (its own, or with a BatchNorm folded in)."""
    k, s, p = m.kernel_size, m.stride, m.padding
    inputs = [x, g.const(weight, f"{path}.weight")] + ([g.const(bias, f"{path}.bias")] if bias is not None else [])
    return g.node("Conv", inputs, path, kernel_shape=list(k), strides=list(s), pads=[p[0], p[1], p[0], p[1]],
                  group=m.groups, dilations=list(m.dilation))


def conv(g: Any, m: nn.Conv2d, x: str, path: str) -> str:
    return conv_node(g, m, x, path, m.weight, m.bias)


def batchnorm(g: Any, m: nn.BatchNorm2d, x: str, path: str) -> str:
    inputs = [x, g.const(m.weight, f"{path}.weight"), g.const(m.bias, f"{path}.bias"),
              g.const(m.running_mean, f"{path}.running_mean"), g.const(m.running_var, f"{path}.running_var")]
    return g.node("BatchNormalization", inputs, path, epsilon=float(m.eps))


def linear(g: Any, m: nn.Linear, x: str, path: str) -> str:
    inputs = [x, g.const(m.weight, f"{path}.weight")] + ([g.const(m.bias, f"{path}.bias")]
                                                         if m.bias is not None else [])
    return g.node("Gemm", inputs, path, transB=1)


def relu(g: Any, m: nn.Module, x: str, path: str) -> str:
    return g.node("Relu", [x], path)


def hardswish(g: Any, m: nn.Module, x: str, path: str) -> str:
    return g.node("HardSwish", [x], path)


def hardsigmoid(g: Any, m: nn.Module, x: str, path: str) -> str:
    return g.node("HardSigmoid", [x], path, alpha=1.0 / 6.0, beta=0.5)


def silu(g: Any, m: nn.Module, x: str, path: str) -> str:
    return g.node("Mul", [x, g.node("Sigmoid", [x], f"{path}/sigmoid")], path)


def identity(g: Any, m: nn.Module, x: str, path: str) -> str:
    return x


def global_avg_pool(g: Any, m: nn.Module, x: str, path: str) -> str:
    return g.node("Flatten", [g.node("GlobalAveragePool", [x], f"{path}/pool")], path, axis=1)


def squeeze_excite(g: Any, m: Any, x: str, path: str) -> str:
    s = g.node("GlobalAveragePool", [x], f"{path}/squeeze")
    s = g.node("Relu", [conv(g, m.reduce, s, f"{path}.reduce")], f"{path}.act")
    s = g.node("HardSigmoid", [conv(g, m.expand, s, f"{path}.expand")], f"{path}.gate", alpha=1.0 / 6.0, beta=0.5)
    return g.node("Mul", [x, s], f"{path}/excite")


def residual(g: Any, m: Any, x: str, path: str) -> str:
    body = g.convert(m.body, x, child_path(path, "body"))
    return g.node("Add", [body, x], f"{path}/add" if path else "add")
