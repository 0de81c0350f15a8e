import pytest
import torch

from nasengine import supernets
from nasengine.tasks import get_task
from nasengine.search_spaces.builtin import elastic_mobilenet_space
from nasengine.supernets.training import (Checkpointing, ProgressiveShrinking, Sandwich, TrainSettings, TrainHooks,
                                          train_supernet)
from nasengine.supernets.training.loop import step_archs


class Crash(Exception):
    pass


def tiny_net(tiny_kwargs):
    torch.manual_seed(0)
    return supernets.create("ofa_mbv3_digits", **tiny_kwargs)


def test_resumed_training_equals_uninterrupted_training(tmp_path, tiny_kwargs) -> None:
    data = get_task("digits").train_data(128, seed=0)
    settings = TrainSettings(epochs=3, seed=0)
    reference = tiny_net(tiny_kwargs)
    log_ref = train_supernet(reference, Sandwich(), data, settings, Checkpointing(tmp_path / "ref"))

    def crash_in_epoch_2(epoch: int, step: int, loss: float) -> None:
        if epoch == 2 and step == 1:
            raise Crash

    interrupted = tiny_net(tiny_kwargs)
    with pytest.raises(Crash):
        train_supernet(interrupted, Sandwich(), data, settings,
                       Checkpointing(tmp_path / "ckpt"), hooks=TrainHooks(on_step=crash_in_epoch_2))
    resumed = tiny_net(tiny_kwargs)  # a fresh process would rebuild the net from scratch
    log = train_supernet(resumed, Sandwich(), data, settings, Checkpointing(tmp_path / "ckpt"))
    assert [row["epoch"] for row in log] == [0, 1, 2]
    assert [row["loss"] for row in log] == pytest.approx([row["loss"] for row in log_ref], rel=1e-5)
    for name, tensor in reference.state_dict().items():
        torch.testing.assert_close(resumed.state_dict()[name], tensor, rtol=1e-5, atol=1e-6)


def test_sandwich_step_shares_resolution_and_keeps_extremes() -> None:
    import numpy as np

    space = elastic_mobilenet_space(2, depths=(1, 2), resolutions=(8, 12, 16))
    rng = np.random.default_rng(0)
    for _ in range(10):
        archs = step_archs(space, rng, n_random=2)
        assert len({a["resolution"] for a in archs}) == 1
        largest, smallest = archs[0], archs[1]
        assert largest == {**space.max(), "resolution": largest["resolution"]}
        assert smallest == {**space.min(), "resolution": largest["resolution"]}


def test_progressive_shrinking_phases_open_one_dimension_at_a_time() -> None:
    space = elastic_mobilenet_space(2, depths=(1, 2), resolutions=(8, 12))
    phases = ProgressiveShrinking().phases(space, 8)
    assert [p.name for p in phases] == ["full", "+kernel", "+depth", "+expand"]
    assert sum(p.epochs for p in phases) == 8
    sizes = [p.space.size for p in phases]
    assert sizes[0] == 2 and sizes == sorted(sizes) and sizes[-1] == space.size
    assert phases[1].space.max() == space.max()
    assert {a["s0.b0.kernel"] for a in (phases[0].space.sample(seed=s) for s in range(20))} == {7}
    with pytest.raises(ValueError, match="at least 4 epochs"):
        ProgressiveShrinking().phases(space, 3)


def test_progressive_shrinking_trains(tiny_kwargs) -> None:
    net = tiny_net(tiny_kwargs)
    log = train_supernet(net, ProgressiveShrinking(), get_task("digits").train_data(256, 0), TrainSettings(epochs=4))
    assert [row["phase"] for row in log] == ["full", "+kernel", "+depth", "+expand"]
    assert log[-1]["loss"] < log[0]["loss"]


def test_single_arch_recipe_trains_exactly_one_subnet() -> None:
    from nasengine.supernets.training import SingleArch

    space = elastic_mobilenet_space(2, depths=(1, 2), resolutions=(8, 12))
    arch = space.sample(seed=3)
    phase, = SingleArch(arch).phases(space, 5)
    assert phase.space.size == 1 and phase.space.max() == arch and phase.epochs == 5


def test_per_subnet_resolution_keeps_the_extremes_at_their_own_resolution() -> None:
    import numpy as np

    from nasengine import supernets
    from nasengine.supernets.training.loop import step_archs
    from tests.conftest import TINY

    space = supernets.create("ofa_mbv3_digits", **TINY).space
    seen = set()
    for seed in range(20):
        largest, smallest, *others = step_archs(space, np.random.default_rng(seed), 2, own_resolution=True)
        assert largest["resolution"] == max(TINY["resolutions"]) and smallest["resolution"] == min(TINY["resolutions"])
        seen |= {a["resolution"] for a in others}
    assert len(seen) > 1  # the random subnets draw their own
    shared = step_archs(space, np.random.default_rng(0), 2)
    assert len({a["resolution"] for a in shared}) == 1  # the default: one resolution per step


def test_training_with_per_subnet_resolution_runs_every_subnet_at_its_own_input_size() -> None:
    from dataclasses import replace

    import torch

    from nasengine import supernets
    from nasengine.supernets.training import Sandwich, TrainSettings, train_supernet
    from nasengine.tasks import get_task
    from tests.conftest import TINY

    torch.manual_seed(0)
    net = supernets.create("ofa_mbv3_digits", **TINY)
    sizes: list[tuple[int, ...]] = []
    hook = net.register_forward_pre_hook(lambda module, args: sizes.append(tuple(args[0].shape[-2:])))
    settings = replace(TrainSettings(epochs=1, n_random=1, seed=0), resolution="per-subnet")
    train_supernet(net, Sandwich(), get_task("digits").train_data(512, seed=0), settings)
    hook.remove()
    assert sizes[0] == (16, 16) and sizes[1] == (8, 8)  # largest, then smallest, each at its own
