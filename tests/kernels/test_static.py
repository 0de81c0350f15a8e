import json

import pytest
import torch
from torch import nn

from nasengine.kernels.static import GlobalAvgPool, Residual, SqueezeExcite, from_spec, to_spec


def test_spec_roundtrip_rebuilds_the_same_tree() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.Hardswish(),
        Residual(nn.Sequential(nn.Conv2d(8, 8, 3, padding=1, groups=8), SqueezeExcite(8, 8), nn.ReLU())),
        GlobalAvgPool(), nn.Linear(8, 3)).eval()
    spec = json.loads(json.dumps(to_spec(model)))
    rebuilt = from_spec(spec)
    rebuilt.load_state_dict(model.state_dict(), strict=True)
    rebuilt.eval()
    x = torch.randn(2, 1, 6, 6)
    torch.testing.assert_close(model(x), rebuilt(x))


def test_unknown_types_are_refused_both_ways() -> None:
    with pytest.raises(TypeError, match="not a static export module"):
        to_spec(nn.LSTM(2, 2))
    with pytest.raises(ValueError, match="unknown static module type 'os.system'"):
        from_spec({"type": "os.system", "args": {}})


def test_one_registration_gives_spec_description_and_export() -> None:
    """A user op registered once is rebuilt from its spec, described for costs (trace) and exported to ONNX."""
    from nasengine.kernels.describe import OpSpec
    from nasengine.kernels.quant_nodes import keep_float
    from nasengine.kernels.static import register_static, static_op
    from nasengine.kernels.trace import trace_layers
    from nasengine.graphs.onnx_writer import onnx_error, to_onnx

    class Scale(torch.nn.Module):
        def __init__(self, channels: int):
            super().__init__()
            self.gain = torch.nn.Parameter(torch.rand(channels) + 0.5)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x * self.gain

    register_static("TestScale", Scale, lambda m: {"channels": m.gain.numel()}, short="scale",
                    describe=lambda m, x, y: OpSpec("scale", m.gain.numel(), m.gain.numel(),
                                                    extra=(("count", m.gain.numel()),)), quantize=keep_float)
    model = torch.nn.Sequential(torch.nn.Linear(4, 6), Scale(6), torch.nn.ReLU()).eval()
    rebuilt = from_spec(to_spec(model))
    rebuilt.load_state_dict(model.state_dict())
    x = torch.randn(2, 4)
    assert torch.equal(rebuilt(x), model(x))
    layers = trace_layers(model, x[:1])
    assert [layer.spec.kind for layer in layers] == ["linear", "scale", "relu"]
    assert static_op(Scale).onnx is None  # no direct converter: torch.onnx exports it
    assert onnx_error(model, to_onnx(model, x[:1], dynamic_batch=True), x) <= 1e-5


class _Gain(torch.nn.Module):
    """A plugin-style op with weights: a per-feature gain."""

    def __init__(self, features: int):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.rand(features, features) + 0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.weight.t()


def test_an_op_with_weights_but_no_quantization_rule_is_refused() -> None:
    """Fake quantization must never skip a weighted op silently: its registration has to say how it quantizes."""
    from nasengine.kernels.describe import OpSpec
    from nasengine.kernels.fake_quant import fake_quantize
    from nasengine.kernels.static import check_static, register_static

    class Unruled(_Gain):
        pass

    register_static("TestUnruledGain", Unruled, lambda m: {"features": m.weight.shape[0]},
                    describe=lambda m, x, y: OpSpec("linear", m.weight.shape[1], m.weight.shape[0]))
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), Unruled(4)).eval()
    with pytest.raises(TypeError, match="'TestUnruledGain' holds weights but its registration gives no quantization"):
        check_static(model)
    with pytest.raises(TypeError, match="TestUnruledGain"):
        fake_quantize(model, ["1"], [torch.randn(8, 3)])


def test_a_weighted_op_registered_as_a_quantized_node_gets_int8_weights() -> None:
    from nasengine.kernels.describe import OpSpec
    from nasengine.kernels.fake_quant import fake_quantize, quantizable_paths
    from nasengine.kernels.quant_nodes import quantize_node
    from nasengine.kernels.static import check_static, register_static

    class Ruled(_Gain):
        pass

    register_static("TestRuledGain", Ruled, lambda m: {"features": m.weight.shape[0]}, quantize=quantize_node,
                    describe=lambda m, x, y: OpSpec("linear", m.weight.shape[1], m.weight.shape[0]))
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), Ruled(4)).eval()
    check_static(model)
    assert quantizable_paths(model) == ["0", "1"]  # the plugin's layer is a precision choice like a Linear
    quantized = fake_quantize(model, ["1"], [torch.randn(16, 3)])
    weight = quantized[1].op.weight
    scale = weight.abs().amax(dim=1, keepdim=True) / 127
    assert torch.allclose(weight / scale, torch.round(weight / scale), atol=1e-3)  # on the per-channel INT8 grid
    assert not torch.equal(weight, model[1].weight)


def test_a_weighted_leaf_without_a_cost_description_is_refused() -> None:
    from nasengine.kernels.quant_nodes import keep_float
    from nasengine.kernels.static import check_static, register_static

    class Undescribed(_Gain):
        pass

    register_static("TestUndescribedGain", Undescribed, lambda m: {"features": m.weight.shape[0]}, quantize=keep_float)
    with pytest.raises(TypeError, match="'TestUndescribedGain' holds weights but its registration gives no cost"):
        check_static(torch.nn.Sequential(Undescribed(2)))
    with pytest.raises(TypeError, match="LSTM is not a static export module"):
        check_static(torch.nn.Sequential(torch.nn.LSTM(2, 2)))


def test_a_residual_written_by_nasengine_0_1_still_loads() -> None:
    """0.1 wrote a residual's body beside its type; 0.2 writes it among its args: both rebuild the same module."""
    body = torch.nn.Sequential(torch.nn.Conv2d(2, 2, 3, padding=1), torch.nn.ReLU())
    block = Residual(body).eval()
    old = {"type": "Residual", "body": to_spec(body)}
    new = to_spec(block)
    assert new == {"type": "Residual", "args": {"body": to_spec(body)}}
    x = torch.randn(1, 2, 5, 5)
    for spec in (old, new):
        rebuilt = from_spec(spec).eval()
        rebuilt.load_state_dict(block.state_dict())
        assert torch.equal(rebuilt(x), block(x))
