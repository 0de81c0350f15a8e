"""Nested members (SortedNet / MatFormer): each contains the previous one in every dimension."""

from __future__ import annotations

import numpy as np
import pytest

from nasengine import supernets
from nasengine.search_spaces.samplers import nested_archs
from nasengine.search_spaces.quantization import QuantizableLayer, with_policy_genes
from nasengine.supernets.training.loop import step_archs
from nasengine.supernets.training.recipes import get_recipe
from tests.conftest import TINY


def test_members_are_nested_and_grow_in_cost() -> None:
    net = supernets.create("ofa_mbv3_digits", **TINY)
    members = nested_archs(net.space)
    assert members[0] == net.space.min() and members[-1] == net.space.max() and len(members) == 4
    costs = [net.cost(m).macs for m in members]
    assert costs == sorted(costs) and len(set(costs)) == len(costs)
    for small, large in zip(members, members[1:]):
        for gene in net.space.genes:
            if small[gene.name] is not None:  # active in the smaller member: at least as large in the next
                assert large[gene.name] is not None and gene.index(large[gene.name]) >= gene.index(small[gene.name])
    with pytest.raises(ValueError):
        nested_archs(net.space, 1)


def test_members_keep_every_layer_in_fp32() -> None:
    net = supernets.create("ofa_mbv3_digits", **TINY)
    space = with_policy_genes(net.space, [QuantizableLayer("stem")])
    assert all(m["q.stem"] == "fp32" for m in nested_archs(space))


def test_sorted_training_steps_only_train_members() -> None:
    net = supernets.create("ofa_mbv3_digits", **TINY)
    (phase,) = get_recipe("sorted").phases(net.space, 2)
    assert phase.members is not None
    keys = {net.space.key({**m, "resolution": r}) for m in phase.members for r in net.space.gene("resolution").options}
    rng = np.random.default_rng(0)
    for _ in range(20):
        archs = step_archs(phase.space, rng, 1, members=phase.members)
        assert archs[0]["s0.depth"] == phase.members[-1]["s0.depth"]  # the largest member teaches
        assert len({a["resolution"] for a in archs}) == 1  # one resolution per step, as in the sandwich
        assert all(net.space.key(a) in keys for a in archs)
