"""Decoder-only (LLaMA-style) transformer modules, static: RMSNorm, rotary positions, grouped-query causal attention
with a KV cache, SwiGLU, pre-norm decoder layers, a causal language model and one KV-cached decode step.

They compute what transformers' LlamaForCausalLM computes (rotate-half rotary embedding, repeated KV heads, RMSNorm in
float32) and join the static vocabulary, so exported decoder subnets reload without supernet code. `CausalLM` lists
its layers (`named_layers`) so op descriptions and per-layer latency tables see the embedding, each decoder layer, the
final norm and the LM head; `DecodeStep` is what devices time for per-token decode latency.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from nasengine.kernels.describe import OpSpec, shape_channels, shape_tokens
from nasengine.kernels.inputs import InputSpec
from nasengine.kernels.quant_nodes import keep_float, quantize_children
from nasengine.kernels.static import Composite, from_spec, register_static, to_spec

KV = tuple[torch.Tensor, torch.Tensor]  # one layer's cached keys and values, each (B, kv_heads, C, head_dim)


@dataclass(frozen=True)
class Rotary:
    """Rotary position embedding of `head_dim` channels (rotate-half layout, as transformers' LlamaRotaryEmbedding
    with `theta`); cos/sin are computed on the fly for the positions asked, so no length limit is built in."""

    head_dim: int
    theta: float

    def cos_sin(self, start: int, length: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """cos and sin (length, head_dim) in float32 for positions start..start+length-1."""
        exponents = torch.arange(0, self.head_dim, 2, dtype=torch.int64, device=device).float() / self.head_dim
        inv_freq = 1.0 / (self.theta ** exponents)
        positions = torch.arange(start, start + length, dtype=torch.int64, device=device).float()
        freqs = positions[:, None] * inv_freq[None, :]
        emb = torch.cat((freqs, freqs), dim=-1)
        return emb.cos(), emb.sin()

    @staticmethod
    def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        """x * cos + rotate_half(x) * sin for x (..., T, head_dim)."""
        half = x.shape[-1] // 2
        rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
        return x * cos.to(x.dtype) + rotated * sin.to(x.dtype)


def grouped_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, kv_heads: int, rotary: Rotary,
                      past: KV | None = None, position: int | None = None,
                      mask: torch.Tensor | None = None) -> tuple[torch.Tensor, KV]:
    """Causal grouped-query attention of projections q (B, T, heads*hd), k and v (B, T, kv_heads*hd).

    Query head h reads KV head h // (heads / kv_heads) (transformers' repeat_kv). `past` holds earlier keys (rotated)
    and values; the T new tokens sit at positions `position`.. (default: right after the cache), see every cached
    position and the new ones up to their own. `mask` (B, cached + T), 1 for real tokens, masks padded keys.
    Returns the attended values (B, T, heads*hd) and the cache including the new tokens."""
    b, t, _ = q.shape
    hd = rotary.head_dim
    heads = q.shape[-1] // hd
    cached = 0 if past is None else int(past[0].shape[2])
    start = cached if position is None else int(position)
    cos, sin = rotary.cos_sin(start, t, q.device)
    q = rotary.rotate(q.reshape(b, t, heads, hd).transpose(1, 2), cos, sin)
    k = rotary.rotate(k.reshape(b, t, kv_heads, hd).transpose(1, 2), cos, sin)
    v = v.reshape(b, t, kv_heads, hd).transpose(1, 2)
    if past is not None:
        k, v = torch.cat((past[0], k), dim=2), torch.cat((past[1], v), dim=2)
    s = k.shape[2]
    grouped = q.reshape(b, kv_heads, heads // kv_heads, t, hd)  # (B, kv, rep, T, hd): no copies of k and v
    scores = (grouped @ k.unsqueeze(2).transpose(-2, -1)) * hd ** -0.5
    allowed = None
    if t > 1:
        allowed = torch.arange(s, device=q.device)[None, :] <= torch.arange(t, device=q.device)[:, None] + (s - t)
    if mask is not None:
        keys = mask[:, None, None, None, :].bool()
        allowed = keys if allowed is None else keys & allowed
    if allowed is not None:
        scores = scores.masked_fill(~allowed, torch.finfo(scores.dtype).min)
    weights = torch.softmax(scores, dim=-1, dtype=torch.float32).to(q.dtype)
    out = (weights @ v.unsqueeze(2)).reshape(b, heads, t, hd)
    return out.transpose(1, 2).reshape(b, t, heads * hd), (k, v)


class RMSNorm(nn.Module):
    """Root-mean-square norm with a learned scale, computed in float32 as LlamaRMSNorm does."""

    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.dim, self.eps = dim, eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.to(torch.float32)
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * h.to(x.dtype)


class DecoderAttention(nn.Module):
    """Causal grouped-query self-attention with rotary positions: q/k/v/o projections without bias, `kv_heads`
    key/value heads each shared by heads / kv_heads query heads; `forward` returns the output and the layer's cache."""

    def __init__(self, dim: int, heads: int, kv_heads: int, head_dim: int, rope_theta: float = 10000.0):
        super().__init__()
        if heads % kv_heads:
            raise ValueError(f"{heads} query heads are not a multiple of {kv_heads} key/value heads")
        self.dim, self.heads, self.kv_heads, self.head_dim, self.rope_theta = dim, heads, kv_heads, head_dim, rope_theta
        self.q = nn.Linear(dim, heads * head_dim, bias=False)
        self.k = nn.Linear(dim, kv_heads * head_dim, bias=False)
        self.v = nn.Linear(dim, kv_heads * head_dim, bias=False)
        self.o = nn.Linear(heads * head_dim, dim, bias=False)
        self.keys = 0  # key positions the last call attended over (a plain int the cost description reads)

    def forward(self, x: torch.Tensor, past: KV | None = None, position: int | None = None,
                mask: torch.Tensor | None = None) -> tuple[torch.Tensor, KV]:
        out, present = grouped_attention(self.q(x), self.k(x), self.v(x), self.kv_heads,
                                         Rotary(self.head_dim, self.rope_theta), past, position, mask)
        self.keys = int(present[0].shape[2])
        return self.o(out), present


