"""Devices: a name, a backend and its settings; every backend answers `measure(workload) -> Measurement`."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import torch
from torch import nn

from kernels.describe import LayerSpec
from nasengine.devices.timing import Measurement, TimingSettings
from nasengine.errors import UserError


class Workload:
    """What a device is asked to time: one subnet, available lazily as a torch module or as ONNX bytes.

    Backends take the form they run (ORT and remote agents ONNX, torch backends the module, tables the
    arch key); each form is built at most once per workload.
    """

    def __init__(self, arch: Mapping[str, Any], key: str, build: Callable[[], nn.Module],
                 input_shape: tuple[int, ...], batch_size: int = 1, dynamic_onnx: bytes | None = None,
                 describe: Callable[[], list[LayerSpec]] | None = None):
        self.arch, self.key, self._build, self._describe = dict(arch), key, build, describe
        self.input_shape, self.batch_size = tuple(input_shape), batch_size
        self._model: nn.Module | None = None
        self._onnx: dict[int, bytes] = {}
        self._dynamic_onnx = dynamic_onnx  # an ONNX file with a symbolic batch dimension serves every batch size

    def layers(self) -> list[LayerSpec]:
        """The subnet's layers as data (for lookup-table devices); ValueError when the workload has none."""
        if self._describe is None:
            raise ValueError("this workload carries no layer description")
        return self._describe()

    def model(self) -> nn.Module:
        if self._model is None:
            self._model = self._build().eval()
        return self._model

    def example_input(self, batch_size: int | None = None) -> torch.Tensor:
        gen = torch.Generator().manual_seed(0)
        return torch.randn((batch_size or self.batch_size, *self.input_shape), generator=gen)

    def onnx(self, batch_size: int | None = None) -> bytes:
        from nasengine.onnx_writer import to_onnx

        batch = batch_size or self.batch_size
        if self._dynamic_onnx is not None:
            return self._dynamic_onnx
        if batch not in self._onnx:
            self._onnx[batch] = to_onnx(self.model(), self.example_input(batch))
        return self._onnx[batch]


@dataclass(frozen=True)
class DeviceConfig:
    """A device as configured: unique name, backend name and backend settings (plain JSON)."""

    name: str
    backend: str
    settings: dict[str, Any] = field(default_factory=dict)
    description: str = ""

    def path_setting(self, key: str) -> Path:
        """The required file setting `key` as a path (~ expanded), or ValueError naming the device."""
        if key not in self.settings:
            raise ValueError(f"device {self.name!r}: a {self.backend} device needs a `{key}` setting")
        value = self.settings[key]
        if not isinstance(value, str) or not value:
            raise ValueError(f"device {self.name!r}: setting `{key}` must be a path, got {value!r}")
        return Path(value).expanduser()

    def int_setting(self, key: str, default: int, minimum: int = 1) -> int:
        """The whole-number setting `key` (at least `minimum`), or ValueError naming the device and setting."""
        value = self.settings.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ValueError(f"device {self.name!r}: setting `{key}` must be a whole number >= {minimum}, "
                             f"got {value!r}")
        return value

    def timing_settings(self) -> TimingSettings:
        """The `timing` table of the settings as TimingSettings, or ValueError naming the bad key."""
        raw = self.settings.get("timing", {})
        if not isinstance(raw, Mapping):
            raise ValueError(f"device {self.name!r}: setting `timing` must be a table, got {raw!r}")
        known = TimingSettings.__dataclass_fields__
        for key, value in raw.items():
            if key not in known:
                raise ValueError(f"device {self.name!r}: unknown timing setting `{key}`; known: "
                                 f"{', '.join(known)}")
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"device {self.name!r}: timing setting `{key}` must be a number >= 0, "
                                 f"got {value!r}")
        try:
            return TimingSettings(**raw)
        except ValueError as exc:
            raise ValueError(f"device {self.name!r}: {exc}") from None


class Device(ABC):
    """A measurable target. Subclasses implement `_measure`; timing discipline lives in devices.timing."""

    backend: str = ""

    def __init__(self, config: DeviceConfig, timing: TimingSettings | None = None):
        self.config = config
        self.timing = timing or config.timing_settings()
        self.batch_size = config.int_setting("batch_size", 1)

    @property
    def name(self) -> str:
        return self.config.name

    def availability(self) -> str | None:
        """None when the device can measure here, else the reason it cannot."""
        return None

    def _load_problem(self, load: Callable[[], object]) -> str | None:
        """Why `load()` (reading the device's file) fails, without the device-name prefix; None when it works.
        Lets availability refuse a damaged file before a search writes anything."""
        try:
            load()
        except UserError as exc:
            return str(exc).removeprefix(f"device {self.name!r}: ")
        return None

    def measure(self, workload: Workload) -> Measurement:
        reason = self.availability()
        if reason is not None:
            raise UserError(f"device {self.name!r} is not usable here: {reason}")
        return self._measure(workload)

    @abstractmethod
    def _measure(self, workload: Workload) -> Measurement:
        """Latency of the workload at this device's batch size."""

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "backend": self.backend, "settings": self.config.settings,
                "description": self.config.description}
