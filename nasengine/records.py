"""What the engine knows about one evaluated subnet (shared by search, reports and export)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from nasengine.devices.timing import Measurement


@dataclass
class Evaluation:
    """Accuracy on the search split, latency per device and analytic cost of one subnet."""

    arch: dict[str, Any]
    key: str
    accuracy: float
    params: int
    macs: int
    latency: dict[str, Measurement] = field(default_factory=dict)
