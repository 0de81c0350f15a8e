"""Policy genes: one per quantizable layer, active exactly when the layer is, split back off an arch."""

from __future__ import annotations

import pytest

from nasengine.search_spaces import Choice, Space
from nasengine.search_spaces.choices import Condition
from nasengine.search_spaces.quantization import QuantizableLayer, int8_layers, split_policy, uniform_policy, \
    with_policy_genes


def _space() -> Space:
    return Space([Choice("depth", [1, 2]), Choice("b1.kernel", [3, 5], active_if=Condition("depth", ">", 1))])


LAYERS = [QuantizableLayer("stem"), QuantizableLayer("blocks.b1", Condition("depth", "in", (2,)))]


def test_policy_genes_follow_their_layers() -> None:
    space = with_policy_genes(_space(), LAYERS)
    assert space.names[-2:] == ["q.stem", "q.blocks.b1"]
    assert not space.gene("q.stem").ordered and space.gene("q.stem").tag == "quant"
    shallow = space.validate({"depth": 1, "q.stem": "int8"})
    assert shallow["q.blocks.b1"] is None
    deep = space.validate({"depth": 2, "b1.kernel": 5, "q.stem": "fp32", "q.blocks.b1": "int8"})
    network, policy = split_policy(deep)
    assert network == {"depth": 2, "b1.kernel": 5}
    assert policy == {"stem": "fp32", "blocks.b1": "int8"} and int8_layers(policy) == ["blocks.b1"]
    assert split_policy(shallow)[1] == {"stem": "int8"}
    assert space.size == 2 * 1 + 1 * 2 * 2 * 2  # depth 1: stem only; depth 2: kernel, stem, b1
    assert Space.from_dict(space.to_dict()).to_dict() == space.to_dict()  # conditions with sets persist


def test_bad_precisions_are_refused() -> None:
    with pytest.raises(ValueError, match="precisions"):
        with_policy_genes(_space(), LAYERS, ("fp32", "int4"))
    with pytest.raises(ValueError, match="precision"):
        uniform_policy(["stem"], "fp16")
    with pytest.raises(ValueError, match="q.stem"):
        with_policy_genes(_space(), LAYERS).validate({"depth": 1, "q.stem": "int4"})