class SwiGLU(nn.Module):
    """LLaMA's gated MLP: down(silu(gate(x)) * up(x)), no biases."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.gate, self.up = nn.Linear(dim, hidden, bias=False), nn.Linear(dim, hidden, bias=False)
        self.down = nn.Linear(hidden, dim, bias=False)
        self.act = nn.SiLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(self.act(self.gate(x)) * self.up(x))


class DecoderLayer(nn.Module):
    """Pre-norm decoder layer: x + attn(norm1(x)), then x + mlp(norm2(x)); returns the output and its cache."""

    def __init__(self, dim: int, heads: int, kv_heads: int, head_dim: int, hidden: int, eps: float = 1e-6,
                 rope_theta: float = 10000.0):
        super().__init__()
        self.norm1, self.norm2 = RMSNorm(dim, eps), RMSNorm(dim, eps)
        self.attn = DecoderAttention(dim, heads, kv_heads, head_dim, rope_theta)
        self.mlp = SwiGLU(dim, hidden)

    def forward(self, x: torch.Tensor, past: KV | None = None, position: int | None = None,
                mask: torch.Tensor | None = None) -> tuple[torch.Tensor, KV]:
        h, present = self.attn(self.norm1(x), past, position, mask)
        x = x + h
        return x + self.mlp(self.norm2(x)), present


class TiedEmbedding(nn.Embedding):
    """The token table of a model whose LM head reuses it: the same lookup as nn.Embedding, its parameters counted
    once, by the head (`TiedLMHead`) that multiplies by the table for every token."""


class TiedLMHead(nn.Module):
    """Logits from the embedding table it is given (tied input and output embeddings): holds no weights itself, so the
    state dict keeps one tensor and safetensors round trips need no shared storage. `bind` lets it run alone on the
    table of its model (a per-layer latency profile calls each layer with its input only)."""

    def __init__(self, dim: int, vocab_size: int):
        super().__init__()
        self.dim, self.vocab_size = dim, vocab_size
        self._table: list[nn.Module] = []  # a plain list: the table stays its model's parameter, not a second one

    def bind(self, table: nn.Module) -> None:
        self._table[:] = [table]

    def forward(self, x: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
        if weight is None:
            if not self._table:
                raise ValueError("a tied LM head needs the embedding table: pass it, or bind its model's table")
            weight = self._table[0].weight
        return F.linear(x, weight)


class CausalLM(nn.Module):
    """Token embedding, pre-norm decoder layers, final RMSNorm and LM head (tied to the embedding or not).

    `forward(input_ids, attention_mask=None)` gives logits (B, T, vocab) for full causal sequences; the mask (1 for
    real tokens), when given, masks padded keys on top of the causal mask while positions stay 0..T-1 (as transformers
    does without position ids): exact for right padding; packed text blocks need no mask. `step` decodes
    incrementally with a KV cache; `layers` holds each layer's heads, kv_heads, head_dim and hidden size."""

    def __init__(self, vocab_size: int, dim: int, layers: Sequence[dict[str, int]], eps: float = 1e-6,
                 rope_theta: float = 10000.0, tie_embeddings: bool = False):
        super().__init__()
        self.vocab_size, self.dim, self.eps, self.rope_theta = vocab_size, dim, eps, rope_theta
        self.tie_embeddings = bool(tie_embeddings)
        self.embed = TiedEmbedding(vocab_size, dim) if tie_embeddings else nn.Embedding(vocab_size, dim)
        self.layers = nn.Sequential(OrderedDict(
            (str(i), DecoderLayer(dim, int(c["heads"]), int(c["kv_heads"]), int(c["head_dim"]), int(c["hidden"]),
                                  eps, rope_theta)) for i, c in enumerate(layers)))
        self.norm = RMSNorm(dim, eps)
        self.lm_head: nn.Module = TiedLMHead(dim, vocab_size) if tie_embeddings else \
            nn.Linear(dim, vocab_size, bias=False)
        if isinstance(self.lm_head, TiedLMHead):
            self.lm_head.bind(self.embed)

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm(x)
        return self.lm_head(x, self.embed.weight) if self.tie_embeddings else self.lm_head(x)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        x = self.embed(input_ids)
        for layer in self.layers:
            x = layer(x, None, 0, attention_mask)[0]
        return self._logits(x)

    def step(self, input_ids: torch.Tensor, cache: Sequence[KV] | None = None,
             position: int | None = None) -> tuple[torch.Tensor, list[KV]]:
        """Logits (B, T, vocab) of `input_ids` (B, T) following `cache` (one (k, v) per layer, each
        (B, kv_heads, C, head_dim); None: nothing before), and the cache extended by them. The new tokens sit at
        `position`.. (default: right after the cache, C)."""
        if cache is not None and len(cache) != len(self.layers):
            raise ValueError(f"a cache of {len(cache)} layers for a model of {len(self.layers)}")
        x = self.embed(input_ids)
        present = []
        for i, layer in enumerate(self.layers):
            x, kv = layer(x, None if cache is None else cache[i], position)
            present.append(kv)
        return self._logits(x), present

    def named_layers(self) -> Iterator[tuple[str, nn.Module]]:
        yield "embed", self.embed
        for name, layer in self.layers.named_children():
            yield f"layers.{name}", layer
        yield "norm", self.norm
        yield "lm_head", self.lm_head

    def layer_configs(self) -> list[dict[str, int]]:
        return [{"heads": m.attn.heads, "kv_heads": m.attn.kv_heads, "head_dim": m.attn.head_dim,
                 "hidden": m.mlp.gate.out_features} for m in self.layers]


