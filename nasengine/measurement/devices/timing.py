"""The one latency-measurement loop: warm-up, enough timed repeats for a stable median, robust spread."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any, Callable

import numpy as np


@dataclass(frozen=True)
class TimingSettings:
    """Warm up for at least `warmup_runs` and `warmup_seconds`, then time at least `min_repeats` runs and
    `min_seconds` of work (capped at `max_repeats`). Samples beyond 3 IQR above the upper quartile are
    counted as outliers (OS preemption) and left out of mean/std; the median is robust to them anyway."""

    warmup_runs: int = 10
    warmup_seconds: float = 0.05
    min_repeats: int = 30
    min_seconds: float = 0.2
    max_repeats: int = 2000

    def __post_init__(self) -> None:
        if self.min_repeats < 3 or self.max_repeats < self.min_repeats:
            raise ValueError("timing needs min_repeats >= 3 and max_repeats >= min_repeats")


@dataclass(frozen=True)
class Measurement:
    """Latency of one model on one device, in milliseconds, with its spread and how it was obtained."""

    median_ms: float
    iqr_ms: float
    mean_ms: float
    std_ms: float
    min_ms: float
    p90_ms: float
    repeats: int
    outliers: int
    source: str = "measured"
    inputs: str = ""  # what was fed, `name:dtype[shape]` per input (batch and sequence length included)

    @property
    def spread(self) -> float:
        """Relative spread: inter-quartile range over median."""
        return self.iqr_ms / self.median_ms if self.median_ms > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Measurement":
        fields = cls.__dataclass_fields__
        return cls(**{k: v for k, v in data.items() if k in fields})

    @classmethod
    def from_samples(cls, samples_ms: np.ndarray, source: str = "measured") -> "Measurement":
        samples_ms = np.asarray(samples_ms, dtype=float)
        q1, median, q3, p90 = np.percentile(samples_ms, [25, 50, 75, 90])
        iqr = q3 - q1
        inliers = samples_ms[samples_ms <= q3 + 3 * iqr] if iqr > 0 else samples_ms
        return cls(median_ms=float(median), iqr_ms=float(iqr), mean_ms=float(inliers.mean()),
                   std_ms=float(inliers.std()), min_ms=float(samples_ms.min()), p90_ms=float(p90),
                   repeats=int(samples_ms.size), outliers=int(samples_ms.size - inliers.size), source=source)

    @classmethod
    def single(cls, value_ms: float, source: str) -> "Measurement":
        """A latency known as one number (a table, a prediction): no spread."""
        v = float(value_ms)
        return cls(v, 0.0, v, 0.0, v, v, 1, 0, source)


def time_repeated(run: Callable[[], object], settings: TimingSettings = TimingSettings()) -> Measurement:
    """Time `run()` (one inference) under `settings` and summarise the samples."""
    clock = time.perf_counter_ns
    start, runs = clock(), 0
    while runs < settings.warmup_runs or (clock() - start) < settings.warmup_seconds * 1e9:
        run()
        runs += 1
    samples: list[int] = []
    begin = clock()
    while len(samples) < settings.max_repeats and (
            len(samples) < settings.min_repeats or (clock() - begin) < settings.min_seconds * 1e9):
        t0 = clock()
        run()
        samples.append(clock() - t0)
    return Measurement.from_samples(np.array(samples, dtype=float) / 1e6)
