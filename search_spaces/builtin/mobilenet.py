"""Once-for-all style spaces: elastic resolution, per-stage depth and width, per-block kernel size and expand ratio."""

from __future__ import annotations

from typing import Sequence

from nasengine.search_spaces.choices import Choice, Condition
from nasengine.search_spaces.space import Space


def block_genes(stage: int, block: int, depths: Sequence[int], kernels: Sequence[int],
                expands: Sequence[float]) -> list[Choice]:
    """Kernel and expand genes of one block; active only when the stage is deep enough to contain it."""
    cond = None if block < min(depths) else Condition(f"s{stage}.depth", ">", block)
    return [
        Choice(f"s{stage}.b{block}.kernel", kernels, tag="kernel", active_if=cond),
        Choice(f"s{stage}.b{block}.expand", expands, tag="expand", active_if=cond),
    ]


def elastic_mobilenet_space(n_stages: int, depths: Sequence[int] = (2, 3, 4), kernels: Sequence[int] = (3, 5, 7),
                            expands: Sequence[float] = (3, 4, 6), resolutions: Sequence[int] | None = None,
                            name: str = "elastic_mobilenet", widths: Sequence[float] | None = None) -> Space:
    """Genes: `resolution` (if given), then per stage `s{i}.depth`, `s{i}.width` (if `widths` given: multipliers
    of the stage's output width) and per block `s{i}.b{j}.kernel|expand`; options cheapest first."""
    genes: list[Choice] = []
    if resolutions:
        genes.append(Choice("resolution", sorted(resolutions), tag="resolution"))
    for stage in range(n_stages):
        genes.append(Choice(f"s{stage}.depth", sorted(depths), tag="depth"))
        if widths:
            genes.append(Choice(f"s{stage}.width", sorted(widths), tag="width"))
        for block in range(max(depths)):
            genes.extend(block_genes(stage, block, depths, sorted(kernels), sorted(expands)))
    return Space(genes, name=name)
