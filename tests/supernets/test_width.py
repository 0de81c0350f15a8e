"""Elastic stage width of the once-for-all MobileNetV3: genes, extraction, costs, channel sorting and training."""

import json

import numpy as np
import pytest
import torch

from nasengine import supernets
from nasengine.supernets.base import Supernet
from nasengine.supernets.training import Sandwich, StepRule, train_step
from tests.helpers import perturb

# stage 1 continues stage 0's stream (stride 1, equal widths); stage 2 is stride 1 but wider
WIDE = {"stem_width": 8, "stage_widths": [16, 16, 24], "stage_strides": [2, 1, 1],
        "stage_acts": ["relu", "hswish", "hswish"], "stage_se": [False, True, True], "head_width": 32,
        "depths": [1, 2], "kernels": [3, 5], "expands": [2, 4], "resolutions": [8, 12]}


def width_net(seed: int = 0, **overrides) -> Supernet:
    torch.manual_seed(seed)
    net = supernets.create("ofa_mbv3", in_channels=1, **{**WIDE, **overrides})
    perturb(net)
    return net.eval()


@pytest.fixture(scope="module")
def net() -> Supernet:
    return width_net()


def test_width_genes_follow_depth_cheapest_first(net: Supernet) -> None:
    names = net.space.names
    for i in range(3):
        assert names[names.index(f"s{i}.depth") + 1] == f"s{i}.width"
        gene = net.space.gene(f"s{i}.width")
        assert gene.options == (0.5, 0.75, 1.0) and gene.tag == "width"
    assert net.config["widths"] == [0.5, 0.75, 1.0]


def test_config_rebuilds_the_width_elastic_supernet(net: Supernet) -> None:
    again = supernets.create(net.name, **json.loads(json.dumps(net.config)))
    again.load_state_dict(net.state_dict())
    assert again.space.to_dict() == net.space.to_dict()
    narrow = supernets.create("ofa_mbv3", in_channels=1, widths=[1.0], **WIDE)
    assert not narrow.space.genes_tagged("width")


def test_width_sets_first_k_stage_channels(net: Supernet) -> None:
    arch = {**net.space.max(), "s0.width": 0.5, "s2.width": 0.75}
    net.set_active(arch)
    assert [net.stage_width(arch, i) for i in range(3)] == [8, 16, 24]
    assert [b.active_out for b in net.stages[0]] == [8, 8]
    assert net.stages[1][0].active_in == 8 and net.head.conv.active_in == 24
    net.set_active(net.space.max())


@torch.no_grad()
def test_extracted_subnets_match_the_supernet_for_random_width_archs(net: Supernet) -> None:
    worst = 0.0
    archs = [net.space.sample(seed=s) for s in range(20)] + [net.space.min(), net.space.max()]
    for arch in archs:
        x = net.example_input(arch, batch=3)
        net.set_active(arch)
        static = net.extract(arch)
        worst = max(worst, float((net(x) - static(x)).abs().max()))
        assert net.cost(arch).params == sum(p.numel() for p in static.parameters())
        for layer in net.layer_modules(arch):
            assert layer.spec.params == sum(p.numel() for p in layer.module.parameters())
    assert worst <= 1e-5


def test_narrower_stages_cost_less(net: Supernet) -> None:
    wide = net.space.max()
    narrow = {**wide, **{f"s{i}.width": 0.5 for i in range(3)}}
    assert net.cost(narrow).params < net.cost(wide).params
    assert net.cost(narrow).macs < net.cost(wide).macs


@torch.no_grad()
@pytest.mark.parametrize("overrides", [{}, {"stem_stride": 1, "stem_width": 16, "stage_strides": [1, 1, 2]},
                                       {"expands": [1]}])
def test_width_sorting_keeps_the_max_subnet_and_orders_stage_channels(overrides: dict) -> None:
    net = width_net(seed=1, **overrides)
    for p in net.parameters():  # make every channel's importance distinct and unsorted
        p.add_(0.01 * torch.randn_like(p))
    arch, narrow = net.space.max(), {**net.space.max(), **{f"s{i}.width": 0.5 for i in range(3)}}
    x = net.example_input(arch, batch=4)
    net.set_active(narrow)
    narrow_before = net(x)
    net.set_active(arch)
    before = net(x)
    net.prepare_phase({"width"})
    torch.testing.assert_close(net(x), before, rtol=0, atol=1e-5)
    net.set_active(narrow)
    assert not torch.allclose(net(x), narrow_before, atol=1e-3)  # narrow subnets now keep other channels
    stage_blocks = {id(b) for stage in net.stages for b in stage}
    for producers, consumers in net._channel_streams():
        if any(id(p) in stage_blocks for p in producers):
            importance = torch.stack([c.input_importance() for c in consumers]).sum(0)
            assert torch.all(importance[:-1] >= importance[1:])


def test_stream_joins_stages_linked_by_a_full_width_residual(net: Supernet) -> None:
    s0, s1, s2 = net.stages
    producers, consumers = next(s for s in net._channel_streams() if s0[0] in s[0])
    assert producers == [s0[0], s0[1], s1[0], s1[1]]  # s1.b0 has stride 1 and 16 -> 16 channels
    assert consumers == [s0[1], s1[0], s1[1], s2[0]]  # s2.b0 widens 16 -> 24: a new stream


def test_width_elastic_net_trains_one_sandwich_step() -> None:
    from nasengine.tasks import get_task

    net = width_net(seed=2).train()
    phase = Sandwich().phases(net.space, 1)[0]
    assert "width" in phase.tags
    net.prepare_phase(set(phase.tags))
    x, y = next(iter(get_task("digits").train_data(32, seed=0).batches(0)))
    net.zero_grad()
    loss = train_step(net, x, y, phase, np.random.default_rng(0), StepRule(2, 0.1, 1.0))
    assert np.isfinite(loss)
    grad = net.stages[0][0].project.conv.weight.grad
    assert grad is not None and grad.abs().sum() > 0


def test_progressive_shrinking_opens_width_last() -> None:
    from nasengine.search_spaces.builtin import elastic_mobilenet_space
    from nasengine.supernets.training import ProgressiveShrinking

    space = elastic_mobilenet_space(2, depths=(1, 2), resolutions=(8, 12), widths=(0.5, 1.0))
    phases = ProgressiveShrinking().phases(space, 5)
    assert [p.name for p in phases] == ["full", "+kernel", "+depth", "+expand", "+width"]
    assert {a["s1.width"] for a in (phases[3].space.sample(seed=s) for s in range(10))} == {1.0}
    assert "width" in phases[4].tags and phases[4].space.size == space.size
