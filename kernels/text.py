"""Text encoders, static and elastic: token embeddings, a BERT-style classifier over encoder layers.

`TextClassifier` is what an exported text subnet is: token ids and an attention mask in, logits out, built
from the static vocabulary (it lists its layers with `named_layers()`, so op descriptions, per-layer latency
tables and quantization policies see embeddings, each encoder layer, the pooler and the classifier).
`ElasticTokenEmbedding` holds the largest embedding tables and runs their first-k channels.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from nasengine.kernels.quant_nodes import quantize_children
from nasengine.kernels.static import register_static
from nasengine.kernels.transformer import ElasticLayerNorm, EncoderLayer


class TokenEmbedding(nn.Module):
    """Word + learned position + segment-0 embeddings, then LayerNorm: token ids (B, T) -> (B, T, dim).

    Single-text tasks use one segment, so the segment table is folded into one learned vector."""

    def __init__(self, vocab_size: int, dim: int, max_positions: int, eps: float = 1e-12):
        super().__init__()
        self.word = nn.Embedding(vocab_size, dim)
        self.position = nn.Embedding(max_positions, dim)
        self.segment = nn.Parameter(torch.zeros(dim))
        self.norm = nn.LayerNorm(dim, eps=eps)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        positions = self.position(torch.arange(input_ids.shape[1], device=input_ids.device))
        return self.norm(self.word(input_ids) + positions[None] + self.segment)


class Pooler(nn.Module):
    """BERT's pooler: the first token's features through a dense layer and tanh, (B, T, dim) -> (B, dim)."""

    def __init__(self, dim: int):
        super().__init__()
        self.dense = nn.Linear(dim, dim)
        self.act = nn.Tanh()

    def forward(self, x: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.act(self.dense(x[:, 0]))


def masked_mean(x: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
    """The mean of the real tokens' features, (B, T, dim) -> (B, dim); without a mask every position counts."""
    if attention_mask is None:
        return x.mean(1)
    weight = attention_mask.to(x.dtype).unsqueeze(-1)
    return (x * weight).sum(1) / weight.sum(1).clamp(min=1.0)


class MeanPooler(nn.Module):
    """`masked_mean` as a layer: the pooling sentence-embedding checkpoints (such as all-MiniLM-L6-v2) were
    trained with."""

    def forward(self, x: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        return masked_mean(x, attention_mask)


POOLINGS = ("cls", "mean")


def check_pooling(pooling: str) -> str:
    """`pooling` if it is `cls` (BERT's pooler over the first token) or `mean` (masked mean); ValueError otherwise."""
    if pooling not in POOLINGS:
        raise ValueError(f"unknown pooling {pooling!r}; choose from {', '.join(POOLINGS)}")
    return pooling


def make_pooler(pooling: str, dim: int) -> nn.Module:
    """The static pooler for `pooling` (see `check_pooling`)."""
    return Pooler(dim) if check_pooling(pooling) == "cls" else MeanPooler()


class TextClassifier(nn.Module):
    """Post-norm encoder layers over token embeddings, a pooler (`cls` or `mean`, see `make_pooler`), linear classifier.

    `forward(input_ids, attention_mask)`; `layers` holds each encoder layer's heads, head_dim and hidden size."""

    def __init__(self, vocab_size: int, dim: int, max_positions: int, layers: Sequence[dict[str, int]],
                 num_classes: int, eps: float = 1e-12, activation: str = "gelu_erf", pooling: str = "cls"):
        super().__init__()
        self.vocab_size, self.max_positions, self.eps, self.activation = vocab_size, max_positions, eps, activation
        self.pooling = pooling
        self.embed = TokenEmbedding(vocab_size, dim, max_positions, eps)
        self.layers = nn.Sequential(OrderedDict(
            (f"l{i}", EncoderLayer(dim, int(c["heads"]), int(c["head_dim"]), int(c["hidden"]), norm_first=False,
                                   activation=activation, eps=eps)) for i, c in enumerate(layers)))
        self.pool = make_pooler(pooling, dim)
        self.classifier = nn.Linear(dim, num_classes)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        x = self.embed(input_ids)
        for layer in self.layers:
            x = layer(x, attention_mask)
        return self.classifier(self.pool(x, attention_mask))

    def named_layers(self) -> Iterator[tuple[str, nn.Module]]:
        yield "embed", self.embed
        for name, layer in self.layers.named_children():
            yield f"layers.{name}", layer
        yield "pool", self.pool
        yield "classifier", self.classifier

    def layer_configs(self) -> list[dict[str, int]]:
        return [{"heads": m.attn.heads, "head_dim": m.attn.head_dim, "hidden": m.mlp[0].out_features}
                for m in self.layers]


class ElasticTokenEmbedding(nn.Module):
    """TokenEmbedding over the first `dim` channels of the largest tables."""

    def __init__(self, vocab_size: int, max_dim: int, max_positions: int, eps: float = 1e-12):
        super().__init__()
        self.word = nn.Embedding(vocab_size, max_dim)
        self.position = nn.Embedding(max_positions, max_dim)
        self.segment = nn.Parameter(torch.zeros(max_dim))
        self.norm = ElasticLayerNorm(max_dim, eps)
        self.active_dim = max_dim

    def set_active(self, dim: int) -> None:
        self.norm.set_active(dim)
        self.active_dim = int(dim)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        d = self.active_dim
        x = F.embedding(input_ids, self.word.weight[:, :d])
        x = x + self.position.weight[: input_ids.shape[1], :d][None] + self.segment[:d]
        return self.norm(x)

    @torch.no_grad()
    def export(self) -> TokenEmbedding:
        d = self.active_dim
        out = TokenEmbedding(self.word.num_embeddings, d, self.position.num_embeddings, self.norm.eps)
        out.word.weight.copy_(self.word.weight[:, :d])
        out.position.weight.copy_(self.position.weight[:, :d])
        out.segment.copy_(self.segment[:d])
        out.norm = self.norm.export()
        return out


def _classifier_spec(m: TextClassifier) -> dict[str, Any]:
    return {"vocab_size": m.vocab_size, "dim": m.embed.word.embedding_dim, "max_positions": m.max_positions,
            "layers": m.layer_configs(), "num_classes": m.classifier.out_features, "eps": m.eps,
            "activation": m.activation, "pooling": m.pooling}


register_static("TokenEmbedding", TokenEmbedding, lambda m: {
    "vocab_size": m.word.num_embeddings, "dim": m.word.embedding_dim, "max_positions": m.position.num_embeddings,
    "eps": m.norm.eps}, quantize=quantize_children)  # its own segment vector stays FP32
register_static("Pooler", Pooler, lambda m: {"dim": m.dense.in_features})
register_static("MeanPooler", MeanPooler, lambda m: {}, short="mean_pool")
register_static("TextClassifier", TextClassifier, _classifier_spec)
