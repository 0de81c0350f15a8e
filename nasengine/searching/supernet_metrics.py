"""The metrics of a subnet of a trained supernet: accuracy (the one evaluation path), latency per device (the
one measurement path), params, MACs, size, and metrics users register from a plugin."""

from __future__ import annotations

import fcntl
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import supernets
from nasengine.devices.base import Device, Workload
from nasengine.errors import UserError
from nasengine.evaluation import Evaluator
from nasengine.plugins import reload_recorded
from nasengine.searching.objectives import Metric, metric_column, register_metric
from search_spaces.registry import Registry
from search_spaces.space import Arch

BYTES_PER_PARAM = 4  # float32 weights
BUILTIN_METRICS = ("accuracy", "error", "params", "macs", "size_mb")


def load_trained(supernet_dir: Path) -> tuple[supernets.Supernet, dict[str, Any]]:
    """The trained supernet of a `nasengine train` directory (re-importing the plugins it was built with),
    or a one-line UserError."""
    try:
        config = supernets.io.read_config(Path(supernet_dir))
        if not isinstance(config.get("task"), dict):
            raise ValueError(f"{Path(supernet_dir) / supernets.io.CONFIG} records no task (its 'task' entry is "
                             f"missing or not an object); train the supernet again")
        reload_recorded(config.get("plugins", []))
        return supernets.load_supernet(Path(supernet_dir))
    except (FileNotFoundError, ValueError) as exc:
        raise UserError(str(exc)) from None


@dataclass(frozen=True)
class ComputedMetric:
    """A user metric of a subnet: `compute(arch, supernet) -> float`, e.g. the number of layers or a memory
    estimate; registered from a plugin, then usable in --objectives and --constraint by its name."""

    metric: Metric
    compute: Callable[[Arch, Any], float]


SUPERNET_METRICS: Registry[ComputedMetric] = Registry("supernet metric")


def register_supernet_metric(name: str, compute: Callable[[Arch, Any], float], direction: str = "minimize",
                             label: str = "") -> ComputedMetric:
    """Make `compute(arch, supernet)` a metric of every searched subnet, usable as an objective or constraint."""
    entry = ComputedMetric(register_metric(Metric(name, direction, label or name)), compute)
    return SUPERNET_METRICS.add(name, entry)


class SupernetMetrics:
    """`(arch) -> (metrics, details)` for the trial store: what the search of a trained supernet records."""

    def __init__(self, evaluator: Evaluator, devices: Sequence[Device], extra: Sequence[str] = (),
                 measure_lock: Path | None = None):
        self.evaluator, self.devices = evaluator, list(devices)
        self.measure_lock = measure_lock
        self.supernet = evaluator.supernet
        unknown = [n for n in extra if n not in SUPERNET_METRICS]
        if unknown:
            raise UserError(f"metric {unknown[0]!r} is not computed for supernets (registered: "
                            f"{', '.join(SUPERNET_METRICS.names()) or 'none'})")
        self.extra = [SUPERNET_METRICS.get(n) for n in extra]

    def workload(self, arch: Arch) -> Workload:
        return Workload(arch, self.supernet.space.key(arch), lambda: self.supernet.extract(arch),
                        self.supernet.input_shape(arch), describe=lambda: self.supernet.describe(arch))

    def __call__(self, arch: Arch) -> tuple[dict[str, float], dict[str, Any]]:
        canonical = self.supernet.space.validate(arch)
        cost = self.supernet.cost(canonical)
        accuracy = self.evaluator.evaluate(canonical)
        metrics: dict[str, float] = {"accuracy": accuracy, "error": 1.0 - accuracy, "params": float(cost.params),
                                     "macs": float(cost.macs),
                                     "size_mb": cost.params * BYTES_PER_PARAM / 1e6}
        details: dict[str, Any] = {"split": self.evaluator.split.name}
        workload = self.workload(canonical)
        for device in self.devices:
            with _exclusive(self.measure_lock):
                measurement = device.measure(workload)
            metrics[metric_column("latency_ms", device.name)] = measurement.median_ms
            details[f"latency_iqr_ms:{device.name}"] = measurement.iqr_ms
            details[f"latency_repeats:{device.name}"] = measurement.repeats
            details[f"latency_source:{device.name}"] = measurement.source
        for entry in self.extra:
            metrics[entry.metric.name] = float(entry.compute(canonical, self.supernet))
        return metrics, details


@contextmanager
def _exclusive(lock: Path | None) -> Iterator[None]:
    """Hold an exclusive lock on `lock` (workers of one machine measure one at a time); no-op for None."""
    if lock is None:
        yield
        return
    with open(lock, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
