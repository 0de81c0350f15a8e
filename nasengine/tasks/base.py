"""A task is a labelled data set with fixed, documented splits and a reproducible preprocessing."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, replace
from typing import Any, Callable, Iterator, Mapping, Sequence

import torch

from nasengine.kernels.inputs import Inputs, take
from nasengine.search_spaces.registry import Registry

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Split:
    """Preprocessed inputs (one tensor, or named tensors such as token ids and a mask) and labels of one split,
    plus what identifies it (recorded in manifests). `collate` finishes each batch (text drops the padding no
    sample of the batch needs)."""

    name: str
    inputs: Inputs
    labels: torch.Tensor
    identity: dict[str, Any]
    collate: Callable[[Inputs], Inputs] | None = None

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def subset(self, index: Any, name: str | None = None) -> "Split":
        """The samples `index` (a slice or index tensor) as a split of their own, collated the same way."""
        return replace(self, name=name or self.name, inputs=take(self.inputs, index), labels=self.labels[index])

    def take(self, index: Any) -> Inputs:
        """The inputs of the samples `index` (a slice or index tensor), collated as a batch."""
        x = take(self.inputs, index)
        return self.collate(x) if self.collate is not None else x

    def batches(self, batch_size: int, collate: bool = True) -> Iterator[tuple[Inputs, torch.Tensor]]:
        """Batches in order; `collate=False` keeps the stored shapes (graphs written for a fixed sequence length)."""
        for start in range(0, len(self), batch_size):
            index = slice(start, start + batch_size)
            yield (self.take(index) if collate else take(self.inputs, index)), self.labels[index]


class Task(ABC):
    """Splits of one data set; `train_data` yields augmented, shuffled training batches per epoch.

    `spec` is the task as data (stored in config.json): `nasengine.tasks.task_from_spec(spec)` rebuilds the
    same splits on any later command, or refuses when the data changed.
    """

    name: str = ""
    num_classes: int = 0
    in_channels: int = 1
    input_size: tuple[int, int] = (0, 0)
    # next-token prediction: scored (and reported) by perplexity beside next-token accuracy
    language_model: bool = False

    @property
    @abstractmethod
    def spec(self) -> dict[str, Any]:
        """JSON description from which `task_from_spec` rebuilds exactly this task."""

    @abstractmethod
    def split(self, name: str) -> Split:
        """One of SPLITS, preprocessed, in a fixed order."""

    @abstractmethod
    def train_data(self, batch_size: int, seed: int, augment: bool = True) -> "EpochBatches":
        """Training batches for supernets.training (shuffled and augmented per epoch, reproducibly)."""

    @property
    @abstractmethod
    def preprocessing(self) -> dict[str, Any]:
        """How raw samples become this task's inputs, as the versioned contract exports carry (`image_preprocessing`,
        or the text task's): `nasengine.exporting.preprocess` applies it to raw images or strings."""

    def assets(self) -> dict[str, bytes]:
        """Files an exported subnet ships beside its weights so it runs on raw samples (a tokenizer): name -> bytes."""
        return {}


PREPROCESSING_SCHEMA = "nasengine-preprocessing"
PREPROCESSING_VERSION = 1
RAW_IMAGE_LAYOUTS = ("HW", "HWC", "NHW", "NHWC", "NCHW")


def image_preprocessing(shape: Sequence[int], source: str, raw_dtype: str, normalize: Mapping[str, Any],
                        classes: Sequence[str] | None = None, decode: str | None = None) -> dict[str, Any]:
    """The preprocessing contract of image data of `shape` (C, H, W), before an export adds its resize and model
    input: raw images of that size, `float32(raw) * scale`, minus `mean[c]`, over `std[c]` (lists per channel
    always, so one script reads every export)."""
    channels, height, width = (int(s) for s in shape)
    mean, std = [float(m) for m in _per_channel(normalize["mean"])], [float(s) for s in _per_channel(normalize["std"])]
    if len(mean) != channels or len(std) != channels:
        raise ValueError(f"{source}: normalisation has {len(mean)} means and {len(std)} stds for {channels} channels")
    return {"schema": PREPROCESSING_SCHEMA, "version": PREPROCESSING_VERSION, "kind": "image", "source": source,
            "raw": {"height": height, "width": width, "channels": channels, "dtype": raw_dtype,
                    "layouts": list(RAW_IMAGE_LAYOUTS)},
            "decode": decode, "scale": float(normalize["scale"]), "mean": mean, "std": std, "channels": channels,
            "classes": None if not classes else [str(c) for c in classes]}


def _per_channel(value: Any) -> list[Any]:
    """A statistic as a list per channel (a scalar is the one channel's)."""
    return list(value) if isinstance(value, (list, tuple)) else [value]


