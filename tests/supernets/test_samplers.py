"""Subnet samplers: uniform keeps the historical draws, cost-aware samplers cover every cost band, attentive ones
pick by the batch loss, the complexity shift follows lagging bands and resumes with its state, and ranking
candidates leaves the batch-norm statistics alone."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from nasengine import supernets
from nasengine.supernets.training import Checkpointing, Sandwich, TrainHooks, TrainSettings, train_supernet
from nasengine.supernets.training.loop import step_archs
from nasengine.supernets.training.samplers import (BANDS, SAMPLERS, ComplexityShift, frozen_norm_statistics,
                                                    get_sampler)
from nasengine.tasks import get_task
from tests.conftest import TINY


def tiny_net() -> supernets.Supernet:
    torch.manual_seed(0)
    return supernets.create("ofa_mbv3_digits", **TINY)


def bound(name: str, net: supernets.Supernet):
    sampler = get_sampler(name)
    sampler.bind(net.space, lambda a: float(net.cost(a).macs))
    return sampler


def test_uniform_sampler_draws_what_training_always_drew() -> None:
    space = tiny_net().space
    legacy = [step_archs(space, np.random.default_rng(3), 2) for _ in range(1)][0]
    drawn = step_archs(space, np.random.default_rng(3), 2, sampler=bound("uniform", tiny_net()))
    assert [space.key(a) for a in drawn] == [space.key(a) for a in legacy]


def test_cost_uniform_trains_the_ends_of_the_cost_range_more_often() -> None:
    net = tiny_net()
    cost = lambda a: float(net.cost(a).macs)  # noqa: E731
    rng = np.random.default_rng(0)
    uniform = [cost(net.space.validate({**net.space.sample(rng=rng), "resolution": 12})) for _ in range(600)]
    low, high = np.quantile(uniform, [0.1, 0.9])
    sampler = bound("cost-uniform", net)
    drawn = [cost(a) for a in sampler.draw(np.random.default_rng(1), 600, {"resolution": 12}, lambda a: 0.0)]
    assert all(net.space.validate(a)["resolution"] == 12 for a in sampler.draw(np.random.default_rng(2), 5,
                                                                              {"resolution": 12}, lambda a: 0.0))
    ends = lambda xs: np.mean([(x < low) or (x > high) for x in xs])  # noqa: E731
    assert ends(drawn) > 1.5 * ends(uniform)


@pytest.mark.parametrize("name, pick", [("attentive-best", min), ("attentive-worst", max)])
def test_attentive_samplers_pick_by_the_batch_score(name, pick) -> None:
    net = tiny_net()
    sampler = bound(name, net)
    scored: list[list[float]] = []

    def score(arch):
        value = float(net.cost(arch).params)
        scored[-1].append(value)
        return value

    for seed in range(5):
        scored.append([])
        (arch,) = sampler.draw(np.random.default_rng(seed), 1, {"resolution": 16}, score)
        assert float(net.cost(arch).params) == pick(scored[-1]) and len(scored[-1]) == 3


def test_complexity_shift_follows_the_lagging_band_and_keeps_its_state() -> None:
    net = tiny_net()
    sampler = bound("complexity-shift", net)
    assert np.allclose(sampler.band_weights(BANDS), 1 / BANDS)
    rng = np.random.default_rng(0)
    for _ in range(300):
        (arch,) = sampler.draw(rng, 1, {"resolution": 12}, lambda a: 0.0)
        band = sampler._drawn[net.space.key(arch)]
        sampler.observe(arch, 3.0 if band == 0 else 1.0)
    weights = sampler.band_weights(BANDS)
    assert weights[0] > 1.5 * weights[1] and weights.sum() == pytest.approx(1.0) and weights.min() >= 0.5 / BANDS
    copy = ComplexityShift()
    copy.bind(net.space, lambda a: 0.0)
    copy.load_state(sampler.state())
    assert np.allclose(copy.band_weights(BANDS), weights)


def test_ranking_candidates_leaves_batch_norm_statistics_alone() -> None:
    net = tiny_net()
    net.train()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    with frozen_norm_statistics(net):
        net(torch.randn(8, 1, 16, 16))
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in before.items())


@pytest.mark.parametrize("name", sorted(SAMPLERS.names()))
def test_every_sampler_trains_and_resumes_on_the_same_trajectory(tmp_path, name) -> None:
    data = get_task("digits").train_data(256, seed=0)
    settings = replace(TrainSettings(epochs=2, seed=1, n_random=1), sampler=name)
    reference = tiny_net()
    expected = train_supernet(reference, Sandwich(), data, settings)

    class Crash(Exception):
        pass

    def crash(epoch: int, step: int, loss: float) -> None:
        if (epoch, step) == (1, 2):
            raise Crash

    root = tmp_path / "ck"
    with pytest.raises(Crash):
        train_supernet(tiny_net(), Sandwich(), data, settings, Checkpointing(root, every_steps=1, every_seconds=None),
                       TrainHooks(on_step=crash))
    net = tiny_net()
    log = train_supernet(net, Sandwich(), data, settings, Checkpointing(root, every_steps=1, every_seconds=None))
    assert [r["loss"] for r in log] == [r["loss"] for r in expected]
    state = net.state_dict()
    assert all(torch.equal(v, state[k]) for k, v in reference.state_dict().items())
