"""The one table of activations by name, for every family and layer (CNN blocks, transformer MLPs, decoders)."""

from __future__ import annotations

from typing import Callable

from torch import nn

# "gelu" is the tanh approximation (ViT); "gelu_erf" the exact form BERT checkpoints are trained with
ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU, "hswish": nn.Hardswish, "silu": nn.SiLU, "gelu": lambda: nn.GELU(approximate="tanh"),
    "gelu_erf": nn.GELU, "tanh": nn.Tanh,
}


def activation(name: str) -> nn.Module:
    """A new activation module by name; ValueError listing the known names."""
    try:
        return ACTIVATIONS[name]()
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; known: {', '.join(sorted(ACTIVATIONS))}") from None
