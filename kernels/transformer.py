"""Transformer building blocks, static and elastic: patch embedding, self-attention, LayerNorm, MLP, encoder layers.

Static modules (`SelfAttention`, `EncoderLayer`) are what exported transformer subnets are made of; they join the
static vocabulary so exports reload without supernet code. Elastic ones hold the largest weights and run the
first-k slice (first heads, first channels of each head, first embedding channels, first hidden units), as in
HAT and Once-for-All's weight entanglement, and `export()` the active slice as a static module.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from nasengine.kernels.activations import activation as make_activation
from nasengine.kernels.describe import OpSpec, shape_channels, shape_tokens
from nasengine.kernels.ops import ElasticLinear
from nasengine.kernels.quant_nodes import quantize_children
from nasengine.kernels.static import register_static

def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int, head_dim: int,
           mask: torch.Tensor | None = None) -> torch.Tensor:
    """Scaled dot-product attention of (B, T, heads*head_dim) projections; `mask` (B, T) is 1 for real tokens."""
    b, t, _ = q.shape
    q, k, v = (z.reshape(b, t, heads, head_dim).transpose(1, 2) for z in (q, k, v))
    scores = q @ k.transpose(-2, -1) / math.sqrt(head_dim)
    if mask is not None:
        scores = scores + (1.0 - mask[:, None, None, :].to(scores.dtype)) * torch.finfo(scores.dtype).min
    out = torch.softmax(scores, dim=-1) @ v
    return out.transpose(1, 2).reshape(b, t, heads * head_dim)


def encoder_residuals(x: torch.Tensor, mask: torch.Tensor | None, attn: Callable[..., torch.Tensor],
                      mlp: Callable[[torch.Tensor], torch.Tensor], ln1: Callable[[torch.Tensor], torch.Tensor],
                      ln2: Callable[[torch.Tensor], torch.Tensor], norm_first: bool) -> torch.Tensor:
    """The two residual sub-blocks of an encoder layer: pre-norm (ViT) or post-norm (BERT)."""
    if norm_first:
        x = x + attn(ln1(x), mask)
        return x + mlp(ln2(x))
    x = ln1(x + attn(x, mask))
    return ln2(x + mlp(x))


class PatchEmbedding(nn.Module):
    """Non-overlapping patches -> tokens, a class token in front, learned positions added: (B, 1 + N, dim)."""

    def __init__(self, in_channels: int, dim: int, patch: int, tokens: int):
        super().__init__()
        self.proj = nn.Conv2d(in_channels, dim, patch, stride=patch)
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos = nn.Parameter(torch.zeros(1, tokens + 1, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.proj(x).flatten(2).transpose(1, 2)
        return torch.cat([self.cls.expand(x.shape[0], -1, -1), x], dim=1) + self.pos


class ClassToken(nn.Module):
    """The class token's features: (B, T, dim) -> (B, dim)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, 0]


