"""Device precision: what graph a device of a given precision runs for a workload."""

from __future__ import annotations

from nasengine.measurement.devices.base import Workload
from nasengine.graphs.quantization import with_batch

PRECISIONS = ("fp32", "int8")


def check_precision(value: object, device: str) -> str:
    """The precision setting of a device, or ValueError naming the device."""
    if value not in PRECISIONS:
        raise ValueError(f"device {device!r}: precision must be one of {', '.join(PRECISIONS)}, got {value!r}")
    return str(value)


def deployed_graph(workload: Workload, precision: str, batch_size: int) -> bytes:
    """The graph a device of this precision runs, at its batch size: the workload's own graph (FP32, or already
    quantized by its policy), or for an INT8 device every layer quantized as `nasengine.graphs.quantization` does it."""
    if precision == "int8" and not workload.carries_policy:
        return with_batch(workload.int8_onnx(), batch_size)
    graph = workload.onnx(batch_size)
    return with_batch(graph, batch_size) if workload.symbolic_batch else graph  # written at this batch size already
