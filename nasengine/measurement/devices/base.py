"""Devices: a name, a backend and its settings; every backend answers `measure(workload) -> Measurement`."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
from torch import nn

from nasengine.kernels.describe import LayerSpec
from nasengine.kernels.inputs import SINGLE_INPUT, InputSpec, Inputs, example_inputs, image_input, to_numpy
from nasengine.measurement.devices.timing import Measurement, TimingSettings
from nasengine.search_spaces.quantization import quantizes
from nasengine.errors import UserError


class Workload:
    """What a device is asked to time: one subnet, available lazily as a torch module or as ONNX bytes.

    Backends take the form they run (ORT and remote agents ONNX, torch backends the module, tables the
    arch key); each form is built at most once per workload. `dynamic_onnx` is a graph with a symbolic batch
    dimension that serves every batch size; when it already carries a quantization policy (`policy` with an INT8
    layer) it is the deployed graph and nothing re-quantizes it. `calibration()` gives the model inputs (training
    images resized for the subnet, or a feed of named arrays) that INT8 devices calibrate on.

    `inputs` declares the model's inputs (`InputSpec`s: name, dtype, shape, so a sequence length is part of the
    workload), or is the shape of its one float input.
    """

    def __init__(self, arch: Mapping[str, Any], key: str, build: Callable[[], nn.Module],
                 inputs: Sequence[InputSpec] | tuple[int, ...], dynamic_onnx: bytes | None = None,
                 describe: Callable[[], list[LayerSpec]] | None = None,
                 calibration: Callable[[], np.ndarray | Mapping[str, np.ndarray]] | None = None,
                 policy: Mapping[str, str] | None = None):
        self.arch, self.key, self._build, self._describe = dict(arch), key, build, describe
        specs = list(inputs)
        self.inputs = specs if specs and isinstance(specs[0], InputSpec) else image_input(specs)  # type: ignore
        self.batch_size = 1  # what `example_input` and `onnx` build when no device asks for another batch size
        self._model: nn.Module | None = None
        self._onnx: dict[int, bytes] = {}
        self._dynamic_onnx = dynamic_onnx  # an ONNX file with a symbolic batch dimension serves every batch size
        self._calibration = calibration
        self.policy = dict(policy) if policy else None
        self._int8: bytes | None = None

    @classmethod
    def of_supernet(cls, net: Any, arch: Mapping[str, Any], calibration: Callable[[], Any] | None = None,
                    **kwargs: Any) -> "Workload":
        """Subnet `arch` of supernet `net` (extracted lazily, with its declared inputs and op descriptions):
        the one way every command turns an arch into something a device times."""
        return cls(arch, net.space.key(arch), lambda: net.extract(arch), net.input_specs(arch),
                   describe=lambda: net.describe(arch), calibration=calibration, **kwargs)

    @property
    def carries_policy(self) -> bool:
        """True when the workload's graph already applies a quantization policy with a layer below FP32."""
        return quantizes(self.policy)

    def layers(self) -> list[LayerSpec]:
        """The subnet's layers as data (for lookup-table devices); ValueError when the workload has none."""
        if self._describe is None:
            raise ValueError("this workload carries no layer description")
        return self._describe()

    def model(self) -> nn.Module:
        if self._model is None:
            self._model = self._build().eval()
        return self._model

    @property
    def input_shape(self) -> tuple[int, ...]:
        """The shape of the first input (no batch dimension)."""
        return self.inputs[0].shape

    def example_input(self, batch_size: int | None = None) -> Inputs:
        return example_inputs(self.inputs, batch_size or self.batch_size)

    def onnx(self, batch_size: int | None = None) -> bytes:
        from nasengine.graphs.onnx_writer import to_onnx

        batch = batch_size or self.batch_size
        if self._dynamic_onnx is not None:
            return self._dynamic_onnx
        if batch not in self._onnx:
            self._onnx[batch] = to_onnx(self.model(), self.example_input(batch))
        return self._onnx[batch]

    def calibration_inputs(self) -> tuple[np.ndarray | dict[str, np.ndarray], str]:
        """(model inputs to calibrate INT8 ranges on, where they come from). Workloads built without data (single
        layers being profiled) calibrate on example inputs (standard-normal floats), and say so."""
        if self._calibration is not None:
            given = self._calibration()
            if isinstance(given, Mapping) and list(given) != [SINGLE_INPUT]:
                return dict(given), "training samples"
            if isinstance(given, Mapping):
                given = given[SINGLE_INPUT]
            return np.asarray(given, dtype=np.float32), "training images"
        feed = to_numpy(example_inputs(self.inputs, 32))
        return (feed[SINGLE_INPUT] if list(feed) == [SINGLE_INPUT] else feed), "standard-normal inputs"

    def int8_onnx(self) -> bytes:
        """The whole subnet in QDQ INT8 (every layer), symbolic batch, calibrated on `calibration_inputs`."""
        from nasengine.graphs.onnx_writer import to_onnx
        from nasengine.graphs.quantization import quantized_graph

        if self.carries_policy:
            return self.onnx()
        if self._int8 is None:
            graph = self._dynamic_onnx or to_onnx(self.model(), self.example_input(1), dynamic_batch=True)
            self._int8 = quantized_graph(graph, self.calibration_inputs()[0])
        return self._int8

    @property
    def symbolic_batch(self) -> bool:
        """Whether `onnx()` returns a graph with a symbolic batch dimension (a given, dynamic graph)."""
        return self._dynamic_onnx is not None


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
    # what the backend can do, declared by each backend class (commands ask these, never the backend's name):
    runs_models: bool = True  # it runs the subnet itself; False for tables and predictors (latency from data)
    runs_quantized_graphs: bool = False  # ONNX backends run a workload's own QDQ graph; torch and tables cannot
    precision: str = "fp32"  # int8: the device quantizes every layer itself

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
        if workload.carries_policy and not self.runs_quantized_graphs:
            raise UserError(f"device {self.name!r} ({self.backend}) cannot run a quantized graph; use an "
                            f"onnxruntime or remote device")
        return self._measure(workload)

    @abstractmethod
    def _measure(self, workload: Workload) -> Measurement:
        """Latency of the workload at this device's batch size."""

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "backend": self.backend, "settings": self.config.settings,
                "description": self.config.description}
