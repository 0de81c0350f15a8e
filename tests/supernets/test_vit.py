"""The ViT family keeps the CNN's contract: slices equal extractions and ONNX, costs count attention."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import torch

from nasengine import supernets
from nasengine.kernels.static import from_spec, to_spec
from nasengine.graphs.onnx_writer import to_onnx


def test_supernet_extraction_and_onnx_agree() -> None:
    net = supernets.create("vit_digits").eval()
    for seed in range(4):
        arch = net.space.sample(seed=seed)
        x = net.example_input(arch, 3)
        net.set_active(arch)
        with torch.no_grad():
            expected = net(x)
            static = net.extract(arch)
            torch.testing.assert_close(static(x), expected, atol=1e-5, rtol=0)
            rebuilt = from_spec(to_spec(static))
            rebuilt.load_state_dict(static.state_dict())
            torch.testing.assert_close(rebuilt.eval()(x), expected, atol=1e-5, rtol=0)
        session = ort.InferenceSession(to_onnx(static, x[:1], dynamic_batch=True), providers=["CPUExecutionProvider"])
        got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
        assert np.abs(got - expected.numpy()).max() <= 1e-4


def test_costs_count_every_parameter_and_attention_macs() -> None:
    net = supernets.create("vit_digits")
    arch = net.space.max()
    static = net.extract(arch)
    assert net.cost(arch).params == sum(p.numel() for p in static.parameters())
    layers = {layer.name: layer for layer in net.describe(arch)}
    attention = [op for op in layers["layers.l0"].ops if op.kind == "attention"]
    assert len(attention) == 1
    tokens = (16 // 4) ** 2 + 1
    assert attention[0].macs == 2 * arch["l0.heads"] * tokens ** 2 * 16
    linear = next(op for op in layers["layers.l0"].ops if op.kind == "linear")
    assert linear.macs == linear.in_channels * linear.out_channels * tokens  # once per token
    smaller = net.space.min()
    assert net.cost(smaller).macs < net.cost(arch).macs


def test_quantizable_layers_follow_depth() -> None:
    net = supernets.create("vit_digits")
    layers = {layer.path: layer.active_if for layer in net.quantizable_layers()}
    assert layers["embed"] is None and layers["classifier"] is None and layers["layers.l0"] is None
    assert layers["layers.l3"] is not None and layers["layers.l3"].gene == "depth"


def test_cost_descriptors_of_a_vit_see_attention_and_tokens() -> None:
    """The few-shot latency predictor's encoding works for transformers through the same op descriptions."""
    from nasengine.kernels.describe import cost_descriptors
    from nasengine.measurement.devices.predicted import N_DESCRIPTORS, arch_features

    net = supernets.create("vit_digits")
    small, large = net.space.min(), net.space.max()
    d_small, d_large = cost_descriptors(net.describe(small)), cost_descriptors(net.describe(large))
    assert 0 < d_small["attention_macs"] < d_large["attention_macs"]
    assert d_small["layers"] < d_large["layers"] and d_small["pointwise_macs"] < d_large["pointwise_macs"]
    assert d_large["macs"] == net.cost(large).macs
    features = arch_features(net.space, large, net.describe(large))
    assert features.shape == (len(net.space.encode(large, "onehot")) + N_DESCRIPTORS,)
