"""`predicted` backend: a device whose latency comes from a few-shot adapted predictor (nasengine.meta_latency).

`meta:TARGET` names the predictor that `nasengine device adapt TARGET SUPERNET_DIR` saved for the searched
supernet, so `nasengine search SN --device meta:TARGET` searches a device measured only k times.
"""

from __future__ import annotations

import zipfile
from functools import cached_property
from pathlib import Path

from nasengine.devices.base import Device, DeviceConfig, Workload
from nasengine.devices.registry import register_backend, register_resolver
from nasengine.devices.timing import Measurement
from nasengine.errors import UserError

MODELS_DIR = "latency_models"


@register_backend("predicted")
class PredictedDevice(Device):
    """Settings: `model` (directory written by `nasengine device adapt`)."""

    backend = "predicted"

    def __init__(self, config: DeviceConfig, **kw: object):
        super().__init__(config, **kw)  # type: ignore[arg-type]
        self.path = config.path_setting("model")

    def availability(self) -> str | None:
        if not (self.path / "model.json").is_file():
            return f"no adapted latency predictor at {self.path} (run `nasengine device adapt`)"
        return self._load_problem(lambda: self.model)

    @cached_property
    def model(self):  # type: ignore[no-untyped-def]
        from nasengine.meta_latency import PredictedLatency

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
