"""Data-parallel supernet training on 2 CPU processes (gloo) against one process with the doubled batch.

What may differ between N ranks with batch B and one process with batch N*B, and how each test deals with it:
- BatchNorm batch statistics are per rank (no SyncBN): a rank normalises with the mean and variance of its own
  B samples. `test_two_ranks_equal_one_process_with_the_doubled_batch` therefore trains with BN normalising by
  its running statistics (BN layers kept in eval mode, on both sides): then everything else (data order,
  augmentation draws, sharding, subnet sampling, gradient averaging, clipping, AdamW) must agree to float
  rounding (the all-reduce sums in another order), which it checks step by step at 1e-5.
- dropout masks are drawn per rank: dropout is 0 in that comparison.
With real BN and dropout the ranks still hold identical weights at every step and identical models at the end,
and a crashed 2-rank run resumes onto the uninterrupted 2-rank trajectory (weights bit for bit).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from safetensors.torch import load_file
from torch import nn

from nasengine import supernets
from nasengine.tasks import get_task
from nasengine.search_spaces.storage import atomic_write
from nasengine.supernets.training import Checkpointing, Sandwich, TrainSettings, TrainHooks, train_supernet
from nasengine.supernets.training import step as training_loop  # where train_step draws its subnets
from nasengine.supernets.training.checkpoint import save_tensors
from tests.conftest import TINY

BATCH = 64  # per rank; one process uses 2 * BATCH (1,078 digits: 8 steps per epoch)


class Crash(Exception):
    pass


def build(dropout: float, frozen_bn: bool) -> supernets.Supernet:
    torch.manual_seed(0)
    net = supernets.create("ofa_mbv3_digits", **TINY, dropout=dropout)
    if frozen_bn:  # normalise by running statistics (identity at init), never by batch statistics
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.train = types.MethodType(lambda self, mode=True: nn.Module.train(self, False), m)
    return net


def run(out: Path, name: str, batch: int, dropout: float, frozen_bn: bool, epochs: int = 1,
        checkpoint_root: Path | None = None, crash_at: tuple[int, int] | None = None) -> None:
    """Train and record the per-step losses, the subnets of every step and the final state (rank-suffixed)."""
    net = build(dropout, frozen_bn)
    losses: list[float] = []
    archs: list[list[str]] = []
    sample = training_loop.step_archs

    def recording(space, rng, n_random):
        chosen = sample(space, rng, n_random)
        archs.append([space.key(a) for a in chosen])
        return chosen

    def on_step(epoch: int, step: int, loss: float) -> None:
        if (epoch, step) == crash_at:
            raise Crash
        losses.append(loss)

    training_loop.step_archs = recording
    try:
        train_supernet(net, Sandwich(), get_task("digits").train_data(batch, seed=0),
                       TrainSettings(epochs=epochs, seed=1, n_random=1),
                       Checkpointing(checkpoint_root, every_steps=3, every_seconds=None),
                       hooks=TrainHooks(on_step=on_step))
    except Crash:
        return
    finally:
        training_loop.step_archs = sample
    rank = dist.get_rank() if dist.is_initialized() else 0
    save_tensors(out / f"{name}.{rank}.safetensors", net.state_dict())
    atomic_write(out / f"{name}.{rank}.json", json.dumps({"losses": losses, "archs": archs}))


def worker(rank: int, out: Path) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{out / 'rendezvous'}", rank=rank, world_size=2)
    try:
        run(out, "exact", BATCH, 0.0, True)
        run(out, "real", BATCH, 0.1, False, checkpoint_root=out / "real-ckpt")
        run(out, "resumed", BATCH, 0.1, False, checkpoint_root=out / "resumed-ckpt", crash_at=(0, 5))
        run(out, "resumed", BATCH, 0.1, False, checkpoint_root=out / "resumed-ckpt")  # from step 3
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ddp")
    mp.start_processes(worker, args=(out,), nprocs=2, join=True, start_method="spawn")
    run(out, "exact-single", 2 * BATCH, 0.0, True)  # this process, one torch thread (conftest)
    return out


def read(out: Path, name: str, rank: int = 0) -> tuple[dict[str, torch.Tensor], dict]:
    return load_file(str(out / f"{name}.{rank}.safetensors")), json.loads((out / f"{name}.{rank}.json").read_text())


def test_two_ranks_equal_one_process_with_the_doubled_batch(results: Path) -> None:
    state, record = read(results, "exact")
    single_state, single = read(results, "exact-single")
    assert len(record["losses"]) == len(single["losses"]) == 1078 // (2 * BATCH)
    assert record["archs"] == single["archs"]
    assert record["losses"] == pytest.approx(single["losses"], rel=1e-5)
    for key, tensor in single_state.items():
        torch.testing.assert_close(state[key], tensor, rtol=1e-4, atol=1e-5, msg=key)


def test_ranks_sample_the_same_subnets_and_end_with_the_same_model(results: Path) -> None:
    for name in ("exact", "real", "resumed"):
        (state0, record0), (state1, record1) = read(results, name, 0), read(results, name, 1)
        assert record0["archs"] == record1["archs"]
        assert record0["losses"] == record1["losses"]  # averaged over ranks
        assert all(torch.equal(state0[k], state1[k]) for k in state0), name  # weights and BN statistics


def test_a_crashed_two_rank_run_resumes_onto_the_uninterrupted_trajectory(results: Path) -> None:
    real, real_record = read(results, "real")
    resumed, resumed_record = read(results, "resumed")
    # weights and optimizer follow bit for bit; BN running statistics were averaged over ranks at the
    # checkpoint instead of at the epoch end (the same average, rounded differently)
    for key, tensor in real.items():
        if "running_" in key:
            torch.testing.assert_close(resumed[key], tensor, rtol=1e-5, atol=1e-6, msg=key)
        else:
            assert torch.equal(resumed[key], tensor), key
    tail = resumed_record["losses"]
    assert tail == real_record["losses"][-len(tail):]


def test_torchrun_runs_the_train_command_unchanged(tmp_path: Path) -> None:
    torchrun = Path(sys.executable).with_name("torchrun")
    if not torchrun.exists():
        pytest.skip("torchrun is not installed beside this Python")
    out = tmp_path / "sn"
    sets = [a for k, v in TINY.items() for a in ("--set", f"{k}={json.dumps(v)}")]
    cmd = [str(torchrun), "--nproc_per_node", "2", "-m", "nasengine", "train", "ofa_mbv3_digits", *sets,
           "--budget-minutes", "0.0001", "--batch-size", "64", "--threads", "1", "--quiet", "--out", str(out)]
    result = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    marker = json.loads((out / "train.json").read_text())
    assert marker["status"] == "complete" and marker["identity"]["world_size"] == 2
    assert marker["identity"]["epochs"] == 1  # the ranks timed their steps together and agreed on rank 0's plan
    assert not (out / "checkpoints").exists()
    assert (out / "train_log.csv").read_text().count("\n") == 2
    supernets.load_supernet(out)


def test_shards_of_a_batch_together_are_the_one_process_batch() -> None:
    task = get_task("digits")
    whole = task.train_data(2 * BATCH, seed=4)
    shards = [task.train_data(BATCH, seed=4).shard(r, 2) for r in range(2)]
    assert whole.steps_per_epoch == shards[0].steps_per_epoch == shards[1].steps_per_epoch
    for (x, y), (x0, y0), (x1, y1) in zip(whole.batches(1), shards[0].batches(1), shards[1].batches(1)):
        assert torch.equal(torch.cat([x0, x1]), x) and torch.equal(torch.cat([y0, y1]), y)
    with pytest.raises(ValueError, match="global batch"):
        task.train_data(700, seed=0).shard(1, 2)
