"""Elastic LLaMA grown from a pretrained decoder (SmolLM2 by default): depth, key/value groups and MLP channels.

`llama(checkpoint=PATH)` reads a Hugging Face-format directory or a llama.cpp GGUF file (see
`nasengine.supernets.llama_import`), loads the decoder into the largest subnet and reorders key/value groups and
MLP channels by importance, so the largest subnet computes exactly the pretrained model and first-k slices keep its
most important parts. A subnet runs the first `depth` layers (Sorted LLaMA: every depth exits through the shared
final norm and LM head), and in each the first `l{i}.kv` key/value groups (with their query heads) and the first
`l{i}.mlp` MLP channels (MatFormer).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
from torch import nn

from nasengine.kernels.decoder import CausalLM, DecodeStep, RMSNorm, decode_inputs
from nasengine.kernels.decoder_elastic import ElasticDecoderLayer
from nasengine.kernels.inputs import InputSpec
from nasengine.search_spaces.choices import Choice, Condition
from nasengine.search_spaces.space import Arch, Space
from nasengine.supernets.base import FamilyConfig, Supernet
from nasengine.supernets.registry import register


def llama_space(depths: Sequence[int], intermediates: Sequence[int], kv_groups: Sequence[int],
                name: str = "llama") -> Space:
    """`depth`, then per layer i `l{i}.mlp` (MLP channels) and `l{i}.kv` (key/value groups), active while depth > i."""
    genes = [Choice("depth", sorted(depths), tag="depth")]
    for i in range(max(depths)):
        cond = None if i < min(depths) else Condition("depth", ">", i)
        genes += [Choice(f"l{i}.mlp", sorted(intermediates), tag="mlp", active_if=cond),
                  Choice(f"l{i}.kv", sorted(kv_groups), tag="heads", active_if=cond)]
    return Space(genes, name=name)


@dataclass(frozen=True)
class LlamaConfig(FamilyConfig):
    """What builds an ElasticLlama: the pretrained sizes (SmolLM2-135M's by default; a checkpoint's own when read
    from it), the task's token block length `max_length` (the workload's prefill length) and the elastic options
    (None: derived from the pretrained sizes)."""

    vocab_size: int = 49152
    hidden: int = 576
    layers: int = 30
    heads: int = 9
    kv_heads: int = 3
    head_dim: int = 64
    intermediate: int = 1536
    eps: float = 1e-5
    rope_theta: float = 100000.0
    tie_embeddings: bool = True
    max_positions: int = 8192
    max_length: int = 128
    depths: Sequence[int] | None = None
    intermediates: Sequence[int] | None = None
    kv_groups: Sequence[int] | None = None
    bos_token_id: int | None = 1
    eos_token_id: int | None = 2
    pad_token_id: int | None = 2


def default_options(config: LlamaConfig) -> tuple[list[int], list[int], list[int]]:
    """Depths (a third of the layers to all, in sixths), MLP channels (a quarter to all) and key/value groups (1 to
    all), unless the config lists its own; ValueError when an option list misses the pretrained size."""
    layers, inter, kv = config.layers, config.intermediate, config.kv_heads
    depths = sorted(set(config.depths or {max(1, round(layers * f / 6)) for f in (2, 3, 4, 5, 6)}))
    intermediates = sorted(set(config.intermediates or {max(1, inter * f // 4) for f in (1, 2, 3, 4)}))
    kv_groups = sorted(set(config.kv_groups or range(1, kv + 1)))
    for what, options, top in (("depths", depths, layers), ("intermediates", intermediates, inter),
                               ("kv_groups", kv_groups, kv)):
        if max(options) != top or min(options) < 1:
            raise ValueError(f"{what} {options} must lie in 1..{top} and include {top} (the pretrained size)")
    return [int(d) for d in depths], [int(i) for i in intermediates], [int(k) for k in kv_groups]


class ElasticLlama(Supernet):
    """LLaMA decoder: token embedding, elastic decoder layers, final RMSNorm and LM head (tied or not).

    Input: `input_ids` (int64, `max_length` tokens; packed text blocks, so no mask). Output: logits (B, T, vocab).
    Genes `l{i}.*` configure pretrained layer i; layers from `depth` on do not run."""

    def __init__(self, config: LlamaConfig = LlamaConfig()):
        c = config
        if c.heads % c.kv_heads:
            raise ValueError(f"{c.heads} heads are not a multiple of {c.kv_heads} key/value heads")
        if not 0 < c.max_length <= c.max_positions:
            raise ValueError(f"max_length {c.max_length} must be within 1..{c.max_positions} positions")
        depths, intermediates, kv_groups = default_options(c)
        super().__init__(llama_space(depths, intermediates, kv_groups))
        self._config: dict[str, Any] = {
            "vocab_size": c.vocab_size, "hidden": c.hidden, "layers": c.layers, "heads": c.heads,
            "kv_heads": c.kv_heads, "head_dim": c.head_dim, "intermediate": c.intermediate, "eps": c.eps,
            "rope_theta": c.rope_theta, "tie_embeddings": c.tie_embeddings, "max_positions": c.max_positions,
            "max_length": c.max_length, "depths": depths, "intermediates": intermediates, "kv_groups": kv_groups,
            "bos_token_id": c.bos_token_id, "eos_token_id": c.eos_token_id, "pad_token_id": c.pad_token_id}
        self.max_length, self.tie_embeddings = c.max_length, bool(c.tie_embeddings)
        self.embed = nn.Embedding(c.vocab_size, c.hidden)
        nn.init.normal_(self.embed.weight, std=0.02)
        self.layers = nn.ModuleList(ElasticDecoderLayer(c.hidden, c.heads, c.kv_heads, c.head_dim, c.intermediate,
                                                        c.eps, c.rope_theta) for _ in range(c.layers))
        self.norm = RMSNorm(c.hidden, c.eps)
        self.lm_head = None if c.tie_embeddings else nn.Linear(c.hidden, c.vocab_size, bias=False)
        if self.lm_head is not None:
            nn.init.normal_(self.lm_head.weight, std=0.02)
        self.depth = c.layers
        self.set_active(self.space.max())

    def _activate(self, arch: Arch) -> None:
        self.depth = int(arch["depth"])
        for i in range(self.depth):
            self.layers[i].set_active(int(arch[f"l{i}.kv"]), int(arch[f"l{i}.mlp"]))

    def hidden_states(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """The active decoder's final-norm features (B, T, hidden), before the LM head."""
        x = self.embed(input_ids)
        for layer in self.layers[: self.depth]:
            x = layer(x, None, 0, attention_mask)[0]
        return self.norm(x)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        x = self.hidden_states(input_ids, attention_mask)
        if self.lm_head is None:
            return torch.nn.functional.linear(x, self.embed.weight)
        return self.lm_head(x)

    def input_shape(self, arch: Mapping[str, Any]) -> tuple[int, ...]:
        return (self.max_length,)

    def input_specs(self, arch: Mapping[str, Any]) -> list[InputSpec]:
        return [InputSpec("input_ids", "int64", (self.max_length,), self._config["vocab_size"])]

    @torch.no_grad()
    def _export_active(self) -> nn.Module:
        c = self._config
        layers = [self.layers[i].export() for i in range(self.depth)]
        with torch.device("meta"):  # every tensor is replaced or copied below: skip the random initialisation
            out = CausalLM(c["vocab_size"], c["hidden"], [], c["eps"], c["rope_theta"], c["tie_embeddings"])
        out = out.to_empty(device=self.embed.weight.device)
        out.embed.weight.copy_(self.embed.weight)
        out.norm.weight.copy_(self.norm.weight)
        if self.lm_head is not None:
            out.lm_head.weight.copy_(self.lm_head.weight)
        for i, layer in enumerate(layers):
            out.layers.add_module(str(i), layer)
        return out.eval()

    def phases(self, arch: Mapping[str, Any], cache_tokens: int) -> dict[str, tuple[Any, list[InputSpec]]]:
        """Decode latency: one token against a key/value cache of `cache_tokens` positions (the prefill of
        `max_length` tokens is the forward pass devices time anyway)."""
        canonical = self.space.validate(arch)
        groups = [(int(canonical[f"l{i}.kv"]), self._config["head_dim"]) for i in range(int(canonical["depth"]))]
        inputs = decode_inputs(self._config["vocab_size"], groups, cache_tokens)
        return {"decode": (lambda: DecodeStep(self.extract(canonical), cache_tokens).eval(), inputs)}

    def cache_bytes(self, arch: Mapping[str, Any], cache_tokens: int) -> int:
        """The float32 key/value cache of `cache_tokens` positions: 2 x groups x head dim per active layer."""
        canonical = self.space.validate(arch)
        groups = sum(int(canonical[f"l{i}.kv"]) for i in range(int(canonical["depth"])))
        return 2 * groups * self._config["head_dim"] * cache_tokens * 4

    @property
    def config(self) -> dict[str, Any]:
        return dict(self._config)


