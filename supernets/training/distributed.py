"""Data-parallel supernet training across processes: the few collectives the training loop needs.

Started by `torchrun --nproc_per_node N -m nasengine train ...` (the RANK, WORLD_SIZE and LOCAL_RANK
environment variables), `session()` joins the process group: gloo on CPU, NCCL when CUDA is visible (one
GPU per process, `cuda:LOCAL_RANK`). Without those variables everything here is a no-op for one process.

Why not `torch.nn.parallel.DistributedDataParallel`: a sandwich step runs several forward/backward passes
of *different* subnets of the same weights and accumulates their gradients before one optimizer step. DDP
all-reduces inside every backward (N round trips per step, or `no_sync` bookkeeping around all but the
last), needs `find_unused_parameters` because each subnet touches another subset of the weights (a graph
walk per forward), and broadcasts rank 0's buffers before every forward, which would overwrite the per-rank
BatchNorm statistics. The loop instead calls `all_reduce_gradients` once per step, after the whole sandwich:
one bucketed all-reduce of every gradient (plus a few scalars riding along), then identical optimizer steps
on every rank.

What every rank shares and what it does not:
- parameters, buffers and optimizer state: identical (broadcast from rank 0 at the start, identical updates);
- the subnets of each step: identical (the sampling generator is seeded from (seed, epoch) alone; the loop
  checks it at every checkpoint with `assert_same`);
- data: each rank a disjoint slice of each global batch (`EpochBatches.shard`);
- BatchNorm: batch statistics are per rank during training (like DDP without SyncBatchNorm: a rank normalises
  with the statistics of its own B samples, not of the N*B of the global batch); the running statistics are
  averaged across ranks before every checkpoint (in the written copy) and in place at every epoch end and at
  the end of training, so every rank holds the same model;
- dropout: each rank draws its own masks (the torch generator is seeded per rank).
"""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from datetime import timedelta
from typing import Any, Iterable, Iterator

import torch
import torch.distributed as dist
from torch import nn

TORCHRUN_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK")
BUCKET_ELEMENTS = 1 << 22  # 16 MB of float32 per all-reduce


def launched_by_torchrun() -> bool:
    """Whether this process was started by torchrun (or another launcher setting the same variables)."""
    return all(v in os.environ for v in TORCHRUN_VARS)


def is_distributed() -> bool:
    """A process group with more than one process is active."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def is_main() -> bool:
    """Rank 0: the one process that writes checkpoints, logs and outputs."""
    return rank() == 0


def _comm_device() -> torch.device:
    """Where tensors must be for collectives: the process's GPU under NCCL, else the CPU."""
    if is_distributed() and dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


@contextmanager
def session(timeout_s: float = 1800.0) -> Iterator[torch.device]:
    """Join torchrun's process group for the duration (no-op without torchrun); yields this process's device.

    NCCL with one GPU per process when CUDA is visible, gloo on CPU otherwise. Leaves an already initialised
    group alone (and does not destroy it).
    """
    if not launched_by_torchrun() or dist.is_initialized() or int(os.environ["WORLD_SIZE"]) <= 1:
        yield _comm_device()
        return
    use_cuda = torch.cuda.is_available()
    device = torch.device("cuda", local_rank()) if use_cuda else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if use_cuda else "gloo", timeout=timedelta(seconds=timeout_s))
    try:
        yield device
        # Every rank reaches this point before any closes its connections: a peer tearing down its gloo
        # pairs while another still has work in flight can abort that other process at exit.
        dist.barrier()
    finally:
        dist.destroy_process_group()


def barrier() -> None:
    if is_distributed():
        dist.barrier()


@torch.no_grad()
def broadcast_state(module: nn.Module, src: int = 0) -> None:
    """Overwrite every parameter and buffer with rank `src`'s (in place)."""
    if not is_distributed():
        return
    for tensor in [*module.parameters(), *module.buffers()]:
        dist.broadcast(tensor.data, src)


