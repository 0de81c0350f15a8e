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
from nasengine.kernels.static import GlobalAvgPool, Residual, SqueezeExcite
from nasengine.kernels.trace import split_layers

_SILENT = (nn.Identity, nn.Dropout)
_INT32_RANGE = float(2**32 - 2)  # onnxruntime's int32 bias range: max - (min + 1)
_TINY = torch.finfo(torch.float32).tiny


class ActQuant(nn.Module):
    """Per-tensor UINT8 fake quantiser: records the tensor's min/max while calibrating, then rounds to the grid
    onnxruntime's MinMax calibration derives from that range (range widened to hold 0)."""

    def __init__(self) -> None:
        super().__init__()
        self.observing = True
        self.register_buffer("low", torch.tensor(float("inf")))
        self.register_buffer("high", torch.tensor(float("-inf")))
        self.register_buffer("scale", torch.tensor(1.0))
        self.register_buffer("zero_point", torch.tensor(0, dtype=torch.int32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.observing:
            self.low.copy_(torch.minimum(self.low, x.detach().min()))
            self.high.copy_(torch.maximum(self.high, x.detach().max()))
            return x
        return torch.fake_quantize_per_tensor_affine(x, self.scale, self.zero_point, 0, 255)

    def freeze(self) -> None:
        """Fix scale and zero point from the observed range, as onnxruntime's compute_scale_zp does."""
        low, high = min(float(self.low), 0.0), max(float(self.high), 0.0)
        scale = (high - low) / 255.0
        zero_point = round(-low / scale) if scale >= _TINY else 0
        self.scale.fill_(scale if scale >= _TINY else 1.0)
        self.zero_point.fill_(zero_point)
        self.observing = False


class _Node(nn.Module):
    """A quantised ONNX node: its output is fake-quantised, unless a Relu fused after it quantises it instead."""

    def __init__(self) -> None:
        super().__init__()
        self.output_q: ActQuant | None = ActQuant()

    def emit(self, y: torch.Tensor) -> torch.Tensor:
        """The node's output as the next node sees it."""
        return self.output_q(y) if self.output_q is not None else y


class QuantOp(_Node):
    """A leaf op as one quantised node on a fake-quantised input; a Conv2d / Linear also gets per-output-channel
    symmetric INT8 weights and an int32-rounded bias when frozen."""

    def __init__(self, op: nn.Module, quant_input: bool = True) -> None:
        super().__init__()
        self.op = op
        self.input_q: ActQuant | None = ActQuant() if quant_input else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.emit(self.op(self.input_q(x) if self.input_q is not None else x))

    @torch.no_grad()
    def freeze(self) -> None:
        """Quantise the weights once, after calibration fixed the input scale (needed for the bias)."""
        if not isinstance(self.op, (nn.Conv2d, nn.Linear)):
            return
        w = self.op.weight
        absmax = w.detach().abs().reshape(w.shape[0], -1).amax(dim=1).double()
        scale = absmax * 2.0 / 254.0
        scale = torch.where(scale.float() < _TINY, torch.ones_like(scale), scale)
        assert self.input_q is not None, "a weighted op quantises its own input"
        bias, in_scale = self.op.bias, float(self.input_q.scale)
        if bias is not None:  # onnxruntime widens a weight scale whose bias would overflow int32
            needed = 1.0001 * 2.0 * bias.detach().abs().double() / _INT32_RANGE
            scale = torch.where(in_scale * scale < needed, needed / in_scale, scale)
        scale = scale.float().reshape(-1, *([1] * (w.dim() - 1)))
        w.copy_(torch.round(w / scale).clamp(-127, 127) * scale)
        if bias is not None:
            bias_scale = torch.tensor(in_scale, dtype=torch.float32) * scale.flatten()
            q = torch.round(bias.double() / bias_scale.double()).clamp(-(2.0**31), 2.0**31 - 1)
            bias.copy_(q.float() * bias_scale)


class QuantResidual(_Node):
    """Residual as an ONNX Add: both addends and the sum fake-quantised."""

    def __init__(self, body: nn.Module) -> None:
        super().__init__()
        self.body, self.body_q, self.skip_q = body, ActQuant(), ActQuant()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.emit(self.body_q(self.body(x)) + self.skip_q(x))


class QuantSqueezeExcite(_Node):
    """SqueezeExcite as its ONNX nodes: quantised pool, reduce conv + Relu, expand conv and gating Mul; the
    Hardsigmoid between them stays FP32."""

    def __init__(self, se: SqueezeExcite) -> None:
        super().__init__()
        self.x_q, self.gate_q = ActQuant(), ActQuant()
        self.body = _fuse_relus(nn.Sequential(QuantOp(se.reduce), QuantOp(se.act, False), QuantOp(se.expand), se.gate))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.x_q(x)
        return self.emit(x * self.gate_q(self.body(x.mean((2, 3), keepdim=True))))


class QuantSiLU(_Node):
    """SiLU as its ONNX Sigmoid and Mul nodes: the input, the sigmoid and the product fake-quantised."""

    def __init__(self) -> None:
        super().__init__()
        self.input_q, self.sigmoid_q = ActQuant(), ActQuant()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.input_q(x)
        return self.emit(x * self.sigmoid_q(torch.sigmoid(x)))


def _fuse_relus(seq: nn.Sequential) -> nn.Sequential:
    """onnxruntime drops a Relu that follows a quantised node and gives that node's output the Relu's range."""
    kept = [m for m in seq.children() if not isinstance(m, _SILENT)]
    for prev, cur in zip(kept, kept[1:]):
        if isinstance(cur, QuantOp) and isinstance(cur.op, nn.ReLU) and isinstance(prev, _Node):
            prev.output_q = None
    return seq


def _quantized(m: nn.Module) -> nn.Module:
    """`m` with every node onnxruntime would quantise wrapped to simulate it (recursing through containers)."""
    if isinstance(m, nn.Sequential):
        for name, child in list(m.named_children()):
            setattr(m, name, _quantized(child))
        return _fuse_relus(m)
    if isinstance(m, Residual):
        return QuantResidual(_quantized(m.body))
    if isinstance(m, SqueezeExcite):
        return QuantSqueezeExcite(m)
    if isinstance(m, (nn.Conv2d, nn.Linear, nn.BatchNorm2d, GlobalAvgPool)):
        return QuantOp(m)
    if isinstance(m, nn.ReLU):  # its input is the node before it, whose output the Relu's range replaces
        return QuantOp(m, quant_input=False)
    if isinstance(m, nn.SiLU):
        return QuantSiLU()
    for name, child in list(m.named_children()):  # an unknown container: its quantisable leaves still are
        setattr(m, name, _quantized(child))
    return m


def quantizable_paths(module: nn.Module) -> list[str]:
    """split_layers paths of the layers holding a Conv2d or Linear (those a precision policy chooses for)."""
    return [path for path, layer in split_layers(module)
            if any(isinstance(m, (nn.Conv2d, nn.Linear)) for m in layer.modules())]


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
