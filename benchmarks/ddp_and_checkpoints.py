"""Data-parallel step time, checkpoint overhead and the time a SIGKILL costs, for `nasengine train`.

1. DDP: median sandwich-step time of the embedded job's supernet (ofa_mbv3_digits, default size) at the same
   global batch, 1 process vs 2 processes (gloo, one torch thread each), plus 1 process with 2 threads.
2. Checkpoint overhead: seconds per mid-epoch checkpoint write (model, AdamW state, generator states;
   fsynced, atomic), and that as a share of the interval's work (the default interval: 200 steps or 120 s,
   whichever comes first, and a short one of 10 steps).
3. Time lost per kill: a `nasengine train` job (as a subprocess, checkpoint every K steps) killed with
   SIGKILL at random moments and run again, against the same job uninterrupted: wall-clock lost per kill,
   split into the restart (process start, imports, data, checkpoint load) and redone work.

    python benchmarks/ddp_and_checkpoints.py [--steps 5] [--batch 64] [--kills 2] [--every 4]

Prints a markdown table. Timings on a shared machine are noisy: read the ratios, not the third digit.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from nasengine import supernets
from nasengine.tasks import get_task
from nasengine.search_spaces.storage import atomic_write
from nasengine.supernets.training import Checkpointing, Sandwich, TrainSettings, TrainHooks, train_supernet
from nasengine.supernets.training.checkpoint import complete_checkpoints
from nasengine.supernets.training.loop import CHECKPOINT_EVERY_SECONDS, CHECKPOINT_EVERY_STEPS, _save

FAMILY = "ofa_mbv3_digits"


def _step_times(batch: int, steps: int, checkpoint_root: Path | None = None) -> list[float]:
    """Seconds of each training step (after the first two, which warm up) of the default supernet."""
    torch.manual_seed(0)
    net = supernets.create(FAMILY)
    data = get_task("digits").train_data(batch, seed=0)
    epochs = -(-(steps + 2) // data.steps_per_epoch)
    stamps: list[float] = []
    train_supernet(net, Sandwich(), data, TrainSettings(epochs=epochs, n_random=1),
                   Checkpointing(checkpoint_root, every_steps=None, every_seconds=None),
                   hooks=TrainHooks(on_step=lambda e, s, loss: stamps.append(time.perf_counter())))
    return list(np.diff(stamps)[2:2 + steps])


def _ddp_worker(rank: int, rendezvous: str, batch: int, steps: int, result: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{rendezvous}", rank=rank, world_size=2)
    try:
        times = _step_times(batch, steps)
        if rank == 0:
            atomic_write(result, " ".join(map(str, times)))  # read back by the parent process
    finally:
        dist.destroy_process_group()


def ddp_rows(global_batch: int, steps: int) -> list[tuple[str, float]]:
    rows = []
    for threads in (1, 2):
        torch.set_num_threads(threads)
        rows.append((f"1 process x {threads} thread{'s' if threads > 1 else ''}, batch {global_batch}",
                     statistics.median(_step_times(global_batch, steps if threads == 1 else max(2, steps // 2)))))
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        result = os.path.join(tmp, "times")
        mp.start_processes(_ddp_worker, args=(os.path.join(tmp, "rendezvous"), global_batch // 2, steps, result),
                           nprocs=2, join=True, start_method="spawn")
        times = [float(t) for t in Path(result).read_text().split()]
    rows.append((f"2 processes x 1 thread, batch {global_batch // 2} each", statistics.median(times)))
    return rows


def checkpoint_cost(repeats: int = 5) -> tuple[float, float, int]:
    """Median seconds per mid-epoch checkpoint write of the default supernet after a few steps, its size."""
    torch.set_num_threads(1)
    torch.manual_seed(0)
    net = supernets.create(FAMILY)
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-3)
    x = torch.randn(8, 1, 8, 8)
    net(x).sum().backward()
    optimizer.step()  # AdamW moments exist, as in any checkpoint but the first
    rng = np.random.default_rng(0)
    settings = TrainSettings()
    with tempfile.TemporaryDirectory() as tmp:
        seconds = []
        for i in range(repeats):
            started = time.perf_counter()
            _save(Path(tmp), net, optimizer, settings, [], 0, i + 1, {"sampler_rng": rng.bit_generator.state},
                  torch.Generator().get_state(), rng)
            seconds.append(time.perf_counter() - started)
        size = sum(f.stat().st_size for f in complete_checkpoints(Path(tmp))[-1].iterdir())
    params = sum(p.numel() for p in net.parameters())
    return statistics.median(seconds), size / 1e6, params


def _train_command(out: Path, every: int, epochs: int, batch: int) -> list[str]:
    code = ("import sys, torch; from pathlib import Path; from nasengine.training import TrainRequest, train; "
            "torch.set_num_threads(1); "
            f"train(TrainRequest({FAMILY!r}, Path(sys.argv[1]), epochs={epochs}, batch_size={batch}, "
            f"progress=False, checkpoint_every={every}))")
    return [sys.executable, "-c", code, str(out)]


def kill_cost(kills: int, every: int, epochs: int, batch: int, seed: int = 0) -> dict[str, float]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        subprocess.run(_train_command(Path(tmp) / "full", every, epochs, batch), check=True, env=env,
                       capture_output=True)
        full = time.perf_counter() - started
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import nasengine.training; from nasengine.tasks import get_task; "
                        "get_task('digits').split('train')"], check=True, env=env)
        startup = time.perf_counter() - started
        out, pick, done = Path(tmp) / "killed", random.Random(seed), 0
        started = time.perf_counter()
        while True:
            before = [p.name for p in complete_checkpoints(out / "checkpoints")]
            proc = subprocess.Popen(_train_command(out, every, epochs, batch), env=env, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
            while proc.poll() is None and [p.name for p in complete_checkpoints(out / "checkpoints")] in (before, []):
                time.sleep(0.01)
            time.sleep(pick.uniform(0.0, 3.0))  # a random moment after this run's first checkpoint
            if proc.poll() is not None or done == kills:
                assert proc.wait() == 0
                break
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            done += 1
        killed = time.perf_counter() - started
    lost = (killed - full) / max(1, done)
    return {"full": full, "killed": killed, "kills": done, "lost": lost, "startup": startup}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5, help="timed steps per DDP configuration")
    parser.add_argument("--batch", type=int, default=64, help="global batch of the DDP comparison")
    parser.add_argument("--kills", type=int, default=2)
    parser.add_argument("--every", type=int, default=4, help="checkpoint interval (steps) of the kill job")
    args = parser.parse_args()

    print("## nasengine train: data parallelism and checkpoints\n")
    print(f"machine: {os.cpu_count()} CPU cores, torch {torch.__version__}; supernet {FAMILY} (default size)\n")
    rows = ddp_rows(args.batch, args.steps)
    print("| DDP configuration (same global batch) | median step | vs 1 process x 1 thread |")
    print("|---|---|---|")
    for name, seconds in rows:
        print(f"| {name} | {seconds * 1000:.0f} ms | {rows[0][1] / seconds:.2f}x |")

    write, size_mb, params = checkpoint_cost()
    step = rows[0][1]
    default_interval = min(CHECKPOINT_EVERY_STEPS * step, CHECKPOINT_EVERY_SECONDS)
    print(f"\n| checkpoint ({params:,} params, {size_mb:.1f} MB on disk) | seconds | share of the interval |")
    print("|---|---|---|")
    print(f"| one write (model + AdamW + generators, fsynced, atomic) | {write:.3f} s | |")
    print(f"| default interval: {CHECKPOINT_EVERY_STEPS} steps or {CHECKPOINT_EVERY_SECONDS:.0f} s "
          f"(here {default_interval:.0f} s of work) | {write:.3f} s | {write / (default_interval + write):.2%} |")
    print(f"| short interval: 10 steps ({10 * step:.1f} s of work) | {write:.3f} s | "
          f"{write / (10 * step + write):.2%} |")

    cost = kill_cost(args.kills, args.every, epochs=1, batch=64)
    torch.set_num_threads(1)
    step64 = statistics.median(_step_times(64, 4))
    print(f"\n| SIGKILL and rerun (`nasengine train {FAMILY} --epochs 1 --batch-size 64`, checkpoint every "
          f"{args.every} steps, 1 thread) | seconds |")
    print("|---|---|")
    print(f"| uninterrupted run | {cost['full']:.1f} |")
    print(f"| with {cost['kills']:.0f} kills at random moments, each followed by a rerun | {cost['killed']:.1f} |")
    print(f"| lost per kill | {cost['lost']:.1f} |")
    print(f"| of which restart (process start, imports, data; measured alone) | {cost['startup']:.1f} |")
    print(f"| of which the rest: redone work (at most one interval, {args.every} steps = {args.every * step64:.1f} s "
          f"here), building the net, loading the checkpoint, first-step warm-up | "
          f"{max(0.0, cost['lost'] - cost['startup']):.1f} |")


if __name__ == "__main__":
    main()
