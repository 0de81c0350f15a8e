"""A task is a labelled data set with fixed, documented splits and a reproducible preprocessing."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import torch

from search_spaces.registry import Registry

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Split:
    """Preprocessed inputs and labels of one split, plus what identifies it (recorded in manifests)."""

    name: str
    inputs: torch.Tensor
    labels: torch.Tensor
    identity: dict[str, Any]

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def batches(self, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for start in range(0, len(self), batch_size):
            yield self.inputs[start: start + batch_size], self.labels[start: start + batch_size]


class Task(ABC):
    """Splits of one data set; `train_data` yields augmented, shuffled training batches per epoch.

    `spec` is the task as data (stored in config.json): `nasengine.tasks.task_from_spec(spec)` rebuilds the
    same splits on any later command, or refuses when the data changed.
    """

    name: str = ""
    num_classes: int = 0
    in_channels: int = 1
    input_size: tuple[int, int] = (0, 0)

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
        """How raw samples become model inputs (recorded in exported manifests)."""


class EpochBatches:
    """Shuffled mini-batches of a split, with an optional per-batch augmentation, reseeded per epoch."""

    def __init__(self, split: Split, batch_size: int, seed: int,
                 augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None):
        self.split, self.batch_size, self.seed, self.augment = split, batch_size, seed, augment
        self.steps_per_epoch = max(1, len(split) // batch_size)

    def batches(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        gen = torch.Generator().manual_seed(self.seed * 7919 + epoch)
        order = torch.randperm(len(self.split), generator=gen)
        for step in range(self.steps_per_epoch):
            idx = order[step * self.batch_size: (step + 1) * self.batch_size]
            x = self.split.inputs[idx]
            if self.augment is not None:
                x = self.augment(x, gen)
            yield x, self.split.labels[idx]


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
