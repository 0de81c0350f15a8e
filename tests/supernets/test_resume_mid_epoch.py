"""Crash-safe training: checkpoints within an epoch, and a run killed at any moment continues on the very
trajectory of an uninterrupted one (bit-identical weights, one CPU thread)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from nasengine import supernets
from nasengine.tasks import get_task
from nasengine.supernets.training import Checkpointing, Sandwich, TrainSettings, TrainHooks, train_supernet
from nasengine.supernets.training.checkpoint import complete_checkpoints
from tests.conftest import TINY

SETTINGS = TrainSettings(epochs=2, seed=3, n_random=1)
BATCH = 128  # 1,078 training digits: 8 steps per epoch


class Crash(Exception):
    pass


def tiny_net() -> supernets.Supernet:
    torch.manual_seed(0)
    return supernets.create("ofa_mbv3_digits", **TINY)  # dropout 0.1: the torch generator matters too


@pytest.fixture(scope="module")
def data():
    return get_task("digits").train_data(BATCH, seed=0)  # with affine augmentation: the data generator matters


@pytest.fixture(scope="module")
def reference(data):
    """Uninterrupted, never checkpointed: the trajectory every resumed run must reproduce."""
    net = tiny_net()
    losses: list[float] = []
    log = train_supernet(net, Sandwich(), data, SETTINGS,
                         hooks=TrainHooks(on_step=lambda e, s, loss: losses.append(loss)))
    return net.state_dict(), log, losses


def assert_identical(state: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> None:
    assert state.keys() == expected.keys()
    different = [k for k in expected if not torch.equal(state[k], expected[k])]
    assert not different, f"{len(different)} tensors differ, e.g. {different[:3]}"


def crash_at(epoch: int, step: int):
    def hook(e: int, s: int, loss: float) -> None:
        if (e, s) == (epoch, step):
            raise Crash
    return hook


@pytest.mark.parametrize("crashes", [[(0, 4)], [(0, 2), (1, 0), (1, 6)], [(0, 0), (0, 5), (1, 3)]])
def test_crashes_mid_epoch_resume_on_the_same_trajectory(tmp_path, data, reference, crashes) -> None:
    expected_state, expected_log, expected_losses = reference
    root = tmp_path / "ckpt"
    resumed_at: list[int] = []
    for epoch, step in crashes:
        with pytest.raises(Crash):
            train_supernet(tiny_net(), Sandwich(), data, SETTINGS,
                           Checkpointing(root, every_steps=3, every_seconds=None),
                           hooks=TrainHooks(on_step=crash_at(epoch, step), on_resume=resumed_at.append))
        assert len(complete_checkpoints(root)) <= 1  # only the newest is kept
    losses: list[float] = []
    net = tiny_net()  # a fresh process rebuilds the net from scratch
    log = train_supernet(net, Sandwich(), data, SETTINGS,
                         Checkpointing(root, every_steps=3, every_seconds=None),
                         hooks=TrainHooks(on_step=lambda e, s, loss: losses.append(loss), on_resume=resumed_at.append))
    assert_identical(net.state_dict(), expected_state)
    assert [row["loss"] for row in log] == [row["loss"] for row in expected_log]
    assert losses == expected_losses[-len(losses):]  # the steps run after the last resume, loss for loss
    assert all(p % 8 in (0, 3, 6) for p in resumed_at)  # resumed at checkpoint positions only


def test_checkpoint_holds_position_and_every_generator(tmp_path, data) -> None:
    root = tmp_path / "ckpt"
    with pytest.raises(Crash):
        train_supernet(tiny_net(), Sandwich(), data, SETTINGS,
                       Checkpointing(root, every_steps=3, every_seconds=None), hooks=TrainHooks(on_step=crash_at(1, 4)))
    (only,) = complete_checkpoints(root)
    assert only.name == "epoch-0001-step-0000003"  # counting restarts at the epoch end's checkpoint
    state = json.loads((only / "state.json").read_text())
    assert (state["epoch"], state["step"], len(state["epoch_losses"]), len(state["log"])) == (1, 3, 3, 1)
    assert state["sampler_rng"]["bit_generator"] == "PCG64"
    assert set(load_file(str(only / "rng.safetensors"))) == {"torch.0", "data"}
    assert not [p for p in root.iterdir() if p.name.startswith(".")]  # no temporary leftovers


def test_data_without_resume_support_replays_the_skipped_batches(tmp_path, data, reference) -> None:
    class PlainData:  # the EpochData protocol only: batches(epoch)
        steps_per_epoch = data.steps_per_epoch

        def batches(self, epoch):
            return iter(data.batches(epoch))

    root = tmp_path / "ckpt"
    with pytest.raises(Crash):
        train_supernet(tiny_net(), Sandwich(), PlainData(), SETTINGS,
                       Checkpointing(root, every_steps=2, every_seconds=None), hooks=TrainHooks(on_step=crash_at(1, 5)))
    net = tiny_net()
    train_supernet(net, Sandwich(), PlainData(), SETTINGS, Checkpointing(root, every_steps=2, every_seconds=None))
    assert_identical(net.state_dict(), reference[0])


def test_leftovers_of_a_killed_write_are_ignored_and_cleaned(tmp_path, data, reference) -> None:
    root = tmp_path / "ckpt"
    with pytest.raises(Crash):
        train_supernet(tiny_net(), Sandwich(), data, SETTINGS,
                       Checkpointing(root, every_steps=3, every_seconds=None), hooks=TrainHooks(on_step=crash_at(0, 4)))
    (root / ".epoch-0000-step-0000006.abc123").mkdir()  # a checkpoint directory killed while being written
    (root / ".epoch-0000-step-0000006.abc123" / "model.safetensors").write_bytes(b"partial")
    (root / "epoch-0001-step-0000007").mkdir()  # a partial directory of a non-atomic writer, "newer" than all
    net = tiny_net()
    train_supernet(net, Sandwich(), data, SETTINGS, Checkpointing(root, every_steps=3, every_seconds=None))
    assert_identical(net.state_dict(), reference[0])
    assert [p.name for p in root.iterdir()] == ["epoch-0001"]


# --- the real thing: SIGKILL the command line at random moments, run it again ------------------------------

def _train_command(out: Path, every: int) -> list[str]:
    """`python -m nasengine train ... --checkpoint-every N` once the CLI has the option; until then the same
    request through nasengine.training (the CLI maps its options onto TrainRequest one to one)."""
    import argparse

    from nasengine.cli.main import build_parser

    sets = [a for k, v in TINY.items() for a in ("--set", f"{k}={json.dumps(v)}")]
    commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    if any("--checkpoint-every" in a.option_strings for a in commands.choices["train"]._actions):
        return [sys.executable, "-m", "nasengine", "train", "ofa_mbv3_digits", *sets, "--epochs", "2",
                "--batch-size", "64", "--out", str(out), "--threads", "1", "--quiet", "--checkpoint-every", str(every)]
    code = ("import sys, torch; from pathlib import Path; from nasengine.training import TrainRequest, train; "
            "torch.set_num_threads(1); "
            f"train(TrainRequest('ofa_mbv3_digits', Path(sys.argv[1]), epochs=2, batch_size=64, progress=False, "
            f"overrides={TINY!r}, checkpoint_every={every}))")
    return [sys.executable, "-c", code, str(out)]


KILLS = 5


def _newest(root: Path) -> str | None:
    found = complete_checkpoints(root)
    return found[-1].name if found else None


def test_sigkill_at_random_moments_then_rerun_gives_the_uninterrupted_model(tmp_path) -> None:
    """Each run is killed at a seeded random moment after it has written a checkpoint of its own (so every
    run makes progress and the kills land anywhere: mid-step, mid-write, mid-evaluation), then run again."""
    from nasengine.training.run import TrainRequest, train

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = tmp_path / "killed"
    pick = random.Random(7)
    kills, started = 0, time.monotonic()
    while True:
        before = _newest(out / "checkpoints")
        proc = subprocess.Popen(_train_command(out, 2), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        while proc.poll() is None and _newest(out / "checkpoints") in (before, None):
            time.sleep(0.01)
        if proc.poll() is None:
            time.sleep(pick.uniform(0.0, 0.4))
        if proc.poll() is not None or kills == KILLS:
            assert proc.wait() == 0, proc.communicate()[1][-2000:]
            break  # finished on its own, or left to finish
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
    print(f"{kills} kills, {time.monotonic() - started:.1f}s")
    assert kills >= 5
    assert (out / "config.json").exists() and not (out / "checkpoints").exists()
    assert (out / "train_log.csv").read_text().count("\n") == 3

    reference = tmp_path / "reference"  # uninterrupted, in this process (one torch thread, see conftest)
    train(TrainRequest("ofa_mbv3_digits", reference, epochs=2, batch_size=64, progress=False, overrides=dict(TINY)))
    assert_identical(load_file(str(out / "model.safetensors")), load_file(str(reference / "model.safetensors")))


def test_epoch_batches_resume_from_a_generator_state(data) -> None:
    epoch = list(data.batches(2))
    it = data.batches(2)
    for _ in range(3):
        next(it)
    resumed = list(data.batches(2, start_step=3, generator_state=it.generator_state()))
    replayed = list(data.batches(2, start_step=3))
    assert len(resumed) == len(replayed) == len(epoch) - 3
    for (x, y), (xr, yr), (xp, yp) in zip(epoch[3:], resumed, replayed):
        assert torch.equal(x, xr) and torch.equal(y, yr) and torch.equal(x, xp) and torch.equal(y, yp)
