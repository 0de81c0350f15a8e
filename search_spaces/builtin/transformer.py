"""Encoder spaces (ViT, BERT): a depth, one width shared by every layer (the residual stream), per-layer genes."""

from __future__ import annotations

from typing import Sequence

from nasengine.search_spaces.choices import Choice, Condition
from nasengine.search_spaces.space import Space


def encoder_space(depths: Sequence[int], width: tuple[str, Sequence[int]],
                  per_layer: Sequence[tuple[str, Sequence[float], str]], name: str) -> Space:
    """Genes `depth`, `width[0]` and, for each layer i, `l{i}.<gene>` per `(gene, options, tag)` of `per_layer`,
    active only when the subnet runs that layer (depth > i)."""
    genes = [Choice("depth", sorted(depths), tag="depth"), Choice(width[0], sorted(width[1]), tag="width")]
    for i in range(max(depths)):
        cond = None if i < min(depths) else Condition("depth", ">", i)
        genes += [Choice(f"l{i}.{gene}", sorted(options), tag=tag, active_if=cond) for gene, options, tag in per_layer]
    return Space(genes, name=name)
