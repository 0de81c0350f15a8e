"""Quantizable layers of a family are derived from its exports: every weight layer, with the gene it hangs on."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Mapping

import pytest
import torch
from torch import nn

from nasengine import supernets
from nasengine.kernels.trace import split_layers
from nasengine.search_spaces import Choice, Space
from nasengine.supernets.base import Supernet
from tests.conftest import TINY


def test_ofa_layers_and_conditions_match_every_sampled_export() -> None:
    net = supernets.create("ofa_mbv3_digits", **TINY)
    layers = net.quantizable_layers()
    by_path = {layer.path: layer for layer in layers}
    assert {"stem", "blocks.first", "head", "classifier"} <= set(by_path)
    assert by_path["blocks.s1_b1"].active_if is not None and by_path["blocks.s1_b1"].active_if.gene == "s1.depth"
    assert "pool" not in by_path  # no weights, nothing to quantize
    before = net.active_arch
    for seed in range(20, 30):
        arch = net.space.sample(seed=seed)
        exported = {path for path, layer in split_layers(net.extract(arch))
                    if any(isinstance(m, (nn.Conv2d, nn.Linear)) for m in layer.modules())}
        assert exported == {l.path for l in layers if l.active_if is None or l.active_if.holds(arch)}
    assert net.active_arch == before


class _TwoGeneLayer(Supernet):
    """A layer that exists only when two genes agree: no single gene decides it."""

    name = "two_gene"

    def __init__(self) -> None:
        super().__init__(Space([Choice("a", [0, 1]), Choice("b", [0, 1])]))
        self.first, self.extra = nn.Linear(2, 2), nn.Linear(2, 2)

    def _activate(self, arch: Mapping[str, Any]) -> None:
        pass

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.first(x)

    def input_shape(self, arch: Mapping[str, Any]) -> tuple[int, ...]:
        return (2,)

    def _export_active(self) -> nn.Module:
        parts = [("first", self.first)] + ([("extra", self.extra)] if self._active["a"] and self._active["b"] else [])
        return nn.Sequential(OrderedDict(parts))

    @property
    def config(self) -> dict[str, Any]:
        return {}


def test_a_layer_under_two_genes_asks_the_family_to_say_so() -> None:
    with pytest.raises(ValueError, match="override quantizable_layers"):
        _TwoGeneLayer().quantizable_layers()


class _OneModule(_TwoGeneLayer):
    """A family whose export is one plain module (not an nn.Sequential of layers)."""

    def __init__(self) -> None:
        Supernet.__init__(self, Space([Choice("a", [0, 1])]))
        self.first, self.extra = nn.Linear(2, 2), nn.Linear(2, 2)

    def _export_active(self) -> nn.Module:
        return _Plain(self.first)


class _Plain(nn.Module):
    def __init__(self, lin: nn.Linear) -> None:
        super().__init__()
        self.lin = lin

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.lin(x))


def test_a_module_that_is_one_layer_is_quantized_whole() -> None:
    import numpy as np

    from nasengine.graphs.onnx_writer import to_onnx
    from nasengine.graphs.quantization import calibration_feeds, is_quantized, quantize_layers

    net = _OneModule()
    (layer,) = net.quantizable_layers()
    assert layer.path == "" and layer.active_if is None
    graph = to_onnx(_Plain(nn.Linear(2, 2)).eval(), torch.zeros(1, 2), dynamic_batch=True)
    feeds = calibration_feeds(np.random.default_rng(0).standard_normal((8, 2)))
    assert is_quantized(quantize_layers(graph, feeds, [""], [""]))
    with pytest.raises(ValueError, match="no ONNX node computes layer"):
        quantize_layers(graph, feeds, ["missing"], [""])
