"""Cost descriptors from op descriptions: each op lands in the right kind of compute, and totals agree with the
MACs and parameter counts the rest of the engine uses."""

from __future__ import annotations

from nasengine.kernels.describe import DESCRIPTORS, LayerSpec, OpSpec, cost_descriptors, total_macs, total_params


def test_each_op_counts_in_its_kind_of_compute() -> None:
    dense = OpSpec("conv2d", 3, 8, (8, 8), (8, 8), kernel=3)
    depthwise = OpSpec("conv2d", 8, 8, (8, 8), (4, 4), kernel=5, stride=2, groups=8)
    pointwise = OpSpec("conv2d", 8, 16, (4, 4), (4, 4), kernel=1)
    bn = OpSpec("batchnorm2d", 16, 16, (4, 4), (4, 4))
    fc = OpSpec("linear", 16, 10, bias=True, extra=(("tokens", 5),))
    attn = OpSpec("attention", 16, 16, extra=(("tokens", 5), ("heads", 2), ("head_dim", 8)))
    tokens = OpSpec("free_parameters", 0, 0, extra=(("count", 80),))
    layers = [LayerSpec("a", "block", (dense, depthwise, pointwise, bn)), LayerSpec("b", "head", (fc, attn, tokens)),
              LayerSpec("skip", "skip", ())]
    d = cost_descriptors(layers)
    assert list(d) == list(DESCRIPTORS)
    assert d["macs"] == total_macs(layers) and d["params"] == total_params(layers)
    assert d["dense_conv_macs"] == dense.macs and d["dense_convs"] == 1
    assert d["grouped_conv_macs"] == depthwise.macs == 8 * 25 * 16 and d["grouped_convs"] == 1
    assert d["pointwise_macs"] == pointwise.macs + fc.macs and d["pointwise_ops"] == 2
    assert fc.macs == 16 * 10 * 5  # once per token
    assert d["attention_macs"] == attn.macs == 2 * 2 * 5 * 5 * 8
    assert d["elementwise_ops"] == 1  # the batch norm
    assert d["ops"] == 6 and d["layers"] == 2  # free parameters launch nothing; an empty (skipped) layer is no layer
    assert d["activations"] == 8 * 64 + 8 * 16 + 16 * 16 + 16 * 16 + 10 * 5 + 16 * 5