def decode_inputs(vocab_size: int, layers: list[tuple[int, int]], cache_len: int) -> list[InputSpec]:
    """A decode step's inputs in call order: one token id, then the key and value cache of each layer, given its
    (kv heads, head dim): what devices feed it (known before a model is built)."""
    specs = [InputSpec("input_ids", "int64", (1,), vocab_size)]
    for i, (kv_heads, head_dim) in enumerate(layers):
        shape = (kv_heads, cache_len, head_dim)
        specs += [InputSpec(f"past_{i}_key", "float32", shape), InputSpec(f"past_{i}_value", "float32", shape)]
    return specs


class DecodeStep(nn.Module):
    """One decode step of `model`: B x 1 token ids and a cache of `cache_len` positions, given as 2 x layers tensors
    (`past_{i}_key`, `past_{i}_value`, float32 (B, kv_heads, cache_len, head_dim)), in; logits (B, 1, vocab) out.
    What a device times for per-token decode latency (torch, or ONNX through torch.onnx)."""

    def __init__(self, model: CausalLM, cache_len: int):
        super().__init__()
        if cache_len < 1:
            raise ValueError(f"a decode step needs a cache of at least 1 position, not {cache_len}")
        self.model, self.cache_len = model, int(cache_len)

    def forward(self, input_ids: torch.Tensor, *past: torch.Tensor) -> torch.Tensor:
        layers = len(self.model.layers)
        if len(past) != 2 * layers:
            raise ValueError(f"a decode step of {layers} layers takes {2 * layers} cache tensors, not {len(past)}")
        cache = [(past[2 * i], past[2 * i + 1]) for i in range(layers)]
        return self.model.step(input_ids, cache, self.cache_len)[0]

    def input_specs(self, batch: int = 1) -> list[InputSpec]:
        """The step's inputs in call order (shapes without the batch dimension, as every InputSpec; `batch` only
        checks that a batch is meant)."""
        if batch < 1:
            raise ValueError(f"batch must be at least 1, not {batch}")
        return decode_inputs(self.model.vocab_size, [(m.attn.kv_heads, m.attn.head_dim) for m in self.model.layers],
                             self.cache_len)

    def named_layers(self) -> Iterator[tuple[str, nn.Module]]:
        for name, layer in self.model.named_layers():
            yield f"model.{name}", layer


