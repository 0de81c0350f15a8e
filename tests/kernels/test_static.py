import json

import pytest
import torch
from torch import nn

from kernels.static import GlobalAvgPool, Residual, SqueezeExcite, from_spec, to_spec


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
