"""A device known only through latencies measured elsewhere: a CSV of `arch` (JSON) and `latency_ms`.

Any `results.csv` of a nasengine run is such a table, as is a published benchmark converted to that form.
Archs are matched on their active genes (inactive / None genes ignored, key order ignored).
"""

from __future__ import annotations

import json
from functools import cached_property
from typing import Any, Mapping

import pandas as pd

from nasengine.measurement.devices.base import Device, DeviceConfig, Workload
from nasengine.measurement.devices.registry import register_backend
from nasengine.measurement.devices.timing import Measurement
from nasengine.errors import UserError, first_line


def table_key(arch: Mapping[str, Any]) -> str:
    """Order- and inactive-gene-insensitive identity of an arch."""
    return json.dumps({k: v for k, v in arch.items() if v is not None}, sort_keys=True, separators=(",", ":"))


class NotInTable(UserError):
    """The table holds no latency for this arch."""


@register_backend("table")
class TableDevice(Device):
    """Settings: `csv` (path), optional `column` (default latency_ms)."""

    backend = "table"
    runs_models = False

    def __init__(self, config: DeviceConfig, **kw: object):
        super().__init__(config, **kw)  # type: ignore[arg-type]
        self.path = config.path_setting("csv")
        self.column = str(config.settings.get("column", "latency_ms"))

    def availability(self) -> str | None:
        if not self.path.is_file():
            return f"table {self.path} does not exist"
        try:
            self.latencies
        except UserError as exc:
            return str(exc).removeprefix(f"device {self.name!r}: ")
        return None

    @cached_property
    def latencies(self) -> dict[str, float]:
        """arch key -> latency (ms); UserError naming the file and row when the table is not usable: every
        row needs an arch (a JSON object) and a finite latency > 0."""
        try:
            frame = pd.read_csv(self.path, dtype=str, keep_default_na=False)
        except (OSError, ValueError, UnicodeDecodeError) as exc:
            raise UserError(f"device {self.name!r}: cannot read {self.path}: {first_line(exc)}") from None
        missing = {"arch", self.column} - set(frame.columns)
        if missing:
            raise UserError(f"device {self.name!r}: {self.path} lacks column(s) {', '.join(sorted(missing))}")
        if frame.empty:
            raise UserError(f"device {self.name!r}: {self.path} has no rows")
        table: dict[str, float] = {}
        for row, (text, value) in enumerate(zip(frame["arch"], frame[self.column]), start=2):  # line 1: header
            where = f"device {self.name!r}: {self.path} line {row}"
            try:
                arch = json.loads(text)
            except json.JSONDecodeError:
                arch = None
            if not isinstance(arch, dict):
                raise UserError(f"{where}: arch is not a JSON object ({str(text)[:40]!r})")
            if not str(value).strip():
                raise UserError(f"{where}: {self.column} is missing")
            try:
                latency = float(value)
            except ValueError:
                raise UserError(f"{where}: {self.column} {value!r} is not a number") from None
            if not 0 < latency < float("inf"):
                raise UserError(f"{where}: {self.column} must be a positive number of ms, got {value}")
            table[table_key(arch)] = latency
        return table

    def __contains__(self, arch: Mapping[str, Any]) -> bool:
        return table_key(arch) in self.latencies

    def _measure(self, workload: Workload) -> Measurement:
        value = self.latencies.get(table_key(workload.arch))
        if value is None:
            raise NotInTable(f"device {self.name!r}: the table {self.path.name} has no latency for this arch")
        return Measurement.single(value, source=f"table:{self.path.name}")
