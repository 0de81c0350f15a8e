import pytest
import torch
from torch import nn

from nasengine.kernels import ConvBNAct, ElasticBatchNorm2d, ElasticConv2d, ElasticLinear, ElasticMBConv
from tests.helpers import randomize_bn


@pytest.mark.parametrize("depthwise", [False, True])
@pytest.mark.parametrize("kernel", [3, 5, 7])
def test_conv_export_matches_active_conv(depthwise: bool, kernel: int) -> None:
    torch.manual_seed(0)
    conv = ElasticConv2d(16, 16 if depthwise else 24, (3, 5, 7), stride=2, depthwise=depthwise)
    for p in conv.transforms.values():
        p.data += 0.1 * torch.randn_like(p)  # a trained, non-identity transform
    cin = 12
    conv.set_active(cin, cin if depthwise else 20, kernel)
    x = torch.randn(2, cin, 9, 9)
    static = conv.export()
    assert isinstance(static, nn.Conv2d) and static.kernel_size == (kernel, kernel)
    torch.testing.assert_close(conv(x), static(x), rtol=0, atol=1e-6)
    spec = conv.describe((9, 9))
    assert spec.out_hw == tuple(static(x).shape[-2:])
    assert spec.params == sum(p.numel() for p in static.parameters())


def test_kernel_shrink_uses_centre_and_learned_transform() -> None:
    conv = ElasticConv2d(1, 1, (3, 5), kernel_transform=True)
    conv.set_active(1, 1, 3)
    torch.testing.assert_close(conv.active_weight(), conv.weight[:, :, 1:4, 1:4])  # identity at init
    conv.transforms["k3"].data = torch.eye(9).flip(0)
    assert torch.equal(conv.active_weight().flatten(), conv.weight[:, :, 1:4, 1:4].flatten().flip(0))


def test_batchnorm_slices_statistics_and_updates_shared_buffers() -> None:
    bn = ElasticBatchNorm2d(8)
    bn.set_active(5)
    bn.train()
    bn(torch.randn(4, 5, 3, 3) + 2.0)
    assert (bn.running_mean[:5] > 0.1).all() and torch.equal(bn.running_mean[5:], torch.zeros(3))
    bn.eval()
    x = torch.randn(2, 5, 3, 3)
    torch.testing.assert_close(bn(x), bn.export().eval()(x))


def test_linear_export() -> None:
    lin = ElasticLinear(10, 6)
    lin.set_active(7, 4)
    x = torch.randn(3, 7)
    torch.testing.assert_close(lin(x), lin.export()(x))


def test_invalid_active_configs_are_refused() -> None:
    conv = ElasticConv2d(8, 8, (3, 5))
    with pytest.raises(ValueError, match="kernel size 7"):
        conv.set_active(8, 8, 7)
    with pytest.raises(ValueError, match="exceed"):
        conv.set_active(9, 8, 3)
    with pytest.raises(ValueError, match="odd"):
        ElasticConv2d(4, 4, (2, 3))
    with pytest.raises(ValueError, match="depthwise"):
        ElasticConv2d(4, 8, (3,), depthwise=True)


@pytest.mark.parametrize("stride, in_ch, use_se", [(1, 16, True), (2, 12, False), (1, 12, True)])
def test_mbconv_export_and_description(stride: int, in_ch: int, use_se: bool) -> None:
    torch.manual_seed(1)
    block = ElasticMBConv(16, 16, (3, 5, 7), (3, 4, 6), stride=stride, act="hswish", use_se=use_se)
    randomize_bn(block)
    if use_se:
        nn.init.normal_(block.se.expand.weight, std=0.1)
    block.set_active(in_ch, 5, 4)
    block.eval()
    x = torch.randn(2, in_ch, 8, 8)
    static = block.export().eval()
    torch.testing.assert_close(block(x), static(x), rtol=0, atol=1e-5)
    ops, hw = block.describe((8, 8))
    assert hw == tuple(static(x).shape[-2:])
    assert sum(op.params for op in ops) == sum(p.numel() for p in static.parameters())
    assert block.residual == (stride == 1 and in_ch == 16)


