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
                                                    extra=(("count", m.gain.numel()),)))
    model = torch.nn.Sequential(torch.nn.Linear(4, 6), Scale(6), torch.nn.ReLU()).eval()
    rebuilt = from_spec(to_spec(model))
    rebuilt.load_state_dict(model.state_dict())
    x = torch.randn(2, 4)
    assert torch.equal(rebuilt(x), model(x))
    layers = trace_layers(model, x[:1])
    assert [layer.spec.kind for layer in layers] == ["linear", "scale", "relu"]
    assert static_op(Scale).onnx is None  # no direct converter: torch.onnx exports it
    assert onnx_error(model, to_onnx(model, x[:1], dynamic_batch=True), x) <= 1e-5
