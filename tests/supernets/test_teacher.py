"""Teacher-first training: the teacher phase is exactly the largest subnet trained alone, the frozen teacher stays
fixed while the supernet trains, every subnet distils from it, and a run killed after the teacher phase resumes
on the same trajectory."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from nasengine import supernets
from nasengine.supernets.training import (Checkpointing, Sandwich, SingleArch, TrainHooks, TrainSettings,
                                          train_supernet)
from nasengine.supernets.training.loop import StepRule, train_step
from nasengine.supernets.training.recipes import Phase
from nasengine.supernets.training.teacher import TEACHER_FILE, FrozenTeacher
from nasengine.tasks import get_task
from tests.conftest import TINY

SETTINGS = TrainSettings(epochs=1, teacher_epochs=1, seed=5, n_random=1)
BATCH = 128


class Crash(Exception):
    pass


def tiny_net() -> supernets.Supernet:
    torch.manual_seed(0)
    return supernets.create("ofa_mbv3_digits", **TINY)


@pytest.fixture(scope="module")
def data():
    return get_task("digits").train_data(BATCH, seed=0)


@pytest.fixture(scope="module")
def reference(data):
    net = tiny_net()
    log = train_supernet(net, Sandwich(), data, SETTINGS)
    return net.state_dict(), log


def test_the_teacher_phase_is_the_largest_subnet_trained_alone(tmp_path, data) -> None:
    teacher_first, alone = tiny_net(), tiny_net()
    root = tmp_path / "ck"
    log = train_supernet(teacher_first, Sandwich(), data, SETTINGS, Checkpointing(root))
    assert [row["phase"] for row in log] == ["teacher", "sandwich"]
    train_supernet(alone, SingleArch(), data, replace(SETTINGS, teacher_epochs=0))
    kept = load_file(str(root / TEACHER_FILE))
    expected = alone.extract(alone.space.max()).state_dict()
    assert kept.keys() == expected.keys()
    assert all(torch.equal(kept[k], expected[k]) for k in expected)  # bit for bit: one thread, same seeds
    # ... and the supernet trained on from it, so its largest subnet is no longer the teacher
    now = teacher_first.extract(teacher_first.space.max()).state_dict()
    assert any(not torch.equal(now[k], expected[k]) for k in expected if now[k].is_floating_point())


def test_a_run_killed_after_the_teacher_phase_resumes_on_the_same_trajectory(tmp_path, data, reference) -> None:
    expected_state, expected_log = reference
    root = tmp_path / "ck"

    def crash(epoch: int, step: int, loss: float) -> None:
        if (epoch, step) == (1, 3):
            raise Crash

    with pytest.raises(Crash):
        train_supernet(tiny_net(), Sandwich(), data, SETTINGS, Checkpointing(root, every_steps=2, every_seconds=None),
                       TrainHooks(on_step=crash))
    net = tiny_net()
    log = train_supernet(net, Sandwich(), data, SETTINGS, Checkpointing(root, every_steps=2, every_seconds=None))
    state = net.state_dict()
    assert all(torch.equal(state[k], expected_state[k]) for k in expected_state)
    assert [r["loss"] for r in log] == [r["loss"] for r in expected_log]
    (root / TEACHER_FILE).unlink()  # without the kept teacher a resume cannot continue: it says so
    with pytest.raises(ValueError, match="teacher"):
        train_supernet(tiny_net(), Sandwich(), data, replace(SETTINGS, epochs=2), Checkpointing(root))


def test_every_subnet_distils_from_the_fixed_teacher(data) -> None:
    net, other = tiny_net(), tiny_net()
    with torch.no_grad():
        for p in other.parameters():
            p.mul_(1.5)
    teacher = FrozenTeacher.largest_of(other)
    frozen = {k: v.clone() for k, v in teacher.module.state_dict().items()}
    x, y = next(iter(data.batches(0)))
    phase = Phase("sandwich", 1, net.space, frozenset())
    losses = {}
    for kd_weight in (0.0, 1.0):
        net.zero_grad()
        train_step(net, x, y, phase, np.random.default_rng(0), StepRule(1, 0.1, kd_weight, 2.0, teacher))
        losses[kd_weight] = [p.grad.clone() for p in net.parameters() if p.grad is not None]
    # the teacher's targets change the largest subnet's gradients too (in-place distillation leaves them alone)
    assert any(not torch.allclose(a, b) for a, b in zip(losses[0.0], losses[1.0]))
    assert all(torch.equal(v, teacher.module.state_dict()[k]) for k, v in frozen.items())
    assert not any(p.requires_grad for p in teacher.module.parameters())


def test_settings_identity_unchanged_without_a_teacher() -> None:
    assert "teacher_epochs" not in TrainSettings().to_dict() and "kd_temperature" not in TrainSettings().to_dict()
    assert TrainSettings(teacher_epochs=3, kd_temperature=2.0).to_dict()["teacher_epochs"] == 3
    with pytest.raises(ValueError):
        TrainSettings(kd_temperature=0.0)
    with pytest.raises(ValueError, match="either"):
        train_supernet(tiny_net(), Sandwich(), None, SETTINGS, teacher=FrozenTeacher.largest_of(tiny_net()))


def test_the_teacher_phase_and_the_recipe_each_have_their_own_schedule() -> None:
    from nasengine.supernets.training.loop import _schedule

    rate = _schedule(TrainSettings(epochs=2, teacher_epochs=2, lr=1e-3, teacher_lr=4e-3, warmup_epochs=1), 10)
    teacher, recipe = [rate(s) for s in range(20)], [rate(s) for s in range(20, 40)]
    assert max(teacher) == pytest.approx(4e-3) and max(recipe) == pytest.approx(1e-3)
    assert teacher[9] == pytest.approx(4e-3) and recipe[0] == pytest.approx(1e-4)  # each warms up again
    assert teacher[-1] < 1e-4 and recipe[-1] < 3e-5  # and decays to (almost) nothing