def test_channel_sorting_preserves_the_full_block_function() -> None:
    torch.manual_seed(2)
    block = ElasticMBConv(8, 8, (3,), (3, 6), use_se=True)
    randomize_bn(block)
    nn.init.normal_(block.se.expand.weight, std=0.1)
    block.eval()
    block.set_active(8, 3, 6)
    x = torch.randn(2, 8, 6, 6)
    before = block(x)
    block.sort_hidden_channels()
    torch.testing.assert_close(block(x), before, rtol=0, atol=1e-5)
    importance = block.project.conv.weight.abs().sum(dim=(0, 2, 3))
    assert torch.all(importance[:-1] >= importance[1:])


def test_conv_bn_act_export() -> None:
    layer = ConvBNAct(4, 8, (3,), 1, "relu")
    randomize_bn(layer)
    layer.eval()
    layer.set_active(3, 6, 3)
    x = torch.randn(1, 3, 5, 5)
    torch.testing.assert_close(layer(x), layer.export().eval()(x))


@pytest.mark.parametrize("depthwise", [False, True])
def test_conv_and_bn_permutations_reorder_channels(depthwise: bool) -> None:
    torch.manual_seed(3)
    conv = ElasticConv2d(6, 6, (3,), depthwise=depthwise, bias=True)
    nn.init.normal_(conv.bias)
    x = torch.randn(2, 6, 5, 5)
    before = conv(x)
    order = torch.randperm(6)
    importance = conv.input_importance()
    conv.permute_inputs(order)
    torch.testing.assert_close(conv.input_importance(), importance[order])
    if depthwise:  # a depthwise conv's channels move together
        torch.testing.assert_close(conv(x[:, order]), before[:, order])
    else:
        torch.testing.assert_close(conv(x[:, order]), before)
        conv.permute_outputs(order)
        torch.testing.assert_close(conv(x[:, order]), before[:, order])
    bn = ElasticBatchNorm2d(6)
    randomize_bn(bn)
    bn.eval()
    y = bn(x)
    bn.permute(order)
    torch.testing.assert_close(bn(x[:, order]), y[:, order])
    with pytest.raises(ValueError, match="permutation of 5"):
        bn.permute(order[:5])


@pytest.mark.parametrize("stride, in_ch, out_ch", [(1, 12, 12), (1, 16, 8), (2, 8, 8), (1, 8, 16)])
def test_mbconv_elastic_output_width(stride: int, in_ch: int, out_ch: int) -> None:
    torch.manual_seed(4)
    block = ElasticMBConv(16, 16, (3, 5), (3, 6), stride=stride, act="hswish", use_se=True)
    randomize_bn(block)
    nn.init.normal_(block.se.expand.weight, std=0.1)
    block.set_active(in_ch, 3, 6, out_ch)
    block.eval()
    x = torch.randn(2, in_ch, 8, 8)
    static = block.export().eval()
    out = block(x)
    assert out.shape[1] == out_ch
    torch.testing.assert_close(out, static(x), rtol=0, atol=1e-5)
    ops, _ = block.describe((8, 8))
    assert sum(op.params for op in ops) == sum(p.numel() for p in static.parameters())
    assert block.residual == (stride == 1 and in_ch == out_ch)
    with pytest.raises(ValueError, match="output channels exceed"):
        block.set_active(in_ch, 3, 6, 17)


@pytest.mark.parametrize("expands", [(3, 6), (1,)])
def test_mbconv_channel_permutations_keep_the_block_function(expands: tuple[float, ...]) -> None:
    torch.manual_seed(5)
    block = ElasticMBConv(8, 8, (3,), expands, use_se=True)
    randomize_bn(block)
    nn.init.normal_(block.se.expand.weight, std=0.1)
    block.eval()
    x = torch.randn(2, 8, 6, 6)
    before = block(x)  # residual: input and output share one stream, so one order for both
    order = torch.randperm(8)
    importance = block.input_importance()
    block.permute_inputs(order)
    block.permute_outputs(order)
    torch.testing.assert_close(block.input_importance(), importance[order])
    torch.testing.assert_close(block(x[:, order]), before[:, order], rtol=0, atol=1e-5)
