"""Quantization policies as genes: one precision gene per quantizable layer, active exactly when the layer is.

A policy maps a layer's module path (the prefix of its ONNX nodes) to a precision. `with_policy_genes` extends an
architecture space with gene `q.<path>` per layer, so samplers, encodings, predictors and search strategies
treat precisions like any other gene; `split_policy` separates an extended arch into the network's arch and
its policy (inactive layers carry no precision).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from nasengine.search_spaces.choices import Choice, Condition
from nasengine.search_spaces.space import Arch, Space

PRECISIONS = ("fp32", "int8")  # cheapest last would mislead: options run from FP32 to the quantised form
GENE_PREFIX = "q."
QUANT_TAG = "quant"


@dataclass(frozen=True)
class QuantizableLayer:
    """A layer holding weights, by module path in the exported subnet, and when it exists (None: always)."""

    path: str
    active_if: Condition | None = None

    @property
    def gene(self) -> str:
        return GENE_PREFIX + self.path


def with_policy_genes(space: Space, layers: Sequence[QuantizableLayer],
                      precisions: Sequence[str] = PRECISIONS) -> Space:
    """`space` plus one unordered precision gene per layer, conditional like the layer it quantises."""
    unknown = [p for p in precisions if p not in PRECISIONS]
    if unknown or len(precisions) < 1:
        raise ValueError(f"precisions must be among {list(PRECISIONS)}, got {list(precisions)}")
    genes = [Choice(layer.gene, tuple(precisions), tag=QUANT_TAG, active_if=layer.active_if, ordered=False)
             for layer in layers]
    return Space([*space.genes, *genes], name=f"{space.name}+quant" if space.name else "quant")


def split_policy(arch: Mapping[str, Any]) -> tuple[Arch, dict[str, str]]:
    """(network arch, policy {layer path: precision}) of an arch that may hold policy genes; inactive
    (None) precision genes are left out of the policy."""
    network = {k: v for k, v in arch.items() if not k.startswith(GENE_PREFIX)}
    policy = {k[len(GENE_PREFIX):]: str(v) for k, v in arch.items() if k.startswith(GENE_PREFIX) and v is not None}
    return network, policy


def uniform_policy(layers: Sequence[str], precision: str) -> dict[str, str]:
    """Every listed layer at one precision (e.g. all INT8)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {list(PRECISIONS)}, got {precision!r}")
    return {path: precision for path in layers}


def int8_layers(policy: Mapping[str, str]) -> list[str]:
    """The layers a policy runs in INT8, in policy order."""
    return [path for path, precision in policy.items() if precision == "int8"]