class SelfAttention(nn.Module):
    """Multi-head self-attention with separate q/k/v/out projections (static export of ElasticSelfAttention)."""

    def __init__(self, embed_dim: int, heads: int, head_dim: int):
        super().__init__()
        self.embed_dim, self.heads, self.head_dim = embed_dim, heads, head_dim
        inner = heads * head_dim
        self.query, self.key, self.value = (nn.Linear(embed_dim, inner) for _ in range(3))
        self.out = nn.Linear(inner, embed_dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.out(attend(self.query(x), self.key(x), self.value(x), self.heads, self.head_dim, mask))


class EncoderLayer(nn.Module):
    """Attention and MLP sub-blocks with residuals; `norm_first` (ViT) or post-norm (BERT)."""

    def __init__(self, embed_dim: int, heads: int, head_dim: int, hidden: int, norm_first: bool = True,
                 activation: str = "gelu", eps: float = 1e-6):
        super().__init__()
        self.norm_first, self.activation = norm_first, activation
        self.attn = SelfAttention(embed_dim, heads, head_dim)
        self.ln1, self.ln2 = nn.LayerNorm(embed_dim, eps=eps), nn.LayerNorm(embed_dim, eps=eps)
        self.mlp = nn.Sequential(nn.Linear(embed_dim, hidden), make_activation(activation),
                                 nn.Linear(hidden, embed_dim))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return encoder_residuals(x, mask, self.attn, self.mlp, self.ln1, self.ln2, self.norm_first)


class ElasticLayerNorm(nn.LayerNorm):
    """LayerNorm over the first-k channels (affine weights sliced alike)."""

    def __init__(self, max_dim: int, eps: float = 1e-6):
        super().__init__(max_dim, eps=eps)
        self.active_dim = max_dim

    def set_active(self, dim: int) -> None:
        if not 0 < dim <= self.normalized_shape[0]:
            raise ValueError(f"{dim} channels exceed {self.normalized_shape[0]}")
        self.active_dim = int(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d = self.active_dim
        return F.layer_norm(x, (d,), self.weight[:d], self.bias[:d], self.eps)

    @torch.no_grad()
    def export(self) -> nn.LayerNorm:
        ln = nn.LayerNorm(self.active_dim, eps=self.eps)
        ln.weight.copy_(self.weight[: self.active_dim])
        ln.bias.copy_(self.bias[: self.active_dim])
        return ln


class ElasticSelfAttention(nn.Module):
    """Self-attention over the first `heads` heads, first `head_dim` channels of each and first `embed_dim` inputs."""

    def __init__(self, max_embed: int, max_heads: int, max_head_dim: int):
        super().__init__()
        self.max_embed, self.max_heads, self.max_head_dim = max_embed, max_heads, max_head_dim
        inner = max_heads * max_head_dim
        self.query, self.key, self.value = (ElasticLinear(max_embed, inner) for _ in range(3))
        self.out = ElasticLinear(inner, max_embed)
        for lin in (self.query, self.key, self.value, self.out):
            nn.init.xavier_uniform_(lin.weight)
        self.set_active(max_embed, max_heads, max_head_dim)

    def set_active(self, embed_dim: int, heads: int, head_dim: int) -> None:
        if not (0 < heads <= self.max_heads and 0 < head_dim <= self.max_head_dim and 0 < embed_dim <= self.max_embed):
            raise ValueError(f"attention {heads}x{head_dim} over {embed_dim} exceeds "
                             f"{self.max_heads}x{self.max_head_dim} over {self.max_embed}")
        self.embed_dim, self.heads, self.head_dim = int(embed_dim), int(heads), int(head_dim)
        device = self.out.weight.device
        rows = (torch.arange(heads, device=device)[:, None] * self.max_head_dim
                + torch.arange(head_dim, device=device)[None, :])
        self._rows = rows.reshape(-1)  # an attribute, not a buffer: evaluation snapshots restore it by reference

    def _project(self, lin: ElasticLinear, x: torch.Tensor) -> torch.Tensor:
        weight = lin.weight.index_select(0, self._rows)[:, : self.embed_dim]
        return F.linear(x, weight, lin.bias.index_select(0, self._rows))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        q, k, v = (self._project(lin, x) for lin in (self.query, self.key, self.value))
        out = attend(q, k, v, self.heads, self.head_dim, mask)
        weight = self.out.weight[: self.embed_dim].index_select(1, self._rows)
        return F.linear(out, weight, self.out.bias[: self.embed_dim])

    @torch.no_grad()
    def export(self) -> SelfAttention:
        attn = SelfAttention(self.embed_dim, self.heads, self.head_dim)
        for name in ("query", "key", "value"):
            src, dst = getattr(self, name), getattr(attn, name)
            dst.weight.copy_(src.weight.index_select(0, self._rows)[:, : self.embed_dim])
            dst.bias.copy_(src.bias.index_select(0, self._rows))
        attn.out.weight.copy_(self.out.weight[: self.embed_dim].index_select(1, self._rows))
        attn.out.bias.copy_(self.out.bias[: self.embed_dim])
        return attn


class ElasticEncoderLayer(nn.Module):
    """An encoder layer with elastic embedding dim, heads, head dim and MLP hidden size."""

    def __init__(self, max_embed: int, max_heads: int, max_head_dim: int, max_hidden: int, norm_first: bool = True,
                 activation: str = "gelu", eps: float = 1e-6):
        super().__init__()
        self.norm_first, self.activation, self.eps = norm_first, activation, eps
        self.attn = ElasticSelfAttention(max_embed, max_heads, max_head_dim)
        self.ln1, self.ln2 = ElasticLayerNorm(max_embed, eps), ElasticLayerNorm(max_embed, eps)
        self.fc1, self.fc2 = ElasticLinear(max_embed, max_hidden), ElasticLinear(max_hidden, max_embed)
        nn.init.xavier_uniform_(self.fc1.weight)
        nn.init.xavier_uniform_(self.fc2.weight)
        self.act = make_activation(activation)
        self.hidden = max_hidden

    def set_active(self, embed_dim: int, heads: int, head_dim: int, hidden: int) -> None:
        self.attn.set_active(embed_dim, heads, head_dim)
        self.ln1.set_active(embed_dim)
        self.ln2.set_active(embed_dim)
        self.fc1.set_active(embed_dim, hidden)
        self.fc2.set_active(hidden, embed_dim)
        self.hidden = hidden

    def _mlp(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return encoder_residuals(x, mask, self.attn, self._mlp, self.ln1, self.ln2, self.norm_first)

    @torch.no_grad()
    def export(self) -> EncoderLayer:
        a = self.attn
        layer = EncoderLayer(a.embed_dim, a.heads, a.head_dim, self.hidden, self.norm_first, self.activation, self.eps)
        layer.attn = a.export()
        layer.ln1, layer.ln2 = self.ln1.export(), self.ln2.export()
        layer.mlp[0], layer.mlp[2] = self.fc1.export(), self.fc2.export()
        return layer.eval()


def _describe_attention(m: SelfAttention, x: torch.Size, y: torch.Size) -> OpSpec:
    """The score products q.k^T and scores.v (the projections are its Linear children)."""
    return OpSpec("attention", shape_channels(y), shape_channels(y),
                  extra=(*shape_tokens(y), ("heads", int(m.heads)), ("head_dim", int(m.head_dim))))


register_static("SelfAttention", SelfAttention, lambda m: {"embed_dim": m.embed_dim, "heads": m.heads,
                                                           "head_dim": m.head_dim}, short="attn",
                describe=_describe_attention, quantize=quantize_children)
register_static("EncoderLayer", EncoderLayer, lambda m: {
    "embed_dim": m.attn.embed_dim, "heads": m.attn.heads, "head_dim": m.attn.head_dim,
    "hidden": m.mlp[0].out_features, "norm_first": m.norm_first, "activation": m.activation, "eps": m.ln1.eps})
register_static("PatchEmbedding", PatchEmbedding, lambda m: {
    "in_channels": m.proj.in_channels, "dim": m.proj.out_channels, "patch": m.proj.kernel_size[0],
    "tokens": m.pos.shape[1] - 1}, quantize=quantize_children)  # its own class token and positions stay FP32
register_static("ClassToken", ClassToken, lambda m: {})
