"""The one subnet-evaluation path: BN recalibration on training images, then top-1 accuracy on a split."""

from __future__ import annotations

from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Iterator, Mapping

import torch
from torch import nn

from kernels.calibration import preserved_state, recalibrate_bn
from nasengine.tasks.base import Split, Task

if TYPE_CHECKING:  # exported subnets are scored without importing any supernet code
    from supernets.base import Supernet


@torch.no_grad()
def accuracy(model: nn.Module, split: Split, prepare: Any = None, batch_size: int = 256) -> float:
    """Top-1 accuracy of `model` on `split`; `prepare(x)` maps task inputs to model inputs (e.g. resizing)."""
    model.eval()
    correct = 0
    for x, y in split.batches(batch_size):
        logits = model(prepare(x) if prepare is not None else x)
        correct += int((logits.argmax(dim=-1) == y).sum())
    return correct / len(split)


class Evaluator:
    """Accuracy of any arch of any supernet: activate, recalibrate BN on a fixed training subset, score a split.

    Deterministic for a given arch (the calibration subset and order are fixed), so repeated
    evaluations and resumed searches agree. `evaluate` and `extract` leave the supernet exactly as they found
    it (every parameter and buffer, the active arch, the train/eval mode), so evaluations do not depend on
    one another and a supernet stays usable for other archs, or for training, afterwards.
    """

    def __init__(self, supernet: "Supernet", task: Task, split: str = "val", calibration_samples: int = 512,
                 batch_size: int = 256):
        self.supernet, self.task = supernet, task
        self.split = task.split(split)
        train = task.split("train")
        gen = torch.Generator().manual_seed(1234)
        pick = torch.randperm(len(train), generator=gen)[: min(calibration_samples, len(train))]
        self.calibration = train.inputs[pick]
        self.batch_size = batch_size

    def calibrate(self, arch: Mapping[str, Any]) -> dict[str, Any]:
        """Activate `arch` and re-estimate its BN statistics; returns the canonical arch.

        This changes the supernet's shared state (it leaves `arch` active and the BN statistics of every other
        subnet reset); use `calibrated(arch)`, `evaluate` or `extract` to have the supernet restored.
        """
        canonical = self.supernet.set_active(arch)
        batches = (self.supernet.adapt_input(self.calibration[i: i + self.batch_size], canonical)
                   for i in range(0, len(self.calibration), self.batch_size))
        recalibrate_bn(self.supernet, batches)
        return canonical

    @contextmanager
    def calibrated(self, arch: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
        """`with evaluator.calibrated(arch) as canonical:` the supernet runs `arch` in eval mode with its
        recalibrated BN statistics; on leaving, the supernet is restored exactly (see `preserved_state`)."""
        with preserved_state(self.supernet):
            yield self.calibrate(arch)

    def evaluate(self, arch: Mapping[str, Any], split: Split | None = None) -> float:
        """Top-1 accuracy of `arch` with recalibrated BN on the evaluator's split (or the one given)."""
        with self.calibrated(arch) as canonical:
            return accuracy(self.supernet, split or self.split, lambda x: self.supernet.adapt_input(x, canonical),
                            self.batch_size)

    def extract(self, arch: Mapping[str, Any]) -> nn.Module:
        """A static subnet of `arch` with its recalibrated BN statistics baked in (the supernet is restored)."""
        with self.calibrated(arch):
            return self.supernet.extract(arch)