@torch.no_grad()
def all_reduce_gradients(params: Iterable[nn.Parameter], extras: Iterable[float] = ()) -> list[float]:
    """Average the gradients of `params` over ranks in place; return `extras` summed over ranks.

    Gradients are flattened into buckets of up to BUCKET_ELEMENTS values (one all-reduce each; the extras
    ride in the last one). Parameters without a gradient are skipped: every rank trains the same subnets,
    so the same parameters lack one on every rank.
    """
    extras = [float(e) for e in extras]
    if not is_distributed():
        return extras
    n = dist.get_world_size()
    grads = [p.grad for p in params if p.grad is not None]
    buckets: list[list[torch.Tensor]] = [[]]
    size = 0
    for g in grads:
        if size and size + g.numel() > BUCKET_ELEMENTS:
            buckets.append([])
            size = 0
        buckets[-1].append(g)
        size += g.numel()
    device = grads[0].device if grads else _comm_device()
    reduced_extras = extras
    for i, bucket in enumerate(buckets):
        parts = [g.reshape(-1).to(torch.float32) for g in bucket]
        last = i == len(buckets) - 1
        if last:
            parts.append(torch.tensor(extras, dtype=torch.float32, device=device))
        if not parts:
            continue
        flat = torch.cat(parts)
        dist.all_reduce(flat)
        offset = 0
        for g in bucket:
            g.copy_(flat[offset: offset + g.numel()].view_as(g).div_(n))
            offset += g.numel()
        if last:
            reduced_extras = flat[offset:].tolist()
    return reduced_extras


def _bn_buffers(module: nn.Module) -> list[tuple[str, torch.Tensor]]:
    return [(f"{name}.{key}" if name else key, buf) for name, m in module.named_modules()
            if isinstance(m, nn.modules.batchnorm._BatchNorm)
            for key, buf in (("running_mean", m.running_mean), ("running_var", m.running_var)) if buf is not None]


@torch.no_grad()
def average_bn_statistics(module: nn.Module) -> None:
    """Average BatchNorm running means and variances over ranks, in place (every rank then holds the same)."""
    if not is_distributed():
        return
    for _, buf in _bn_buffers(module):
        dist.all_reduce(buf)
        buf.div_(dist.get_world_size())


@torch.no_grad()
def averaged_state_dict(module: nn.Module) -> dict[str, torch.Tensor]:
    """`module.state_dict()` with BatchNorm running statistics averaged over ranks, leaving the module as it is
    (checkpoints written mid-epoch must not perturb the training that goes on)."""
    state = module.state_dict()
    if not is_distributed():
        return state
    for key, buf in _bn_buffers(module):
        avg = buf.clone()
        dist.all_reduce(avg)
        state[key] = avg.div_(dist.get_world_size())
    return state


def all_gather_tensor(tensor: torch.Tensor) -> list[torch.Tensor]:
    """Every rank's copy of a same-shaped tensor (e.g. generator states), on the CPU, in rank order."""
    if not is_distributed():
        return [tensor.cpu()]
    device = _comm_device()
    local = tensor.to(device)
    out = [torch.empty_like(local) for _ in range(dist.get_world_size())]
    dist.all_gather(out, local)
    return [t.cpu() for t in out]


def broadcast_json(obj: Any, src: int = 0) -> Any:
    """Rank `src`'s JSON-able object on every rank (sent as UTF-8 JSON bytes: nothing is pickled)."""
    if not is_distributed():
        return obj
    device = _comm_device()
    data = json.dumps(obj).encode() if rank() == src else b""
    length = torch.tensor([len(data)], dtype=torch.int64, device=device)
    dist.broadcast(length, src)
    buffer = (torch.frombuffer(bytearray(data), dtype=torch.uint8).to(device) if rank() == src
              else torch.empty(int(length.item()), dtype=torch.uint8, device=device))
    dist.broadcast(buffer, src)
    return json.loads(buffer.cpu().numpy().tobytes().decode()) if rank() != src else obj


def assert_same(values: Iterable[float], what: str) -> None:
    """Raise RuntimeError unless every rank passes the same `values` (cheap consistency checks)."""
    if not is_distributed():
        return
    mine = torch.tensor(list(values), dtype=torch.float64)
    gathered = all_gather_tensor(mine)
    if any(not torch.equal(g, gathered[0]) for g in gathered[1:]):
        raise RuntimeError(f"ranks disagree on {what}: {[g.tolist() for g in gathered]}")
