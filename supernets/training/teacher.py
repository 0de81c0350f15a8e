"""A fixed teacher for weight-sharing training (Once-for-All's recipe): the largest subnet trained alone first, or
another trained model, frozen; every subnet distils from its soft targets instead of from the in-place largest
subnet, which is itself still learning."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn

from nasengine.kernels.inputs import Inputs, as_args
from nasengine.supernets.base import Supernet
from nasengine.supernets.training.checkpoint import save_tensors

TEACHER_FILE = "teacher.safetensors"


class FrozenTeacher:
    """A static model in eval mode and the map from task inputs to its inputs (its own resolution, say)."""

    def __init__(self, module: nn.Module, prepare: Callable[[Inputs], Inputs]):
        self.module = module.eval()
        for p in self.module.parameters():
            p.requires_grad_(False)
        self.prepare = prepare

    @classmethod
    def largest_of(cls, net: Supernet) -> "FrozenTeacher":
        """The supernet's largest subnet as it is now (weights and BN statistics copied, then fixed)."""
        arch = net.space.max()
        return cls(net.extract(arch), lambda x: net.adapt_input(x, arch))

    @torch.no_grad()
    def probabilities(self, x: Inputs, temperature: float = 1.0) -> torch.Tensor:
        """Soft targets for raw task inputs `x` at `temperature`."""
        return F.softmax(self.module(*as_args(self.prepare(x))).float() / temperature, dim=-1)

    def save(self, root: Path) -> None:
        save_tensors(Path(root) / TEACHER_FILE, self.module.state_dict())

    @classmethod
    def restore(cls, net: Supernet, root: Path) -> "FrozenTeacher | None":
        """The teacher saved under `root` (its structure rebuilt from the supernet's largest subnet), or None."""
        path = Path(root) / TEACHER_FILE
        if not path.is_file():
            return None
        teacher = cls.largest_of(net)
        teacher.module.load_state_dict(load_file(str(path)))
        return teacher
