"""`lut` backend: a device whose latency is predicted from a per-layer lookup table (see nasengine.measurement.lut).

`lut:DEVICE` names the table that `nasengine device profile DEVICE SUPERNET_DIR` wrote for the searched
supernet, so `nasengine search SN --device lut:ort-cpu-1t` searches on table predictions.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from nasengine.measurement.devices.base import Device, DeviceConfig, Workload
from nasengine.measurement.devices.registry import register_backend, register_resolver
from nasengine.measurement.devices.timing import Measurement
from nasengine.errors import UserError

TABLES_DIR = "latency_tables"


def table_path(supernet_dir: Path, device: str, precision: str = "fp32") -> Path:
    """Where `nasengine device profile` keeps a device's table for a supernet: DEVICE.json for FP32 layers,
    DEVICE.int8.json for every layer in INT8 (the two tables that price a mixed-precision policy)."""
    suffix = "" if precision == "fp32" else f".{precision}"
    return Path(supernet_dir) / TABLES_DIR / f"{device}{suffix}.json"


@register_backend("lut")
class LookupTableDevice(Device):
    """Settings: `table` (path of a latency table JSON)."""

    backend = "lut"
    runs_models = False

    def __init__(self, config: DeviceConfig, **kw: object):
        super().__init__(config, **kw)  # type: ignore[arg-type]
        self.path = config.path_setting("table")

    def availability(self) -> str | None:
        if not self.path.is_file():
            return f"no latency table at {self.path} (run `nasengine device profile`)"
        return self._load_problem(lambda: self.table)

    @cached_property
    def table(self):  # type: ignore[no-untyped-def]
        from nasengine.measurement.lut import LatencyTable

        try:
            return LatencyTable.load(self.path)
        except (OSError, ValueError, TypeError) as exc:
            raise UserError(f"device {self.name!r}: cannot read latency table {self.path}: {exc}") from None

    def _measure(self, workload: Workload) -> Measurement:
        try:
            return Measurement.single(self.table.predict(workload.layers()), source=f"lut:{self.table.device}")
        except ValueError as exc:
            raise UserError(f"device {self.name!r}: {exc}") from None


def _resolve(device: str, context: dict) -> DeviceConfig:
    supernet_dir = context.get("supernet_dir")
    if supernet_dir is None:
        raise UserError(f"lut:{device} needs a supernet (its tables live in SUPERNET_DIR/{TABLES_DIR}/)")
    return DeviceConfig(f"lut:{device}", "lut", {"table": str(table_path(Path(str(supernet_dir)), device))},
                        f"per-layer lookup table of {device}")


register_resolver("lut", _resolve)
