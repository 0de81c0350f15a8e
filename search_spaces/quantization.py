"""Quantization policies as genes: one precision gene per quantizable layer, active exactly when the layer is.

A policy maps a layer's module path (the prefix of its ONNX nodes) to a precision. `with_policy_genes` extends an
architecture space with gene `q.<path>` per layer, so samplers, encodings, predictors and search strategies
treat precisions like any other gene; `split_policy` separates an extended arch into the network's arch and
its policy (inactive layers carry no precision).

Precisions: `fp32`; `int8` (static INT8 weights and activations, ranges calibrated; every layer that holds
weights); `w8` and `w4` (weight-only quantization of the weights that feed matrix products, as LLM runtimes ship
them: INT8 / INT4 in blocks of 32 with one scale each, activations quantized on the fly, no calibration; linear and
attention layers of transformers). Each layer lists the precisions that apply to it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from nasengine.search_spaces.choices import Choice, Condition
from nasengine.search_spaces.space import Arch, Space

PRECISIONS = ("fp32", "int8", "w8", "w4")  # options run from FP32 to the quantised forms
STATIC_PRECISIONS = ("fp32", "int8")  # what every layer that holds weights can run
WEIGHT_ONLY_BITS = {"w8": 8, "w4": 4}
BYTES_PER_WEIGHT = {"fp32": 4.0, "int8": 1.0, "w8": 1.0, "w4": 0.5}
GENE_PREFIX = "q."
QUANT_TAG = "quant"


@dataclass(frozen=True)
class QuantizableLayer:
    """A layer holding weights, by module path in the exported subnet, when it exists (None: always), and the
    precisions it can run."""

    path: str
    active_if: Condition | None = None
    precisions: tuple[str, ...] = STATIC_PRECISIONS

    @property
    def gene(self) -> str:
        return GENE_PREFIX + self.path


def with_policy_genes(space: Space, layers: Sequence[QuantizableLayer],
                      precisions: Sequence[str] = PRECISIONS) -> Space:
    """`space` plus one unordered precision gene per layer, conditional like the layer it quantises, over the
    layer's own precisions among `precisions`."""
    check_precisions(precisions)
    genes = [Choice(layer.gene, tuple(p for p in layer.precisions if p in precisions) or ("fp32",), tag=QUANT_TAG,
                    active_if=layer.active_if, ordered=False)
             for layer in layers]
    return Space([*space.genes, *genes], name=f"{space.name}+quant" if space.name else "quant")


def split_policy(arch: Mapping[str, Any]) -> tuple[Arch, dict[str, str]]:
    """(network arch, policy {layer path: precision}) of an arch that may hold policy genes; inactive
    (None) precision genes are left out of the policy."""
    network = {k: v for k, v in arch.items() if not k.startswith(GENE_PREFIX)}
    policy = {k[len(GENE_PREFIX):]: str(v) for k, v in arch.items() if k.startswith(GENE_PREFIX) and v is not None}
    return network, policy


def check_precisions(precisions: Sequence[str]) -> None:
    """ValueError unless `precisions` is a non-empty list of known precisions including fp32."""
    unknown = [p for p in precisions if p not in PRECISIONS]
    if unknown or "fp32" not in precisions:
        raise ValueError(f"precisions must be among {', '.join(PRECISIONS)} and include fp32, got "
                         f"{', '.join(precisions) or 'none'}")


def uniform_policy(layers: Sequence[str], precision: str) -> dict[str, str]:
    """Every listed layer at one precision (e.g. all INT8)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {list(PRECISIONS)}, got {precision!r}")
    return {path: precision for path in layers}


def int8_layers(policy: Mapping[str, str]) -> list[str]:
    """The layers a policy runs in static INT8, in policy order."""
    return [path for path, precision in policy.items() if precision == "int8"]


def weight_only_layers(policy: Mapping[str, str]) -> dict[str, int]:
    """{layer: weight bits} of the layers a policy runs with weight-only quantized weights."""
    return {path: WEIGHT_ONLY_BITS[precision] for path, precision in policy.items() if precision in WEIGHT_ONLY_BITS}


def quantizes(policy: Mapping[str, str] | None) -> bool:
    """Whether a policy runs any layer below FP32 (its deployed graph differs from the FP32 one)."""
    return bool(policy) and any(precision != "fp32" for precision in policy.values())  # type: ignore[union-attr]