def _default_checkpoint() -> Path | None:
    from nasengine.supernets.llama_import import default_checkpoint

    return default_checkpoint()


# fine-tuning a pretrained decoder into a supernet: one pass, a small step, a short warm-up
@register("llama", pretrained=_default_checkpoint,
          train_defaults={"epochs": 1, "lr": 1e-4, "warmup": 0.05, "label_smoothing": 0.0}, config=LlamaConfig)
def llama(checkpoint: str | None = None, max_length: int = 128, num_classes: int | None = None,
          in_channels: int | None = None, input_size: Any = None, **overrides: Any) -> ElasticLlama:
    """Elastic LLaMA from a pretrained Hugging Face-format directory or GGUF file (depth, key/value groups, MLP).

    Without `checkpoint` the weights are random (as when a trained supernet is rebuilt from its config.json);
    classification and image arguments (`num_classes`, `in_channels`, `input_size`) do not apply to a language model
    and are ignored."""
    if checkpoint is None:
        return ElasticLlama(LlamaConfig(max_length=max_length, **overrides))
    from nasengine.supernets.llama_import import load_tensors, read_checkpoint, sort_by_importance

    sizes, tensors, _ = read_checkpoint(Path(checkpoint))  # read once: a GGUF's header alone takes seconds
    net = ElasticLlama(LlamaConfig(max_length=max_length, **{**sizes, **overrides}))
    load_tensors(net, tensors, Path(checkpoint))
    sort_by_importance(net)
    return net