class EpochBatches:
    """Shuffled mini-batches of a split, with an optional per-batch augmentation, reseeded per epoch.

    For data-parallel training, `shard(rank, world_size)` gives each process a disjoint slice of every
    global batch of `world_size * batch_size` rows: together the ranks see exactly the batches (order and
    augmentation alike) that one process with batch `world_size * batch_size` would see.

    `lengths` (one per sample: a text's token count) groups samples of similar length into batches, so that
    trimming the padding saves most of it: each run of `GROUP` shuffled batches is sorted by length, cut into
    batches, and the batches of the epoch are shuffled again. Every sample is still seen once per epoch.
    """

    GROUP = 64

    def __init__(self, split: Split, batch_size: int, seed: int,
                 augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None,
                 rank: int = 0, world_size: int = 1, lengths: torch.Tensor | None = None):
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in a world of {world_size}")
        if world_size > 1 and len(split) < batch_size * world_size:
            raise ValueError(f"{len(split)} training samples cannot fill a global batch of {world_size} x "
                             f"{batch_size}")
        self.split, self.batch_size, self.seed, self.augment = split, batch_size, seed, augment
        if lengths is not None and lengths.shape != (len(split),):
            raise ValueError(f"{tuple(lengths.shape)} lengths for {len(split)} samples")
        self.rank, self.world_size, self.lengths = rank, world_size, lengths
        self.steps_per_epoch = max(1, len(split) // (batch_size * world_size))

    def shard(self, rank: int, world_size: int) -> "EpochBatches":
        """The same data for process `rank` of `world_size`, each taking `batch_size` rows of every global batch."""
        return EpochBatches(self.split, self.batch_size, self.seed, self.augment, rank, world_size, self.lengths)

    def order(self, generator: torch.Generator) -> torch.Tensor:
        """The sample order of one epoch: a permutation, with batches of similar length when `lengths` is set."""
        order = torch.randperm(len(self.split), generator=generator)
        if self.lengths is None:
            return order
        size = self.batch_size * self.world_size
        order = order[: self.steps_per_epoch * size]
        groups = [chunk[torch.argsort(self.lengths[chunk], descending=True, stable=True)]
                  for chunk in order.split(size * self.GROUP)]
        batches = torch.cat(groups).view(self.steps_per_epoch, size)
        return batches[torch.randperm(self.steps_per_epoch, generator=generator)].reshape(-1)

    def batches(self, epoch: int, start_step: int = 0,
                generator_state: torch.Tensor | None = None) -> "EpochIterator":
        """Batches of `epoch` from `start_step` on. `generator_state` (an `EpochIterator.generator_state()`
        taken after batch `start_step - 1`) resumes the augmentation draws exactly; without it the skipped
        batches are drawn again and dropped, which gives the same result."""
        return EpochIterator(self, epoch, start_step, generator_state)


class EpochIterator:
    """One epoch of `EpochBatches`; `generator_state()` after batch k is what resuming at step k + 1 needs."""

    def __init__(self, data: EpochBatches, epoch: int, start_step: int = 0,
                 generator_state: torch.Tensor | None = None):
        if not 0 <= start_step <= data.steps_per_epoch:
            raise ValueError(f"start step {start_step} outside an epoch of {data.steps_per_epoch} steps")
        self.data, self.step = data, 0
        self.generator = torch.Generator().manual_seed(data.seed * 7919 + epoch)
        self.order = data.order(self.generator)
        if generator_state is not None:
            self.generator.set_state(generator_state)
            self.step = start_step
        else:
            for _ in range(start_step):
                next(self)

    def generator_state(self) -> torch.Tensor:
        return self.generator.get_state()

    def __iter__(self) -> "EpochIterator":
        return self

    def __next__(self) -> tuple[Inputs, torch.Tensor]:
        data = self.data
        if self.step >= data.steps_per_epoch:
            raise StopIteration
        size = data.batch_size * data.world_size
        idx = self.order[self.step * size: (self.step + 1) * size]
        self.step += 1
        mine = slice(data.rank * data.batch_size, (data.rank + 1) * data.batch_size)
        if data.augment is None:
            idx = idx[mine]
            return data.split.take(idx), data.split.labels[idx]
        # the whole global batch is augmented so that every rank draws what one process would
        x = data.augment(data.split.take(idx), self.generator)
        return x[mine] if data.world_size > 1 else x, data.split.labels[idx[mine]]


NamedFactory = Callable[..., Task]
_TASKS: Registry[NamedFactory] = Registry("data set")


def register_task(name: str) -> Callable[[NamedFactory], NamedFactory]:
    """Decorator: a data set known by name (`--data NAME`); `factory(options=...) -> Task`."""
    return _TASKS.register(name)


def named_task_factory(name: str) -> NamedFactory | None:
    return _TASKS.find(name)


def get_task(name: str) -> Task:
    """A registered data set by name, with its default options."""
    return _TASKS.get(name)()


def available_tasks() -> list[str]:
    return _TASKS.names()
