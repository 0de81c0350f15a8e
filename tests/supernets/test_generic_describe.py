"""The traced default `_walk_active` agrees with OFA's hand-written descriptions and with the extracted subnets."""

from __future__ import annotations

from collections import OrderedDict

import pytest
import torch
from torch import nn

from nasengine import supernets
from nasengine.kernels import GlobalAvgPool, Residual, SqueezeExcite, layer_kind, trace_layers
from nasengine.supernets.base import Supernet
from tests.conftest import TINY
from tests.helpers import perturb


@pytest.fixture(scope="module")
def tiny_net() -> Supernet:
    torch.manual_seed(0)
    net = supernets.create("ofa_mbv3_digits", **TINY)
    perturb(net)
    return net.eval()


def test_traced_costs_equal_the_hand_written_ones(tiny_net: Supernet) -> None:
    for seed in range(6):
        arch = tiny_net.space.sample(seed=seed)
        hand = tiny_net.describe(arch)
        tiny_net.set_active(arch)
        traced = [layer.spec for layer in Supernet._walk_active(tiny_net, False)]
        assert sum(s.params for s in traced) == sum(s.params for s in hand)
        assert sum(s.macs for s in traced) == sum(s.macs for s in hand)
        assert sum(s.params for s in traced) == sum(p.numel() for p in tiny_net.extract(arch).parameters())
        # the same ops in the same order; only the grouping into layers differs (pool is a layer of its own)
        assert [op for s in traced for op in s.ops] == [op for s in hand for op in s.ops]


def test_traced_layers_are_named_by_path_and_compose(tiny_net: Supernet) -> None:
    arch = tiny_net.space.sample(seed=3)
    tiny_net.set_active(arch)
    layers = Supernet._walk_active(tiny_net, True)
    names = [layer.spec.name for layer in layers]
    assert names[0] == "stem" and names[1] == "blocks.first" and names[-2:] == ["pool", "classifier"]
    assert layers[0].spec.kind == "conv_bn_hswish"
    x = tiny_net.example_input(arch, 2)
    h = x
    with torch.no_grad():
        for layer in layers:
            assert tuple(h.shape[1:]) == layer.input_shape
            h = layer.module.eval()(h)  # type: ignore[union-attr]
        torch.testing.assert_close(h, tiny_net.extract(arch)(x))
    assert all(layer.module is None for layer in Supernet._walk_active(tiny_net, False))


def test_trace_records_residual_and_squeeze_excite_ops() -> None:
    body = nn.Sequential(nn.Conv2d(4, 4, 3, padding=1, groups=4), nn.BatchNorm2d(4), SqueezeExcite(4, 2))
    model = nn.Sequential(OrderedDict(stage=nn.Sequential(OrderedDict(b0=Residual(body))), pool=GlobalAvgPool(),
                                      fc=nn.Linear(4, 3), act=nn.GELU(), drop=nn.Dropout()))
    layers = trace_layers(model.eval(), torch.randn(1, 4, 6, 6))
    assert [t.name for t in layers] == ["stage.b0", "pool", "fc", "act", "drop"]
    kinds = [op.kind for op in layers[0].spec.ops]
    assert kinds == ["conv2d", "batchnorm2d", "global_pool", "conv2d", "relu", "conv2d", "hardsigmoid", "mul", "add"]
    assert layers[0].spec.kind == "res(dwconv_bn_se)" == layer_kind(model.stage.b0)
    assert layers[0].input_shape == (4, 6, 6) and layers[2].input_shape == (4,)
    assert [op.kind for op in layers[3].spec.ops] == ["gelu"] and layers[4].spec.ops == ()
    assert sum(t.spec.params for t in layers) == sum(p.numel() for p in model.parameters())


def test_unknown_leaf_with_parameters_is_refused() -> None:
    class Scale(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = nn.Parameter(torch.ones(1))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x * self.w

    with pytest.raises(TypeError, match="Scale"):
        trace_layers(nn.Sequential(Scale()), torch.randn(1, 2))
