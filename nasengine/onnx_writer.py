"""Static subnet -> ONNX, written directly from the kernels.static vocabulary (milliseconds, not seconds).

Search measures hundreds of subnets; tracing each through torch.onnx costs 0.5-2 s, this costs a few ms.
Modules outside the vocabulary fall back to torch.onnx.export, so any static module still exports.
"""

from __future__ import annotations

import io
import warnings
from typing import Callable

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from kernels.static import GlobalAvgPool, Residual, SqueezeExcite

OPSET = 17
INPUT_NAME, OUTPUT_NAME = "input", "logits"


class _Graph:
    """Accumulates nodes and initializers with unique names."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._count = 0

    def name(self, hint: str) -> str:
        self._count += 1
        return f"{hint}_{self._count}"

    def const(self, value: torch.Tensor | np.ndarray, hint: str) -> str:
        array = value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)
        name = self.name(hint)
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def node(self, op: str, inputs: list[str], hint: str = "", **attrs: object) -> str:
        out = self.name(hint or op.lower())
        self.nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        return out


Converter = Callable[[_Graph, nn.Module, str], str]


def _conv(g: _Graph, m: nn.Conv2d, x: str) -> str:
    k, s, p = m.kernel_size, m.stride, m.padding
    inputs = [x, g.const(m.weight, "w")] + ([g.const(m.bias, "b")] if m.bias is not None else [])
    return g.node("Conv", inputs, "conv", kernel_shape=list(k), strides=list(s), pads=[p[0], p[1], p[0], p[1]],
                  group=m.groups, dilations=list(m.dilation))


def _bn(g: _Graph, m: nn.BatchNorm2d, x: str) -> str:
    inputs = [x, g.const(m.weight, "gamma"), g.const(m.bias, "beta"), g.const(m.running_mean, "mean"),
              g.const(m.running_var, "var")]
    return g.node("BatchNormalization", inputs, "bn", epsilon=float(m.eps))


def _linear(g: _Graph, m: nn.Linear, x: str) -> str:
    inputs = [x, g.const(m.weight, "w")] + ([g.const(m.bias, "b")] if m.bias is not None else [])
    return g.node("Gemm", inputs, "fc", transB=1)


def _se(g: _Graph, m: SqueezeExcite, x: str) -> str:
    s = g.node("GlobalAveragePool", [x], "squeeze")
    s = g.node("Relu", [_conv(g, m.reduce, s)])
    s = g.node("HardSigmoid", [_conv(g, m.expand, s)], alpha=1.0 / 6.0, beta=0.5)
    return g.node("Mul", [x, s], "excite")


def _silu(g: _Graph, m: nn.Module, x: str) -> str:
    return g.node("Mul", [x, g.node("Sigmoid", [x])], "silu")


def _pool(g: _Graph, m: nn.Module, x: str) -> str:
    return g.node("Flatten", [g.node("GlobalAveragePool", [x], "pool")], axis=1)


CONVERTERS: dict[type, Converter] = {
    nn.Conv2d: _conv,
    nn.BatchNorm2d: _bn,
    nn.Linear: _linear,
    nn.ReLU: lambda g, m, x: g.node("Relu", [x]),
    nn.Hardswish: lambda g, m, x: g.node("HardSwish", [x]),
    nn.Hardsigmoid: lambda g, m, x: g.node("HardSigmoid", [x], alpha=1.0 / 6.0, beta=0.5),
    nn.SiLU: _silu,
    nn.Identity: lambda g, m, x: x,
    nn.Dropout: lambda g, m, x: x,
    GlobalAvgPool: _pool,
    SqueezeExcite: _se,
}


def _convert(g: _Graph, m: nn.Module, x: str) -> str:
    if isinstance(m, nn.Sequential):
        for child in m:
            x = _convert(g, child, x)
        return x
    if isinstance(m, Residual):
        return g.node("Add", [_convert(g, m.body, x), x], "residual")
    converter = CONVERTERS.get(type(m))
    if converter is None:
        raise NotImplementedError(type(m).__name__)
    return converter(g, m, x)


def supports(model: nn.Module) -> bool:
    """True when every module of `model` has a direct converter."""
    try:
        _convert(_Graph(), model, INPUT_NAME)
    except NotImplementedError:
        return False
    return True


def to_onnx(model: nn.Module, example_input: torch.Tensor, dynamic_batch: bool = False) -> bytes:
    """Serialized ONNX model (opset 17) computing `model` in eval mode on inputs shaped like `example_input`."""
    model = model.eval()
    shape: list[int | str] = list(example_input.shape)
    if dynamic_batch:
        shape[0] = "batch"
    graph = _Graph()
    try:
        out = _convert(graph, model, INPUT_NAME)
    except NotImplementedError:
        return _torch_export(model, example_input, dynamic_batch)
    graph.nodes.append(helper.make_node("Identity", [out], [OUTPUT_NAME], name="output"))
    with torch.no_grad():
        out_shape: list[int | str] = list(model(example_input).shape)
    if dynamic_batch:
        out_shape[0] = "batch"
    proto = helper.make_model(
        helper.make_graph(graph.nodes, "subnet",
                          [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, shape)],
                          [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, out_shape)],
                          graph.initializers),
        opset_imports=[helper.make_opsetid("", OPSET)], producer_name="nasengine")
    proto.ir_version = 8
    return proto.SerializeToString()


def _torch_export(model: nn.Module, example_input: torch.Tensor, dynamic_batch: bool) -> bytes:
    buffer = io.BytesIO()
    axes = {INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}} if dynamic_batch else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (example_input,), buffer, dynamo=False, opset_version=OPSET,
                          input_names=[INPUT_NAME], output_names=[OUTPUT_NAME], dynamic_axes=axes)
    return buffer.getvalue()