def _describe_attention(m: DecoderAttention, x: torch.Size, y: torch.Size) -> OpSpec:
    """The score products q.k^T and weights.v over the query heads (projections are its Linear children); with a
    cache, `cache` counts the earlier key positions each new token also attends to."""
    tokens = shape_tokens(y)
    cache = max(0, m.keys - (int(y[1]) if len(y) == 3 else 0))
    return OpSpec("attention", shape_channels(y), shape_channels(y),
                  extra=(*tokens, *((("cache", cache),) if cache else ()), ("heads", int(m.heads)),
                         ("head_dim", int(m.head_dim)), ("kv_heads", int(m.kv_heads))))


def _describe_tied_head(m: TiedLMHead, x: torch.Size, y: torch.Size) -> OpSpec:
    return OpSpec("linear", m.dim, m.vocab_size, extra=(*shape_tokens(x), ("tied", 1)))


def _describe_tied_table(m: TiedEmbedding, x: torch.Size, y: torch.Size) -> OpSpec:
    # in_channels 0: the table's parameters are counted once, by the tied LM head
    return OpSpec("embedding", 0, m.embedding_dim, extra=(("tokens", int(x.numel())), ("vocab", m.num_embeddings),
                                                          ("tied", 1)))


def _causal_lm_spec(m: CausalLM) -> dict[str, Any]:
    return {"vocab_size": m.vocab_size, "dim": m.dim, "layers": m.layer_configs(), "eps": m.eps,
            "rope_theta": m.rope_theta, "tie_embeddings": m.tie_embeddings}


def _attention_spec(m: DecoderAttention) -> dict[str, Any]:
    return {"dim": m.dim, "heads": m.heads, "kv_heads": m.kv_heads, "head_dim": m.head_dim,
            "rope_theta": m.rope_theta}


register_static("RMSNorm", RMSNorm, lambda m: {"dim": m.dim, "eps": m.eps}, short="rms",
                describe=lambda m, x, y: OpSpec("rmsnorm", shape_channels(x), shape_channels(y),
                                                extra=shape_tokens(x)),
                quantize=keep_float)
register_static("DecoderAttention", DecoderAttention, _attention_spec, short="gqa", describe=_describe_attention,
                quantize=quantize_children)
register_static("SwiGLU", SwiGLU, lambda m: {"dim": m.gate.in_features, "hidden": m.gate.out_features},
                short="swiglu", describe=lambda m, x, y: OpSpec("mul", m.gate.out_features, m.gate.out_features,
                                                                extra=shape_tokens(x)),
                quantize=quantize_children)
register_static("DecoderLayer", DecoderLayer, lambda m: {
    **{k: v for k, v in _attention_spec(m.attn).items() if k != "rope_theta"}, "hidden": m.mlp.gate.out_features,
    "eps": m.norm1.eps, "rope_theta": m.attn.rope_theta}, short="decoder", quantize=quantize_children)
register_static("TiedEmbedding", TiedEmbedding, lambda m: {"num_embeddings": m.num_embeddings,
                                                           "embedding_dim": m.embedding_dim},
                short="emb", describe=_describe_tied_table, quantize=keep_float)
register_static("TiedLMHead", TiedLMHead, lambda m: {"dim": m.dim, "vocab_size": m.vocab_size}, short="lm_head",
                describe=_describe_tied_head, quantize=keep_float)
register_static("CausalLM", CausalLM, _causal_lm_spec, short="causal_lm", quantize=quantize_children)
register_static("DecodeStep", DecodeStep, lambda m: {"model": to_spec(m.model), "cache_len": m.cache_len},
                short="decode_step", quantize=quantize_children,
                parts=Composite(build=lambda model, cache_len: DecodeStep(from_spec(model), cache_len)))
