"""BN folding keeps the function and the module paths, and leaves the input module alone."""

from __future__ import annotations

import torch
from torch import nn

from nasengine import supernets
from nasengine.kernels.fold import fold_batchnorm
from tests.conftest import TINY


def _with_statistics(module: nn.Module) -> nn.Module:
    gen = torch.Generator().manual_seed(0)
    for bn in module.modules():
        if isinstance(bn, nn.BatchNorm2d):
            bn.running_mean.copy_(torch.randn(bn.num_features, generator=gen))
            bn.running_var.copy_(torch.rand(bn.num_features, generator=gen) + 0.5)
            bn.weight.data.copy_(torch.randn(bn.num_features, generator=gen))
            bn.bias.data.copy_(torch.randn(bn.num_features, generator=gen))
    return module.eval()


def test_folded_subnet_computes_the_same_function_with_the_same_paths() -> None:
    net = supernets.create("ofa_mbv3_digits", **TINY)
    arch = net.space.sample(seed=3)
    module = _with_statistics(net.extract(arch))
    before = {k: v.clone() for k, v in module.state_dict().items()}
    folded = fold_batchnorm(module)
    x = net.example_input(arch, 8)
    torch.testing.assert_close(folded(x), module(x), atol=1e-5, rtol=1e-5)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    convs = {name for name, m in module.named_modules() if isinstance(m, nn.Conv2d)}
    assert convs == {name for name, m in folded.named_modules() if isinstance(m, nn.Conv2d)}
    assert all(torch.equal(before[k], v) for k, v in module.state_dict().items())  # the input is untouched


def test_a_batchnorm_not_after_a_conv_stays() -> None:
    model = nn.Sequential(nn.Linear(4, 4), nn.Unflatten(1, (4, 1, 1)), nn.BatchNorm2d(4)).eval()
    assert isinstance(fold_batchnorm(model)[2], nn.BatchNorm2d)
