"""`predicted` backend: a device whose latency comes from a few-shot adapted predictor (`nasengine device adapt`,
nasengine.measurement.adapt, writes it; `PredictedLatency` reads it back).

`meta:TARGET` names the predictor that `nasengine device adapt TARGET SUPERNET_DIR` saved for the searched
supernet, so `nasengine search SN --device meta:TARGET` searches a device measured only k times.
"""

from __future__ import annotations

import json
import math
import zipfile
from functools import cached_property
from pathlib import Path
from typing import Sequence

import numpy as np

from nasengine.measurement.devices.base import Device, DeviceConfig, Workload
from nasengine.measurement.devices.registry import register_backend, register_resolver
from nasengine.measurement.devices.timing import Measurement
from nasengine.errors import UserError
from nasengine.kernels.describe import DESCRIPTORS, LayerSpec, cost_descriptors
from nasengine.search_spaces.space import Arch, Space

MODELS_DIR = "latency_models"


FEATURES = "onehot+cost_descriptors"
N_DESCRIPTORS = len(DESCRIPTORS)  # trailing columns of arch_features that the predictor treats as costs


def arch_features(space: Space, arch: Arch, layers: Sequence[LayerSpec]) -> np.ndarray:
    """The encoding the predictor sees: one-hot genes, then the subnet's cost descriptors from its op
    descriptions (MACs, params, activations, op counts and MACs per kind of compute)."""
    costs = cost_descriptors(layers)
    return np.concatenate([space.encode(arch, "onehot"), [costs[name] for name in DESCRIPTORS]])


def _features_v1(space: Space, arch: Arch, layers: Sequence[LayerSpec]) -> np.ndarray:
    """The encoding of predictors adapted before cost descriptors: one-hot genes, log MACs, log params."""
    macs = sum(layer.macs for layer in layers)
    params = sum(layer.params for layer in layers)
    return np.concatenate([space.encode(arch, "onehot"), [math.log(macs + 1.0), math.log(params + 1.0)]])


_FEATURES = {FEATURES: arch_features, "onehot+log_macs+log_params": _features_v1}  # saved name -> encoding


class PredictedLatency:
    """A saved adapted predictor with the space it encodes: arch (+ its layers) -> predicted ms."""

    def __init__(self, directory: Path):
        try:
            info = json.loads((directory / "model.json").read_text())
            self.target, self.n_support = info["target"], len(info["support"])
            self.space = Space.from_dict(info["space"])
            self.features = _FEATURES[info.get("features", FEATURES)]
        except (TypeError, KeyError, AttributeError) as exc:
            raise ValueError(f"{directory / 'model.json'} is not an adapted latency predictor ({exc!r}); run "
                             f"`nasengine device adapt` again") from None
        from nasengine.predictors.latency import AdaptedLatencyPredictor  # used here only: a fast CLI start-up

        self.predictor = AdaptedLatencyPredictor.load(directory / "predictor")

    def predict(self, arch: Arch, layers: Sequence[LayerSpec]) -> float:
        return float(self.predictor.predict(self.features(self.space, arch, layers)[None, :])[0])


@register_backend("predicted")
class PredictedDevice(Device):
    """Settings: `model` (directory written by `nasengine device adapt`)."""

    backend = "predicted"
    runs_models = False

    def __init__(self, config: DeviceConfig, **kw: object):
        super().__init__(config, **kw)  # type: ignore[arg-type]
        self.path = config.path_setting("model")

    def availability(self) -> str | None:
        if not (self.path / "model.json").is_file():
            return f"no adapted latency predictor at {self.path} (run `nasengine device adapt`)"
        return self._load_problem(lambda: self.model)

    @cached_property
    def model(self) -> "PredictedLatency":
        try:
            return PredictedLatency(self.path)
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:  # a damaged arrays.npz too
            raise UserError(f"device {self.name!r}: cannot read {self.path}: {exc}") from None

    def _measure(self, workload: Workload) -> Measurement:
        try:
            value = self.model.predict(workload.arch, workload.layers())
        except ValueError as exc:
            raise UserError(f"device {self.name!r}: {exc}") from None
        return Measurement.single(value, source=f"meta:{self.model.target} (k={self.model.n_support})")


def _resolve(target: str, context: dict) -> DeviceConfig:
    supernet_dir = context.get("supernet_dir")
    if supernet_dir is None:
        raise UserError(f"meta:{target} needs a supernet (its predictors live in SUPERNET_DIR/{MODELS_DIR}/)")
    path = Path(str(supernet_dir)) / MODELS_DIR / target.replace(":", "_")
    return DeviceConfig(f"meta:{target}", "predicted", {"model": str(path)}, f"few-shot predicted {target}")


register_resolver("meta", _resolve)
