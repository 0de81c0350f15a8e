"""How each static op runs under onnxruntime's static QDQ INT8 quantizer, simulated in torch: the wrappers and the
quantization rules that static ops name in their registration (`register_static(..., quantize=RULE)`).

A rule is `rule(module, recurse) -> module`: the module as the quantized graph computes it, where `recurse` applies
the rules to a child. The built-in rules: `quantize_node` (one node onnxruntime quantizes: its input and output on
the UINT8 grid, a weight of 2+ dimensions per output channel on the symmetric INT8 grid, its bias int32),
`fused_relu` (a Relu that onnxruntime folds into the node before it), `keep_float` (an op that stays FP32 between
quantized nodes: Hardswish, LayerNorm, a class token), `passthrough` (nothing at inference: Identity, Dropout),
`quantize_children` (a container: its children by their own rules), `residual`, `squeeze_excite` and `silu`
(composites written as several ONNX nodes).
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

QuantRule = Callable[[nn.Module, Callable[[nn.Module], nn.Module]], nn.Module]

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
    """A leaf op as one quantised node on a fake-quantised input; a weight of two or more dimensions (conv, linear)
    is quantised per output channel, symmetric INT8, and its bias int32-rounded when frozen."""

    def __init__(self, op: nn.Module, quant_input: bool = True) -> None:
        super().__init__()
        self.op = op
        self.input_q: ActQuant | None = ActQuant() if quant_input else None

    @property
    def fuses_into_previous(self) -> bool:
        """A Relu onnxruntime folds into the node before it (its input is that node's output, not re-quantised)."""
        return self.input_q is None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.emit(self.op(self.input_q(x) if self.input_q is not None else x))

    @torch.no_grad()
    def freeze(self) -> None:
        """Quantise the weights once, after calibration fixed the input scale (needed for the bias)."""
        w = getattr(self.op, "weight", None)
        if not isinstance(w, torch.Tensor) or w.dim() < 2:
            return
        absmax = w.detach().abs().reshape(w.shape[0], -1).amax(dim=1).double()
        scale = absmax * 2.0 / 254.0
        scale = torch.where(scale.float() < _TINY, torch.ones_like(scale), scale)
        assert self.input_q is not None, "a weighted op quantises its own input"
        bias, in_scale = getattr(self.op, "bias", None), float(self.input_q.scale)
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
    """SqueezeExcite (`reduce`, `act`, `expand`, `gate` children) as its ONNX nodes: quantised pool, reduce conv +
    Relu, expand conv and gating Mul; the Hardsigmoid between them stays FP32."""

    def __init__(self, se: nn.Module) -> None:
        super().__init__()
        self.x_q, self.gate_q = ActQuant(), ActQuant()
        self.body = fuse_relus(nn.Sequential(QuantOp(se.reduce), QuantOp(se.act, False), QuantOp(se.expand), se.gate))

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


def fuse_relus(seq: nn.Sequential, silent: Callable[[nn.Module], bool] = lambda m: False) -> nn.Sequential:
    """onnxruntime drops a Relu that follows a quantised node and gives that node's output the Relu's range;
    `silent(m)` says which children compute nothing at inference (skipped when looking for that node)."""
    kept = [m for m in seq.children() if not silent(m)]
    for prev, cur in zip(kept, kept[1:]):
        if isinstance(cur, QuantOp) and cur.fuses_into_previous and isinstance(prev, _Node):
            prev.output_q = None
    return seq


# ---- rules ------------------------------------------------------------------------------------------------------
def quantize_node(module: nn.Module, recurse: Callable[[nn.Module], nn.Module]) -> nn.Module:
    return QuantOp(module)


def fused_relu(module: nn.Module, recurse: Callable[[nn.Module], nn.Module]) -> nn.Module:
    return QuantOp(module, quant_input=False)


def keep_float(module: nn.Module, recurse: Callable[[nn.Module], nn.Module]) -> nn.Module:
    return module


def passthrough(module: nn.Module, recurse: Callable[[nn.Module], nn.Module]) -> nn.Module:
    return module


def quantize_children(module: nn.Module, recurse: Callable[[nn.Module], nn.Module]) -> nn.Module:
    for name, child in list(module.named_children()):
        setattr(module, name, recurse(child))
    return module


def residual(module: nn.Module, recurse: Callable[[nn.Module], nn.Module]) -> nn.Module:
    return QuantResidual(recurse(module.body))  # type: ignore[arg-type]


def squeeze_excite(module: nn.Module, recurse: Callable[[nn.Module], nn.Module]) -> nn.Module:
    return QuantSqueezeExcite(module)


def silu(module: nn.Module, recurse: Callable[[nn.Module], nn.Module]) -> nn.Module:
    return QuantSiLU()


def quantizes_weights(rule: QuantRule | None) -> bool:
    """Whether a rule puts a module's own weights on the INT8 grid (what a precision policy chooses for)."""
    return rule is quantize_node
