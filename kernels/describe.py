"""Active ops described as data: the same description counts MACs/params and keys per-op latency tables."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Iterable, Sequence


@dataclass(frozen=True)
class OpSpec:
    """One static op as it runs: kind, channel counts, kernel, stride, groups and spatial sizes.

    `params` counts learnable parameters (running BN statistics excluded, as torch does); `macs`
    counts multiply-accumulates at batch 1.
    """

    kind: str
    in_channels: int
    out_channels: int
    in_hw: tuple[int, int] = (1, 1)
    out_hw: tuple[int, int] = (1, 1)
    kernel: int = 1
    stride: int = 1
    groups: int = 1
    bias: bool = False
    extra: tuple[tuple[str, Any], ...] = ()

    def _extra(self, key: str, default: int = 1) -> int:
        return int(dict(self.extra).get(key, default))

    @property
    def params(self) -> int:
        if self.kind == "free_parameters":  # tensors a module holds itself (a class token, positions)
            return self._extra("count", 0)
        if self.kind == "layernorm":
            return 2 * self.out_channels
        if self.kind == "rmsnorm":  # a scale, no shift
            return self.out_channels
        if self.kind == "conv2d":
            weights = self.out_channels * (self.in_channels // self.groups) * self.kernel * self.kernel
            return weights + (self.out_channels if self.bias else 0)
        if self.kind == "linear":
            return self.out_channels * self.in_channels + (self.out_channels if self.bias else 0)
        if self.kind == "batchnorm2d":
            return 2 * self.out_channels
        if self.kind == "embedding":  # a table of in_channels rows of out_channels
            return self.in_channels * self.out_channels
        return 0

    @property
    def macs(self) -> int:
        if self.kind == "conv2d":
            per_pixel = self.out_channels * (self.in_channels // self.groups) * self.kernel * self.kernel
            return per_pixel * self.out_hw[0] * self.out_hw[1]
        if self.kind == "linear":  # once per token of a sequence
            return self.out_channels * self.in_channels * self._extra("tokens")
        if self.kind == "attention":  # q.k^T and attention.v: each of `tokens` queries against every key (and a cache)
            t = self._extra("tokens")
            return 2 * self._extra("heads") * t * (t + self._extra("cache", 0)) * self._extra("head_dim")
        return 0

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["extra"] = dict(self.extra)
        return data


@dataclass(frozen=True)
class LayerSpec:
    """A named group of ops that runs as one unit (a block); `signature` ignores the name."""

    name: str
    kind: str
    ops: tuple[OpSpec, ...] = field(default_factory=tuple)

    @property
    def signature(self) -> tuple[Any, ...]:
        return (self.kind,) + self.ops

    @property
    def params(self) -> int:
        return sum(op.params for op in self.ops)

    @property
    def macs(self) -> int:
        return sum(op.macs for op in self.ops)


def shape_hw(shape: Sequence[int]) -> tuple[int, int]:
    """Spatial size of an image batch (B, C, H, W); (1, 1) for sequences and features."""
    return (int(shape[-2]), int(shape[-1])) if len(shape) == 4 else (1, 1)


def shape_channels(shape: Sequence[int]) -> int:
    """Channels of an image batch (B, C, H, W), of a sequence batch (B, T, C) or of features (B, C)."""
    if len(shape) == 3:
        return int(shape[-1])
    return int(shape[1]) if len(shape) >= 2 else 1


def shape_tokens(shape: Sequence[int]) -> tuple[tuple[str, Any], ...]:
    """`(("tokens", T),)` for a sequence batch (B, T, C); nothing for images and features."""
    return (("tokens", int(shape[1])),) if len(shape) == 3 else ()


def conv_out_hw(hw: tuple[int, int], kernel: int, stride: int) -> tuple[int, int]:
    """Output size of a 'same'-padded convolution (padding kernel // 2)."""
    pad = kernel // 2
    return tuple((s + 2 * pad - kernel) // stride + 1 for s in hw)  # type: ignore[return-value]


def total_params(layers: Iterable[LayerSpec]) -> int:
    return sum(layer.params for layer in layers)


def total_macs(layers: Iterable[LayerSpec]) -> int:
    return sum(layer.macs for layer in layers)


DESCRIPTORS = ("macs", "params", "activations", "ops", "layers", "dense_conv_macs", "pointwise_macs",
               "grouped_conv_macs", "attention_macs", "dense_convs", "pointwise_ops", "grouped_convs",
               "elementwise_ops")


def _out_elements(op: OpSpec) -> int:
    """Elements an op writes at batch 1 (channels x pixels x tokens)."""
    return op.out_channels * op.out_hw[0] * op.out_hw[1] * op._extra("tokens")


def cost_descriptors(layers: Iterable[LayerSpec]) -> dict[str, float]:
    """Hardware-agnostic costs of a subnet from its op descriptions, the same for any family: total MACs, params
    and written activations, op and layer counts, and MACs and op counts per kind of compute (dense, pointwise,
    grouped/depthwise convolution, attention). Devices differ in which of these dominate their latency (a
    batch-1 GPU pays per op launched, a phone per MAC), so a few measurements suffice to weigh them."""
    d = dict.fromkeys(DESCRIPTORS, 0.0)
    for layer in layers:
        d["layers"] += 1.0 if any(op.kind != "free_parameters" for op in layer.ops) else 0.0
        for op in layer.ops:
            if op.kind == "free_parameters":
                d["params"] += op.params
                continue
            d["macs"] += op.macs
            d["params"] += op.params
            d["activations"] += _out_elements(op)
            d["ops"] += 1.0
            if op.kind == "conv2d" and op.groups > 1:
                d["grouped_conv_macs"] += op.macs
                d["grouped_convs"] += 1.0
            elif op.kind == "linear" or (op.kind == "conv2d" and op.kernel == 1):
                d["pointwise_macs"] += op.macs
                d["pointwise_ops"] += 1.0
            elif op.kind == "conv2d":
                d["dense_conv_macs"] += op.macs
                d["dense_convs"] += 1.0
            elif op.kind == "attention":
                d["attention_macs"] += op.macs
            else:
                d["elementwise_ops"] += 1.0
    return d
