"""The metrics of a subnet of a trained supernet: accuracy (the one evaluation path), latency per device (the
one measurement path), params, MACs, size, and metrics users register from a plugin."""

from __future__ import annotations

import fcntl
import json
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

from nasengine.measurement.devices.base import Device, Workload
from nasengine.measurement.devices.timing import Measurement
from nasengine.errors import UserError
from nasengine.evaluation.evaluator import Evaluator
from nasengine.searching.objectives import Metric, metric_column, register_metric
from nasengine.search_spaces.quantization import BYTES_PER_WEIGHT, QuantizableLayer, int8_layers, quantizes, \
    split_policy, weight_only_layers, with_policy_genes
from nasengine.search_spaces.registry import Registry
from nasengine.search_spaces.space import Arch, Space

BYTES_PER_PARAM = 4  # float32 weights
DECODE_CACHE = 256  # key/value positions a decoder's per-token latency and memory are taken at (--decode-cache)
BUILTIN_METRICS = ("accuracy", "error", "params", "macs", "size_mb", "memory_mb")
QUANTIZATION_MODES = ("none", "int8", "search")
QUANT_ACCURACY = ("real", "estimate")


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


@dataclass(frozen=True)
class Quantization:
    """How searched subnets are deployed: `none` (FP32), `int8` (every layer INT8) or `search` (a precision gene
    per layer, co-searched); quantized accuracy is `real` (onnxruntime on the split) or `estimate` (fake-quant)."""

    mode: str = "none"
    layers: tuple[QuantizableLayer, ...] = ()
    accuracy: str = "real"

    def __post_init__(self) -> None:
        if self.mode not in QUANTIZATION_MODES:
            raise UserError(f"--quantization must be one of {', '.join(QUANTIZATION_MODES)}, got {self.mode!r}")
        if self.accuracy not in QUANT_ACCURACY:
            raise UserError(f"--quant-accuracy must be one of {', '.join(QUANT_ACCURACY)}, got {self.accuracy!r}")

    def space(self, base: Space) -> Space:
        """The searched space: the architecture's, plus the policy genes when the policy is searched."""
        return with_policy_genes(base, self.layers) if self.mode == "search" else base

    def policy(self, arch: Mapping[str, Any]) -> tuple[Arch, dict[str, str]]:
        """(network arch, precision of every layer the arch uses)."""
        network, genes = split_policy(arch)
        active = [layer.path for layer in self.layers if layer.active_if is None or layer.active_if.holds(network)]
        if self.mode == "search":
            return network, {path: genes[path] for path in active}
        return network, {path: "int8" if self.mode == "int8" else "fp32" for path in active}


