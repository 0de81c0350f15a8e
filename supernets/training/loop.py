"""The one training loop: any recipe, any supernet, in-place distillation from the largest subnet."""

from __future__ import annotations

import inspect
import itertools
import math
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Protocol

import numpy as np
import torch

from nasengine.kernels.inputs import to_device
from nasengine.supernets.base import Supernet
from nasengine.supernets.training import distributed
from nasengine.supernets.training.checkpoint import newest_checkpoint, read_checkpoint, save_checkpoint
from nasengine.search_spaces.space import Space
from nasengine.supernets.training.recipes import Phase, Recipe, SingleArch
from nasengine.supernets.training.samplers import SubnetSampler, get_sampler
from nasengine.supernets.training.step import SHARED_TAGS, StepRule, label_loss, step_archs, train_step  # noqa: F401
from nasengine.supernets.training.teacher import FrozenTeacher


class EpochData(Protocol):
    """Training batches of a task: `batches(epoch)` yields (inputs, labels), reproducibly per epoch."""

    steps_per_epoch: int

    def batches(self, epoch: int) -> Iterable[tuple[torch.Tensor, torch.Tensor]]: ...


@dataclass(frozen=True)
class TrainSettings:
    epochs: int = 40
    lr: float = 4e-3
    weight_decay: float = 0.05
    label_smoothing: float = 0.1
    n_random: int = 2
    kd_weight: float = 1.0
    warmup_epochs: int = 1
    grad_clip: float = 5.0
    seed: int = 0
    # warm-up as a share of all steps (fine-tuning a pretrained model: a few per cent); None: `warmup_epochs`
    warmup_fraction: float | None = None
    # teacher-first (Once-for-All): the largest subnet trained alone this many epochs (its own warm-up and cosine
    # schedule) before `epochs` of the recipe, then frozen; every subnet distils from it. 0: in-place distillation
    teacher_epochs: int = 0
    kd_temperature: float = 1.0  # softens the teacher's targets (the KD loss is scaled by its square)
    teacher_lr: float | None = None  # peak learning rate of the teacher phase (None: `lr`)
    resolution: str = "per-step"  # per-step: one resolution per step for all subnets (OFA); per-subnet (BigNAS)
    sampler: str = "uniform"  # which random subnets a step trains (supernets.training.samplers.SAMPLERS)

    def __post_init__(self) -> None:
        if self.warmup_fraction is not None and not 0 <= self.warmup_fraction <= 0.5:
            raise ValueError(f"the warm-up share must lie in 0..0.5, got {self.warmup_fraction}")
        if self.resolution not in RESOLUTION_MODES:
            raise ValueError(f"resolution sampling must be one of {', '.join(RESOLUTION_MODES)}, got "
                             f"{self.resolution!r}")
        if self.teacher_epochs < 0 or not self.kd_temperature > 0:
            raise ValueError(f"teacher epochs must be >= 0 and the KD temperature positive, got "
                             f"{self.teacher_epochs} and {self.kd_temperature}")

    def warmup_steps(self, total_steps: int, steps_per_epoch: int) -> int:
        """Linear warm-up length: the share of all steps, else one epoch but at most half the run."""
        if self.warmup_fraction is not None:
            return round(self.warmup_fraction * total_steps)
        return min(self.warmup_epochs * steps_per_epoch, total_steps // 2)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        # identities of runs made before an option existed stay the same
        for key, default in (("warmup_fraction", None), ("teacher_epochs", 0), ("kd_temperature", 1.0),
                             ("sampler", "uniform"), ("teacher_lr", None), ("resolution", "per-step")):
            if out[key] == default:
                del out[key]
        return out


StepHook = Callable[[int, int, float], None]
EpochHook = Callable[[int, Phase, dict[str, float]], dict[str, float] | None]
ResumeHook = Callable[[int], None]

# Default checkpoint interval within an epoch: whichever comes first (plus one at every epoch end). A few
# minutes of work at most is lost to a crash; writing a checkpoint costs about one step of a small net.
CHECKPOINT_EVERY_STEPS = 200
CHECKPOINT_EVERY_SECONDS = 120.0


def _phase_of(phases: list[Phase], epoch: int) -> tuple[Phase, bool]:
    """The phase that `epoch` belongs to, and whether the phase starts at this epoch."""
    start = 0
    for phase in phases:
        if epoch < start + phase.epochs:
            return phase, epoch == start
        start += phase.epochs
    return phases[-1], False


def _lr_factor(step: int, total: int, warmup: int) -> float:
    """Linear warm-up over `warmup` steps, then cosine decay to zero at `total`."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


RESOLUTION_MODES = ("per-step", "per-subnet")


def _torch_seed(seed: int, epoch: int, rank: int) -> int:
    """Seed of the torch generator (dropout) for an epoch: one process keeps the historical seed, other ranks
    draw their own masks."""
    if rank == 0:
        return seed * 100_003 + epoch
    return int(np.random.SeedSequence([seed, epoch, rank]).generate_state(1)[0])


def _epoch_batches(data: EpochData, epoch: int, start: int,
                   generator_state: torch.Tensor | None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """`data.batches(epoch)` from step `start` on: resumed from the generator state where the data supports it
    (`EpochBatches`), else by drawing the skipped batches again (the protocol makes epochs reproducible)."""
    if "start_step" in inspect.signature(data.batches).parameters:
        return iter(data.batches(epoch, start_step=start, generator_state=generator_state))  # type: ignore[call-arg]
    return itertools.islice(iter(data.batches(epoch)), start, None)


def _for_this_rank(data: EpochData) -> EpochData:
    """Under data parallelism, this rank's shard of `data` (unchanged when it is sharded already)."""
    if not distributed.is_distributed() or getattr(data, "world_size", 1) == distributed.world_size():
        return data
    if not hasattr(data, "shard"):
        raise ValueError(f"{type(data).__name__} cannot be sharded over {distributed.world_size()} processes "
                         f"(it needs a shard(rank, world_size) method)")
    return data.shard(distributed.rank(), distributed.world_size())  # type: ignore[attr-defined]


class _Interval:
    """Whether a mid-epoch checkpoint is due: every `steps` steps or `seconds` seconds, whichever comes first."""

    def __init__(self, steps: int | None, seconds: float | None):
        self.steps, self.seconds = steps or None, seconds or None
        self.reset()

    def reset(self) -> None:
        self.count, self.since = 0, time.monotonic()

    def tick(self) -> bool:
        self.count += 1
        return bool((self.steps is not None and self.count >= self.steps)
                    or (self.seconds is not None and time.monotonic() - self.since >= self.seconds))


def _rng_digest(rng: np.random.Generator) -> list[float]:
    state = rng.bit_generator.state["state"]
    return [float(state["state"] % (1 << 52)), float(state["inc"] % (1 << 52))]


@dataclass(frozen=True)
class Checkpointing:
    """Where and how often training checkpoints: under `root` at every epoch end and, within an epoch, every
    `every_steps` steps or `every_seconds` seconds, whichever comes first (None or 0 turns either off)."""

    root: Path
    every_steps: int | None = CHECKPOINT_EVERY_STEPS
    every_seconds: float | None = CHECKPOINT_EVERY_SECONDS


@dataclass(frozen=True)
class TrainHooks:
    """Callbacks of a training run: `on_step(epoch, step, loss)`, `on_epoch_end(epoch, phase, row)` (returns more
    columns for the epoch's log row), `on_resume(steps_done)` once when training resumes from a checkpoint."""

    on_step: StepHook | None = None
    on_epoch_end: EpochHook | None = None
    on_resume: ResumeHook | None = None


def train_supernet(net: Supernet, recipe: Recipe, data: EpochData, settings: TrainSettings,
                   checkpointing: Checkpointing | None = None, hooks: TrainHooks | None = None,
                   teacher: FrozenTeacher | None = None) -> list[dict[str, float]]:
    """Train `net` with `recipe`; resumes from the newest checkpoint under `checkpointing.root` if any.

    The caller's torch random state is left as it was (training seeds its own, inside `fork_rng`).
    Checkpoints (see Checkpointing) are written at every epoch end and within epochs. Each holds the model,
    the optimizer, the position (epoch, step), the log so far and every generator state: torch's (dropout),
    the subnet sampler's and the data order/augmentation generator. Randomness is re-seeded from
    (seed, epoch) at each epoch start and restored from the checkpoint mid-epoch, and the learning rate is a
    function of the global step, so a run killed at any moment and started again continues on exactly the
    trajectory of an uninterrupted run (bit for bit on one CPU process; writing a checkpoint changes nothing).

    Under torchrun (see supernets.training.distributed) every rank runs this same call on its shard of the
    data, with identical subnets and gradients averaged once per step; rank 0 alone writes checkpoints, and
    the epoch's log row and model state (after `on_epoch_end`, which every rank calls) come from rank 0.
    With `settings.teacher_epochs` the run starts with a "teacher" phase (the largest subnet alone, its own
    warm-up and cosine schedule), whose result is frozen (and kept beside the checkpoints) as the `teacher` of the
    recipe's epochs; a `teacher` given here is used from the start instead. Returns one log row per epoch.
    """
    if teacher is not None and settings.teacher_epochs:
        raise ValueError("give either a teacher or teacher epochs, not both")
    device = next(net.parameters()).device
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        return _train(net, recipe, data, settings, checkpointing, hooks or TrainHooks(), teacher)


def _phases(recipe: Recipe, space: Space, settings: TrainSettings) -> list[Phase]:
    """The recipe's phases, after a teacher phase (the largest subnet alone) when teacher epochs are set."""
    phases = recipe.phases(space, settings.epochs)
    if settings.teacher_epochs:
        (alone,) = SingleArch().phases(space, settings.teacher_epochs)
        phases = [replace(alone, name="teacher"), *phases]
    return phases


def _schedule(settings: TrainSettings, steps_per_epoch: int) -> Callable[[int], float]:
    """Learning rate per global step: the teacher phase (at `teacher_lr`, default `lr`) and the recipe (at `lr`)
    each warm up and decay on their own."""
    first = settings.teacher_epochs * steps_per_epoch
    rest = settings.epochs * steps_per_epoch
    warm_first, warm_rest = settings.warmup_steps(first, steps_per_epoch), settings.warmup_steps(rest, steps_per_epoch)
    teacher_lr = settings.teacher_lr if settings.teacher_lr is not None else settings.lr

    def rate(step: int) -> float:
        if step < first:
            return teacher_lr * _lr_factor(step, first, warm_first)
        return settings.lr * _lr_factor(step - first, rest, warm_rest)
    return rate


def _train(net: Supernet, recipe: Recipe, data: EpochData, settings: TrainSettings,
           checkpointing: Checkpointing | None, hooks: TrainHooks,
           teacher: FrozenTeacher | None) -> list[dict[str, float]]:
    checkpoint_root = checkpointing.root if checkpointing is not None else None
    on_step, on_epoch_end, on_resume = hooks.on_step, hooks.on_epoch_end, hooks.on_resume
    data = _for_this_rank(data)
    rank, world = distributed.rank(), distributed.world_size()
    phases = _phases(recipe, net.space, settings)
    n_epochs = settings.teacher_epochs + settings.epochs
    decay, no_decay = [], []
    for name, p in net.named_parameters():
        (no_decay if p.ndim <= 1 or "transforms" in name else decay).append(p)
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": settings.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=settings.lr)
    steps_per_epoch = data.steps_per_epoch
    learning_rate = _schedule(settings, steps_per_epoch)
    device = next(net.parameters()).device
    log: list[dict[str, Any]] = []
    start_epoch, start_step, resumed = 0, 0, None
    if checkpoint_root is not None:
        found = newest_checkpoint(checkpoint_root) if distributed.is_main() else None
        found = distributed.broadcast_json(None if found is None else str(found))  # every rank reads rank 0's choice
        if found is not None:
            resumed = read_checkpoint(Path(found), net, optimizer)
            log = list(resumed["log"])
            if resumed["step"] is None:
                start_epoch = int(resumed["epoch"]) + 1
            else:
                start_epoch, start_step = int(resumed["epoch"]), int(resumed["step"])
                if int(resumed.get("world_size", 1)) != world:
                    raise ValueError(f"the checkpoint {found} was written by {resumed.get('world_size', 1)} "
                                     f"processes; resume it with as many (now {world})")
    distributed.broadcast_state(net)
    if resumed is not None and on_resume is not None:
        on_resume(start_epoch * steps_per_epoch + start_step)
    interval = _Interval(checkpointing.every_steps if checkpointing else None,
                         checkpointing.every_seconds if checkpointing else None)
    sampler: SubnetSampler | None = None
    for epoch in range(start_epoch, n_epochs):
        phase, starts_now = _phase_of(phases, epoch)
        mid_epoch = epoch == start_epoch and start_step > 0
        if sampler is None or (starts_now and not mid_epoch):  # a fresh sampler per phase, its state on resume
            sampler = _bound_sampler(settings.sampler, phase, net)
            if resumed is not None and epoch == start_epoch and not (starts_now and not mid_epoch):
                sampler.load_state(resumed.get("sampler_state") or {})
        if settings.teacher_epochs and epoch >= settings.teacher_epochs and teacher is None:
            teacher = _fixed_teacher(net, checkpoint_root, fresh=epoch == settings.teacher_epochs and not mid_epoch)
        if starts_now and not mid_epoch:
            net.prepare_phase(set(phase.tags))
            if epoch > 0:  # the phase may have reordered channels: moments of the old order would misdirect steps
                optimizer.state.clear()
        torch.manual_seed(_torch_seed(settings.seed, epoch, rank))
        rng = np.random.default_rng([settings.seed, epoch])
        losses: list[float] = []
        first, seconds_before, data_state = 0, 0.0, None
        if mid_epoch:
            assert resumed is not None
            first, losses, seconds_before = start_step, list(resumed["epoch_losses"]), resumed["epoch_seconds"]
            rng.bit_generator.state = resumed["sampler_rng"]
            torch.set_rng_state(resumed["rng"][f"torch.{rank}"])
            if device.type == "cuda" and f"cuda.{rank}" in resumed["rng"]:
                torch.cuda.set_rng_state(resumed["rng"][f"cuda.{rank}"], device)
            data_state = resumed["rng"].get("data")
        net.train()
        started = time.perf_counter()
        batches = _epoch_batches(data, epoch, first, data_state)
        for step, (x, y) in enumerate(batches, start=first):
            global_step = epoch * steps_per_epoch + step
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(global_step)
            optimizer.zero_grad(set_to_none=True)
            rule = StepRule(settings.n_random, settings.label_smoothing, settings.kd_weight, settings.kd_temperature,
                            teacher if phase.name != "teacher" else None,
                            sampler if settings.sampler != "uniform" else None,
                            own_resolution=settings.resolution == "per-subnet")
            loss = train_step(net, to_device(x, device), y.to(device), phase, rng, rule)
            # a mid-epoch checkpoint after this step? (the last step's state is the epoch-end checkpoint)
            due = interval.tick() and checkpoint_root is not None and step + 1 < steps_per_epoch
            if world > 1:  # one all-reduce: gradients averaged, the loss averaged, rank 0's clock decides
                loss_sum, votes = distributed.all_reduce_gradients(net.parameters(), [loss, due and rank == 0])
                loss, due = loss_sum / world, votes > 0
            torch.nn.utils.clip_grad_norm_(net.parameters(), settings.grad_clip)
            optimizer.step()
            losses.append(loss)
            if on_step is not None:
                on_step(epoch, step, loss)
            if due:
                assert checkpoint_root is not None
                generator = getattr(batches, "generator_state", None)
                extra = {"sampler_rng": rng.bit_generator.state, "epoch_losses": losses,
                         "epoch_seconds": seconds_before + time.perf_counter() - started,
                         "lr": optimizer.param_groups[0]["lr"], "sampler_state": sampler.state()}
                _save(checkpoint_root, net, optimizer, settings, log, epoch, step + 1, extra,
                      generator() if generator is not None else None, rng)
                interval.reset()
        distributed.average_bn_statistics(net)
        row: dict[str, Any] = {"epoch": epoch, "phase": phase.name, "loss": float(np.mean(losses)),
                               "lr": optimizer.param_groups[0]["lr"],
                               "seconds": seconds_before + time.perf_counter() - started}
        if on_epoch_end is not None:
            row.update(on_epoch_end(epoch, phase, row) or {})
        if world > 1:  # whatever the hook did on rank 0 (BN recalibration, say) holds on every rank
            row = distributed.broadcast_json(row)
            distributed.broadcast_state(net)
        log.append(row)
        if checkpoint_root is not None:
            _save(checkpoint_root, net, optimizer, settings, log, epoch, None, {"sampler_state": sampler.state()},
                  None, None)
            interval.reset()
    net.set_active(net.space.max())
    return log


def _bound_sampler(name: str, phase: Phase, net: Supernet) -> SubnetSampler:
    """The settings' subnet sampler bound to the phase's space; one that ranks candidates on a rank's own batch
    would draw other subnets on other ranks, so data parallelism takes only those that do not."""
    sampler = get_sampler(name)
    if distributed.world_size() > 1 and sampler.batch_dependent:
        raise ValueError(f"the {name} sampler draws from each rank's own losses; train it in one process")
    sampler.bind(phase.space, lambda arch: float(net.cost(arch).macs))
    return sampler


def _fixed_teacher(net: Supernet, root: Path | None, fresh: bool) -> FrozenTeacher:
    """The teacher of the recipe's epochs: the largest subnet frozen now (`fresh`, at the end of the teacher phase;
    kept under the checkpoint root for a resume), else the one kept there."""
    if fresh:
        teacher = FrozenTeacher.largest_of(net)
        if root is not None and distributed.is_main():
            teacher.save(root)
        distributed.barrier()
        return teacher
    restored = FrozenTeacher.restore(net, root) if root is not None else None
    if restored is None:
        raise ValueError(f"resuming after the teacher phase needs the teacher kept under {root}; it is missing")
    return restored


def _save(root: Path, net: Supernet, optimizer: torch.optim.Optimizer, settings: TrainSettings,
          log: list[dict[str, Any]], epoch: int, step: int | None, extra: dict[str, Any],
          data_state: torch.Tensor | None, rng: np.random.Generator | None) -> None:
    """Checkpoint (every rank calls it; rank 0 writes, the others wait). Mid-epoch (`step` given) it holds
    every generator state; BN statistics are written averaged over ranks without changing the live ones."""
    model_state = distributed.averaged_state_dict(net) if step is not None else None
    tensors: dict[str, torch.Tensor] = {}
    if step is not None:
        for r, state in enumerate(distributed.all_gather_tensor(torch.get_rng_state())):
            tensors[f"torch.{r}"] = state
        device = next(net.parameters()).device
        if device.type == "cuda":
            for r, state in enumerate(distributed.all_gather_tensor(torch.cuda.get_rng_state(device))):
                tensors[f"cuda.{r}"] = state
        if data_state is not None:
            tensors["data"] = data_state
        assert rng is not None
        with torch.no_grad():  # the same subnets, data draws and weights on every rank, or stop here
            weights = float(sum(p.double().sum() for p in net.parameters()))
        distributed.assert_same([*_rng_digest(rng), float(data_state.double().sum()) if data_state is not None else 0.0,
                          weights], "the subnet sampler, data generator or weights")
    if distributed.is_main():
        meta = {"log": log, "settings": settings.to_dict(), "world_size": distributed.world_size(), **extra}
        save_checkpoint(root, epoch, model_state if model_state is not None else net.state_dict(), optimizer, meta,
                        step=step, rng=tensors)
    distributed.barrier()
