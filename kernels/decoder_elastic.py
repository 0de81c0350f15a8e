"""Elastic LLaMA-style decoder layers: the first-k key/value groups (with their query heads) and the first-k SwiGLU
channels of the largest weights, exported as the static modules of `nasengine.kernels.decoder`.

Slices are contiguous first-k blocks (MatFormer, Sorted LLaMA): importance ordering, done once on the pretrained
weights, puts the most important groups and channels first, so every slice keeps them.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from nasengine.kernels.decoder import KV, DecoderAttention, DecoderLayer, RMSNorm, Rotary, SwiGLU, grouped_attention
from nasengine.kernels.ops import ElasticLinear


def _empty(cls: type[nn.Module], device: torch.device, *args: Any) -> Any:
    """`cls(*args)` with uninitialised tensors on `device`: exports copy every weight, so random init is wasted."""
    with torch.device("meta"):
        module = cls(*args)
    return module.to_empty(device=device)


def _linear(max_in: int, max_out: int) -> ElasticLinear:
    lin = ElasticLinear(max_in, max_out, bias=False)
    nn.init.normal_(lin.weight, std=0.02)  # transformers' LLaMA initializer_range
    return lin


class ElasticDecoderAttention(nn.Module):
    """Grouped-query attention over the first `kv` key/value groups: their key/value heads and the
    heads / kv_heads query heads of each (query head h reads group h // (heads / kv_heads))."""

    def __init__(self, dim: int, heads: int, kv_heads: int, head_dim: int, rope_theta: float = 10000.0):
        super().__init__()
        if heads % kv_heads:
            raise ValueError(f"{heads} query heads are not a multiple of {kv_heads} key/value heads")
        self.dim, self.max_heads, self.max_kv, self.head_dim = dim, heads, kv_heads, head_dim
        self.group, self.rope_theta = heads // kv_heads, rope_theta
        self.q, self.k = _linear(dim, heads * head_dim), _linear(dim, kv_heads * head_dim)
        self.v, self.o = _linear(dim, kv_heads * head_dim), _linear(heads * head_dim, dim)
        self.set_active(kv_heads)

    def set_active(self, kv: int) -> None:
        if not 0 < kv <= self.max_kv:
            raise ValueError(f"{kv} key/value groups exceed {self.max_kv}")
        self.kv_heads, self.heads = int(kv), int(kv) * self.group
        self.q.set_active(self.dim, self.heads * self.head_dim)
        self.k.set_active(self.dim, self.kv_heads * self.head_dim)
        self.v.set_active(self.dim, self.kv_heads * self.head_dim)
        self.o.set_active(self.heads * self.head_dim, self.dim)

    def forward(self, x: torch.Tensor, past: KV | None = None, position: int | None = None,
                mask: torch.Tensor | None = None) -> tuple[torch.Tensor, KV]:
        out, present = grouped_attention(self.q(x), self.k(x), self.v(x), self.kv_heads,
                                         Rotary(self.head_dim, self.rope_theta), past, position, mask)
        return self.o(out), present

    @torch.no_grad()
    def export(self) -> DecoderAttention:
        attn = _empty(DecoderAttention, self.o.weight.device, self.dim, self.heads, self.kv_heads, self.head_dim,
                      self.rope_theta)
        for name in ("q", "k", "v", "o"):
            getattr(attn, name).weight.copy_(getattr(self, name).export().weight)
        return attn


class ElasticSwiGLU(nn.Module):
    """SwiGLU over the first `hidden` channels (rows of gate and up, columns of down)."""

    def __init__(self, dim: int, max_hidden: int):
        super().__init__()
        self.dim, self.max_hidden = dim, max_hidden
        self.gate, self.up, self.down = _linear(dim, max_hidden), _linear(dim, max_hidden), _linear(max_hidden, dim)
        self.act = nn.SiLU()
        self.set_active(max_hidden)

    def set_active(self, hidden: int) -> None:
        if not 0 < hidden <= self.max_hidden:
            raise ValueError(f"{hidden} MLP channels exceed {self.max_hidden}")
        self.hidden = int(hidden)
        self.gate.set_active(self.dim, self.hidden)
        self.up.set_active(self.dim, self.hidden)
        self.down.set_active(self.hidden, self.dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(F.silu(self.gate(x)) * self.up(x))

    @torch.no_grad()
    def export(self) -> SwiGLU:
        mlp = _empty(SwiGLU, self.down.weight.device, self.dim, self.hidden)
        for name in ("gate", "up", "down"):
            getattr(mlp, name).weight.copy_(getattr(self, name).export().weight)
        return mlp


class ElasticDecoderLayer(nn.Module):
    """A pre-norm decoder layer with elastic key/value groups and MLP channels (the hidden size is fixed)."""

    def __init__(self, dim: int, heads: int, kv_heads: int, head_dim: int, hidden: int, eps: float = 1e-6,
                 rope_theta: float = 10000.0):
        super().__init__()
        self.norm1, self.norm2 = RMSNorm(dim, eps), RMSNorm(dim, eps)
        self.attn = ElasticDecoderAttention(dim, heads, kv_heads, head_dim, rope_theta)
        self.mlp = ElasticSwiGLU(dim, hidden)

    def set_active(self, kv: int, hidden: int) -> None:
        self.attn.set_active(kv)
        self.mlp.set_active(hidden)

    def forward(self, x: torch.Tensor, past: KV | None = None, position: int | None = None,
                mask: torch.Tensor | None = None) -> tuple[torch.Tensor, KV]:
        h, present = self.attn(self.norm1(x), past, position, mask)
        x = x + h
        return x + self.mlp(self.norm2(x)), present

    @torch.no_grad()
    def export(self) -> DecoderLayer:
        a = self.attn
        layer = _empty(DecoderLayer, self.norm1.weight.device, a.dim, a.heads, a.kv_heads, a.head_dim,
                       self.mlp.hidden, self.norm1.eps, a.rope_theta)
        layer.attn, layer.mlp = a.export(), self.mlp.export()
        layer.norm1.weight.copy_(self.norm1.weight)
        layer.norm2.weight.copy_(self.norm2.weight)
        return layer.eval()