class SupernetMetrics:
    """`(arch) -> (metrics, details)` for the trial store: what the search of a trained supernet records."""

    def __init__(self, evaluator: Evaluator, devices: Sequence[Device], extra: Sequence[str] = (),
                 measure_lock: Path | None = None, quantization: Quantization | None = None,
                 cache_tokens: int = DECODE_CACHE):
        self.evaluator, self.devices = evaluator, list(devices)
        self.measure_lock, self.cache_tokens = measure_lock, cache_tokens
        self.quantization = quantization or Quantization()
        self.supernet = evaluator.supernet
        unknown = [n for n in extra if n not in SUPERNET_METRICS]
        if unknown:
            raise UserError(f"metric {unknown[0]!r} is not computed for supernets (registered: "
                            f"{', '.join(SUPERNET_METRICS.names()) or 'none'})")
        self.extra = [SUPERNET_METRICS.get(n) for n in extra]

    def workload(self, arch: Arch, graph: bytes | None = None, policy: Mapping[str, str] | None = None) -> Workload:
        """The subnet as devices time it; with `graph`, the deployed (quantized) ONNX graph of `policy`."""
        return Workload.of_supernet(self.supernet, arch, lambda: self.evaluator.quantization_inputs(arch),
                                    dynamic_onnx=graph, policy=policy)

    def _accuracy(self, arch: Arch, policy: Mapping[str, str]) -> tuple[dict[str, float], bytes | None]:
        """Accuracy (and, for a language model, perplexity) of `arch` as deployed, and its quantized graph if any."""
        int8, weight_only = int8_layers(policy), weight_only_layers(policy)
        if not quantizes(policy):
            scores = self.evaluator.scores(arch)
            language = self.evaluator.task.language_model
            return {k: scores[k] for k in (("accuracy", "perplexity") if language else ("accuracy",))}, None
        if self.quantization.accuracy == "estimate":  # (estimate mode offers no weight-only precision)
            return ({"accuracy": self.evaluator.fake_quantized(arch, int8)},
                    self.evaluator.deployed_graph(arch, int8))
        accuracy, graph = self.evaluator.quantized(arch, int8, weight_only=weight_only)
        return {"accuracy": accuracy}, graph

    def _size_mb(self, arch: Arch, policy: Mapping[str, str], params: int) -> float:
        """Weights in MB: 4 bytes per FP32 parameter, 1 per parameter of an INT8 (or weight-only INT8) layer, half a
        byte per parameter of a weight-only INT4 layer (block scales not counted)."""
        if not quantizes(policy):
            return params * BYTES_PER_PARAM / 1e6
        saved = 0.0
        for name, p in self.supernet.extract(arch).named_parameters():
            owner = next((path for path in policy if not path or name.startswith(f"{path}.")), None)
            if owner is not None:
                saved += p.numel() * (BYTES_PER_PARAM - BYTES_PER_WEIGHT[policy[owner]])
        return (params * BYTES_PER_PARAM - saved) / 1e6

    def __call__(self, arch: Arch) -> tuple[dict[str, float], dict[str, Any]]:
        network, policy = self.quantization.policy(arch)
        canonical = self.supernet.space.validate(network)
        cost = self.supernet.cost(canonical)
        scores, graph = self._accuracy(canonical, policy)
        size_mb = self._size_mb(canonical, policy, cost.params)
        metrics: dict[str, float] = {**scores, "error": 1.0 - scores["accuracy"], "params": float(cost.params),
                                     "macs": float(cost.macs), "size_mb": size_mb,
                                     "memory_mb": size_mb + self.supernet.cache_bytes(canonical,
                                                                                      self.cache_tokens) / 1e6}
        details: dict[str, Any] = {"split": self.evaluator.split.name}
        if self.quantization.mode != "none":
            details["quant_policy"] = json.dumps(policy, separators=(",", ":"))
        workload = self.workload(canonical, graph, policy if graph is not None else None)
        for device in self.devices:
            with _exclusive(self.measure_lock):
                measurement = device.measure(workload)
            metrics[metric_column("latency_ms", device.name)] = measurement.median_ms
            details[f"latency_iqr_ms:{device.name}"] = measurement.iqr_ms
            details[f"latency_repeats:{device.name}"] = measurement.repeats
            details[f"latency_source:{device.name}"] = measurement.source
            details[f"latency_inputs:{device.name}"] = measurement.inputs  # batch and sequence length as timed
            self._measure_phases(canonical, device, metrics, details)
        for entry in self.extra:
            metrics[entry.metric.name] = float(entry.compute(canonical, self.supernet))
        return metrics, details


    def _measure_phases(self, arch: Arch, device: Device, metrics: dict[str, float], details: dict[str, Any]) -> None:
        """The family's other latencies on `device` (a decoder's per-token decode against a cache), recorded as
        `<phase>_ms:<device>`; devices that predict from layers (tables, predictors) time the forward pass only."""
        with _exclusive(self.measure_lock):
            measured = measure_phases(self.supernet, arch, device, self.cache_tokens)
        for phase, measurement in measured.items():
            metrics[metric_column(f"{phase}_ms", device.name)] = measurement.median_ms
            details[f"{phase}_iqr_ms:{device.name}"] = measurement.iqr_ms
            details[f"{phase}_inputs:{device.name}"] = measurement.inputs


def measure_phases(supernet: Any, arch: Arch, device: Device, cache_tokens: int) -> dict[str, Measurement]:
    """The family's latencies beyond the forward pass (a decoder's per-token decode against a cache of
    `cache_tokens`) timed on `device`; none on devices that predict from layers (tables, predictors)."""
    if not device.runs_models:
        return {}
    return {phase: device.measure(Workload(arch, f"{supernet.space.key(arch)}|{phase}", build, inputs))
            for phase, (build, inputs) in supernet.phases(arch, cache_tokens).items()}


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
