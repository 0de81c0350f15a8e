"""Writers of small on-disk text data for tests: a tiny BERT checkpoint in Hugging Face format and TSV files."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file

WORDS = ["good", "great", "fine", "love", "nice", "bad", "awful", "poor", "hate", "dull", "the", "movie", "was",
         "a", "film", "plot", "very", "not", "and", "it"]
POSITIVE, NEGATIVE = WORDS[:5], WORDS[5:10]
FILLER = WORDS[10:]


def write_tiny_checkpoint(directory: Path, hidden: int = 32, layers: int = 2, heads: int = 4, intermediate: int = 64,
                          seed: int = 0, pooler: bool = True, pooling: str | None = None) -> Path:
    """A random BERT in Hugging Face layout (config.json, model.safetensors with HF names, vocab.txt); with
    `pooling`, also a sentence-transformers pooling config (`1_Pooling/config.json`) asking for it."""
    from nasengine.supernets.bert import BertConfig, ElasticBert
    from nasengine.supernets.bert_import import _hf_names

    directory.mkdir(parents=True, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]
    (directory / "vocab.txt").write_text("\n".join(vocab) + "\n")
    torch.manual_seed(seed)
    net = ElasticBert(BertConfig(vocab_size=len(vocab), hidden=hidden, layers=layers, heads=heads,
                                 intermediate=intermediate, max_positions=64, max_length=16))
    gen = torch.Generator().manual_seed(seed)
    params = dict(net.named_parameters())
    tensors = {}
    for ours, theirs in _hf_names(net).items():
        if theirs.startswith("pooler.") and not pooler:
            continue
        p = params[ours]
        scale = 0.1 if "norm" in ours or "ln" in ours else 0.2
        base = torch.ones_like(p) if ours.endswith(("norm.weight", "ln1.weight", "ln2.weight")) else 0
        tensors[theirs] = (base + scale * torch.randn(p.shape, generator=gen)).contiguous()
    tensors["embeddings.token_type_embeddings.weight"] = 0.2 * torch.randn(2, hidden, generator=gen)
    save_file(tensors, str(directory / "model.safetensors"))
    (directory / "config.json").write_text(json.dumps({
        "model_type": "bert", "vocab_size": len(vocab), "hidden_size": hidden, "num_hidden_layers": layers,
        "num_attention_heads": heads, "intermediate_size": intermediate, "max_position_embeddings": 64,
        "layer_norm_eps": 1e-12, "hidden_act": "gelu", "pad_token_id": 0}))
    if pooling is not None:
        (directory / "1_Pooling").mkdir(exist_ok=True)
        (directory / "1_Pooling" / "config.json").write_text(json.dumps({
            "word_embedding_dimension": hidden, "pooling_mode_cls_token": pooling == "cls",
            "pooling_mode_mean_tokens": pooling == "mean"}))
    return directory


def write_sentiment_tsv(path: Path, rows: int, seed: int = 0, header: str = "label\tsentence") -> Path:
    """Sentences of filler words and one sentiment word; the label follows the sentiment word (learnable)."""
    gen = torch.Generator().manual_seed(seed)
    lines = [header]
    for _ in range(rows):
        label = int(torch.randint(2, (1,), generator=gen))
        words = [FILLER[int(i)] for i in torch.randint(len(FILLER), (int(torch.randint(2, 8, (1,), generator=gen)),),
                                                       generator=gen)]
        pool = POSITIVE if label else NEGATIVE
        words.insert(int(torch.randint(len(words) + 1, (1,), generator=gen)), pool[int(torch.randint(5, (1,),
                                                                                                   generator=gen))])
        lines.append(f"{label}\t{' '.join(words)}")
    path.write_text("\n".join(lines) + "\n")
    return path
