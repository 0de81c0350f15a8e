"""A device known only through latencies measured elsewhere: a CSV of `arch` (JSON) and `latency_ms`.

Any `results.csv` of a nasengine run is such a table, as is a published benchmark converted to that form.
Archs are matched on their active genes (inactive / None genes ignored, key order ignored).
"""

from __future__ import annotations

import json
from functools import cached_property
from typing import Any, Mapping

import pandas as pd

from nasengine.devices.base import Device, DeviceConfig, Workload
from nasengine.devices.registry import register_backend
from nasengine.devices.timing import Measurement
from nasengine.errors import UserError


def table_key(arch: Mapping[str, Any]) -> str:
    """Order- and inactive-gene-insensitive identity of an arch."""
    return json.dumps({k: v for k, v in arch.items() if v is not None}, sort_keys=True, separators=(",", ":"))


class NotInTable(UserError):
    """The table holds no latency for this arch."""


@register_backend("table")
class TableDevice(Device):
    """Settings: `csv` (path), optional `column` (default latency_ms)."""

    backend = "table"

    def __init__(self, config: DeviceConfig, **kw: object):
        super().__init__(config, **kw)  # type: ignore[arg-type]
        self.path = config.path_setting("csv")
        self.column = str(config.settings.get("column", "latency_ms"))

    def availability(self) -> str | None:
        return None if self.path.is_file() else f"table {self.path} does not exist"

    @cached_property
    def latencies(self) -> dict[str, float]:
        try:
            frame = pd.read_csv(self.path)
        except (OSError, ValueError) as exc:
            raise UserError(f"device {self.name!r}: cannot read {self.path}: {exc}") from None
        missing = {"arch", self.column} - set(frame.columns)
        if missing:
            raise UserError(f"device {self.name!r}: {self.path} lacks column(s) {', '.join(sorted(missing))}")
        table: dict[str, float] = {}
        for text, value in zip(frame["arch"], frame[self.column]):
            try:
                table[table_key(json.loads(text))] = float(value)
            except (TypeError, ValueError, json.JSONDecodeError):
                raise UserError(f"device {self.name!r}: {self.path} has a malformed row ({str(text)[:40]}...)") from None
        return table

    def __contains__(self, arch: Mapping[str, Any]) -> bool:
        return table_key(arch) in self.latencies

    def _measure(self, workload: Workload) -> Measurement:
        value = self.latencies.get(table_key(workload.arch))
        if value is None:
            raise NotInTable(f"device {self.name!r}: the table {self.path.name} has no latency for this arch")
        return Measurement.single(value, source=f"table:{self.path.name}")
