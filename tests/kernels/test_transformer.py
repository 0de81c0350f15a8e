"""Elastic transformer ops: a first-k slice computes what its static export computes, masks hide padding."""

from __future__ import annotations

import pytest
import torch

from nasengine.kernels.static import from_spec, to_spec
from nasengine.kernels.transformer import ElasticEncoderLayer, ElasticSelfAttention, attend


@pytest.mark.parametrize("norm_first", [True, False])
def test_sliced_layer_equals_its_static_export(norm_first: bool) -> None:
    torch.manual_seed(0)
    layer = ElasticEncoderLayer(64, 4, 16, 128, norm_first=norm_first).eval()
    for embed, heads, head_dim, hidden in [(64, 4, 16, 128), (48, 3, 8, 96), (16, 1, 4, 16)]:
        layer.set_active(embed, heads, head_dim, hidden)
        x, mask = torch.randn(2, 5, embed), torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
        static = layer.export()
        rebuilt = from_spec(to_spec(static))
        rebuilt.load_state_dict(static.state_dict())
        with torch.no_grad():
            expected = layer(x, mask)
            torch.testing.assert_close(static(x, mask), expected, atol=1e-6, rtol=0)
            torch.testing.assert_close(rebuilt.eval()(x, mask), expected, atol=1e-6, rtol=0)


def test_a_slice_uses_the_first_heads_and_the_first_channels_of_each() -> None:
    attn = ElasticSelfAttention(8, 2, 4)
    attn.set_active(8, 2, 2)
    assert attn._rows.tolist() == [0, 1, 4, 5]
    assert attn.export().query.weight.shape == (4, 8)
    with pytest.raises(ValueError, match="exceeds"):
        attn.set_active(8, 3, 2)


def test_masked_tokens_change_nothing_for_the_real_ones() -> None:
    torch.manual_seed(1)
    q, k, v = (torch.randn(1, 5, 8) for _ in range(3))
    mask = torch.tensor([[1, 1, 1, 0, 0]])
    padded = attend(q, k, v, 2, 4, mask)[:, :3]
    alone = attend(q[:, :3], k[:, :3], v[:, :3], 2, 4)
    torch.testing.assert_close(padded, alone, atol=1e-6, rtol=0)
