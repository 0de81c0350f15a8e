"""Elastic BERT grown from a pretrained checkpoint (InstaTune): layers, hidden size, heads and intermediate size.

`bert(checkpoint=DIR)` reads a Hugging Face-format directory (`config.json` + `model.safetensors`; never a pickle),
loads its encoder into the largest subnet and reorders heads, intermediate units and hidden channels by
importance (see `nasengine.supernets.bert_import`), so the largest subnet computes exactly the pretrained encoder and
first-k slices keep its most important parts. Fine-tuning it with the sandwich rule and in-place distillation
(`nasengine train bert`) makes the supernet during the fine-tuning a user does anyway.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
from torch import nn

from nasengine.kernels.inputs import InputSpec
from nasengine.kernels.ops import ElasticLinear
from nasengine.kernels.text import ElasticTokenEmbedding, Pooler, TextClassifier, check_pooling, masked_mean
from nasengine.kernels.transformer import ElasticEncoderLayer
from nasengine.search_spaces.builtin.transformer import encoder_space
from nasengine.search_spaces.space import Arch, Space
from nasengine.supernets.base import FamilyConfig, Supernet
from nasengine.supernets.registry import register


def kept_layers(depth: int, layers: int) -> list[int]:
    """Which of `layers` pretrained layers a subnet of `depth` runs: spread over the stack and always the last one
    (as DynaBERT drops layers), so the pooler always reads what the final layer was trained to produce. Dropping
    the top layers instead leaves shallow subnets at chance level on SST-2 (BENCHMARKS.md)."""
    return [round((i + 1) * layers / depth) - 1 for i in range(depth)]


def bert_space(depths: Sequence[int], dims: Sequence[int], heads: Sequence[int], intermediates: Sequence[int],
               name: str = "bert") -> Space:
    """depth and hidden size (the residual stream, shared by all layers); per layer heads and intermediate size."""
    return encoder_space(depths, ("hidden", dims), [("heads", heads, "heads"), ("intermediate", intermediates, "mlp")],
                         name)


@dataclass(frozen=True)
class BertConfig(FamilyConfig):
    """What builds an ElasticBert: the pretrained sizes (read from a checkpoint's config.json), the task's classes
    and sequence length, and the elastic options (None: derived from the pretrained sizes)."""

    vocab_size: int = 30522
    hidden: int = 384
    layers: int = 6
    heads: int = 12
    intermediate: int = 1536
    max_positions: int = 512
    num_classes: int = 2
    eps: float = 1e-12
    max_length: int = 64
    depths: Sequence[int] | None = None
    dims: Sequence[int] | None = None
    head_options: Sequence[int] | None = None
    intermediates: Sequence[int] | None = None
    pad_token_id: int = 0
    pooling: str = "cls"


class ElasticBert(Supernet):
    """BERT encoder + pooler + classifier; head dimension fixed, so attention width follows the number of heads.

    `pooling`: `cls` (BERT's dense + tanh pooler over the first token) or `mean` (masked mean over tokens, no
    weights), as the checkpoint was trained (`nasengine.supernets.bert_import.read_pooling`).
    Inputs: `input_ids` and `attention_mask` (int64, `max_length` tokens; the device workload's sequence length).
    Genes `l{i}.*` configure the i-th layer the subnet runs, which is pretrained layer `kept_layers(depth)[i]`."""

    def __init__(self, config: BertConfig = BertConfig()):
        vocab_size, hidden, layers, heads = config.vocab_size, config.hidden, config.layers, config.heads
        intermediate, max_positions, num_classes = config.intermediate, config.max_positions, config.num_classes
        eps = config.eps
        max_length, depths, dims, head_options = config.max_length, config.depths, config.dims, config.head_options
        intermediates, pad_token_id, pooling = config.intermediates, config.pad_token_id, config.pooling
        check_pooling(pooling)
        if hidden % heads:
            raise ValueError(f"hidden size {hidden} is not a multiple of {heads} heads")
        if not 0 < max_length <= max_positions:
            raise ValueError(f"max_length {max_length} must be within 1..{max_positions} positions")
        depths = sorted(depths or range(max(1, layers // 2), layers + 1))
        dims = sorted(dims or (hidden * 5 // 6 // 16 * 16, hidden))
        head_options = sorted(head_options or (max(1, heads // 3), max(1, 2 * heads // 3), heads))
        intermediates = sorted(intermediates or (intermediate // 4, intermediate // 2, 3 * intermediate // 4,
                                                 intermediate))
        for what, options, top in (("depths", depths, layers), ("dims", dims, hidden),
                                   ("head_options", head_options, heads), ("intermediates", intermediates,
                                                                           intermediate)):
            if max(options) != top or min(options) < 1:
                raise ValueError(f"{what} {options} must lie in 1..{top} and include {top} (the pretrained size)")
        super().__init__(bert_space(depths, dims, head_options, intermediates))
        self._config: dict[str, Any] = {
            "vocab_size": vocab_size, "hidden": hidden, "layers": layers, "heads": heads,
            "intermediate": intermediate, "max_positions": max_positions, "num_classes": num_classes, "eps": eps,
            "max_length": max_length, "depths": depths, "dims": dims, "head_options": head_options,
            "intermediates": intermediates, "pad_token_id": pad_token_id, "pooling": pooling}
        self.head_dim, self.max_length = hidden // heads, max_length
        self.embed = ElasticTokenEmbedding(vocab_size, hidden, max_positions, eps)
        self.layers = nn.ModuleList(ElasticEncoderLayer(hidden, heads, self.head_dim, intermediate, norm_first=False,
                                                        activation="gelu_erf", eps=eps) for _ in range(layers))
        self.pool = ElasticLinear(hidden, hidden) if pooling == "cls" else None
        self.classifier = ElasticLinear(hidden, num_classes)
        nn.init.normal_(self.classifier.weight, std=0.02)
        self.hidden = hidden
        self.set_active(self.space.max())

    def _activate(self, arch: Arch) -> None:
        dim = int(arch["hidden"])
        self.hidden = dim
        self.embed.set_active(dim)
        self._kept = kept_layers(int(arch["depth"]), len(self.layers))
        for i, layer in enumerate(self._kept):
            self.layers[layer].set_active(dim, int(arch[f"l{i}.heads"]), self.head_dim,
                                          int(arch[f"l{i}.intermediate"]))
        if self.pool is not None:
            self.pool.set_active(dim, dim)
        self.classifier.set_active(dim)

    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """The active encoder's last hidden states (B, T, hidden)."""
        x = self.embed(input_ids)
        for layer in self._kept:
            x = self.layers[layer](x, attention_mask)
        return x

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        x = self.encode(input_ids, attention_mask)
        if self.pool is None:
            return self.classifier(masked_mean(x, attention_mask))
        return self.classifier(torch.tanh(self.pool(x[:, 0])))

    def input_shape(self, arch: Mapping[str, Any]) -> tuple[int, ...]:
        return (self.max_length,)

    def input_specs(self, arch: Mapping[str, Any]) -> list[InputSpec]:
        return [InputSpec("input_ids", "int64", (self.max_length,), self._config["vocab_size"]),
                InputSpec("attention_mask", "int64", (self.max_length,), 2)]

    @torch.no_grad()
    def _export_active(self) -> nn.Module:
        dim = self.hidden
        layers = [self.layers[i].export() for i in self._kept]
        config = [{"heads": m.attn.heads, "head_dim": m.attn.head_dim, "hidden": m.mlp[0].out_features}
                  for m in layers]
        c = self._config
        out = TextClassifier(c["vocab_size"], dim, c["max_positions"], config, c["num_classes"], c["eps"],
                             pooling=c["pooling"])
        out.embed = self.embed.export()
        out.layers = nn.Sequential(OrderedDict((f"l{i}", m) for i, m in enumerate(layers)))
        if self.pool is not None:
            pool = Pooler(dim)
            pool.dense = self.pool.export()
            out.pool = pool
        out.classifier = self.classifier.export()
        return out.eval()

    @property
    def config(self) -> dict[str, Any]:
        return dict(self._config)


def _default_checkpoint() -> Path | None:
    from nasengine.supernets.bert_import import default_checkpoint

    return default_checkpoint()


# fine-tuning a pretrained encoder: a small step, a short warm-up, two passes over the data
@register("bert", pretrained=_default_checkpoint, train_defaults={"epochs": 2, "lr": 1e-4, "warmup": 0.06},
          config=BertConfig)
def bert(num_classes: int = 2, checkpoint: str | None = None, max_length: int = 64, in_channels: int | None = None,
         input_size: Any = None, **overrides: Any) -> ElasticBert:
    """Elastic BERT from a pretrained Hugging Face-format checkpoint (layers, hidden, heads, intermediate size).

    The pooling follows the checkpoint (`mean` for sentence-transformers directories that say so, else `cls`);
    `pooling=` overrides it. Without `checkpoint` the weights are random (as when a trained supernet is rebuilt from its
    config.json);
    image-task arguments (`in_channels`, `input_size`) do not apply to text and are ignored."""
    if checkpoint is None:
        return ElasticBert(BertConfig(num_classes=num_classes, max_length=max_length, **overrides))
    from nasengine.supernets.bert_import import load_pretrained, read_hf_config, read_pooling

    dims = {**read_hf_config(Path(checkpoint)), "pooling": read_pooling(Path(checkpoint))}
    net = ElasticBert(BertConfig(num_classes=num_classes, max_length=max_length, **{**dims, **overrides}))
    load_pretrained(net, Path(checkpoint))
    return net
