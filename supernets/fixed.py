"""A static module (an exported subnet) as a supernet of one arch, so the one training loop fine-tunes it with
everything training has: schedules, distillation from a fixed teacher, checkpoints and resume."""

from __future__ import annotations

import copy
from typing import Any, Mapping, Sequence

from torch import nn

from nasengine.kernels.inputs import InputSpec
from nasengine.search_spaces.space import Arch, Space
from nasengine.supernets.base import Supernet


class FixedSubnet(Supernet):
    """`module` with its inputs and the transform from task inputs to them; its only arch is the empty one."""

    name = "fixed"

    def __init__(self, module: nn.Module, inputs: Sequence[InputSpec], input_transform: Mapping[str, Any]):
        super().__init__(Space([], name="fixed"))
        self.module = module
        self._inputs = list(inputs)
        self._transform = dict(input_transform)

    def _activate(self, arch: Arch) -> None:
        """Nothing is elastic."""

    def input_shape(self, arch: Mapping[str, Any]) -> tuple[int, ...]:
        return tuple(self._inputs[0].shape)

    def input_specs(self, arch: Mapping[str, Any]) -> list[InputSpec]:
        return list(self._inputs)

    def input_transform(self, arch: Mapping[str, Any]) -> dict[str, Any]:
        return dict(self._transform)

    def _export_active(self) -> nn.Module:
        return copy.deepcopy(self.module)

    @property
    def config(self) -> dict[str, Any]:
        return {}

    def forward(self, *inputs: Any) -> Any:
        return self.module(*inputs)
