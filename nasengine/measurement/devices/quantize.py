"""Device precision: what graph a device of a given precision runs for a workload."""

from __future__ import annotations

from nasengine.measurement.devices.base import Workload
from nasengine.graphs.quantization import with_batch
from nasengine.search_spaces.quantization import PRECISIONS, WEIGHT_ONLY_BITS


def check_precision(value: object, device: str) -> str:
    """The precision setting of a device, or ValueError naming the device."""
    if value not in PRECISIONS:
        raise ValueError(f"device {device!r}: precision must be one of {', '.join(PRECISIONS)}, got {value!r}")
    return str(value)


def deployed_graph(workload: Workload, precision: str, batch_size: int) -> bytes:
    """The graph a device of this precision runs, at its batch size: the workload's own graph (FP32, or already
    quantized by its policy), or for a quantizing device every layer quantized as `nasengine.graphs` does it:
    static INT8 (int8), or weight-only INT8/INT4 matrix weights (w8/w4; a graph without any runs FP32)."""
    if precision == "int8" and not workload.carries_policy:
        return with_batch(workload.int8_onnx(), batch_size)
    if precision in WEIGHT_ONLY_BITS and not workload.carries_policy:
        from nasengine.graphs.weight_only import layers_with_weight_matmuls, weight_only_graph

        graph = workload.onnx(batch_size)
        if layers_with_weight_matmuls(graph, [""]):
            graph = weight_only_graph(graph, {"": WEIGHT_ONLY_BITS[precision]})
        return with_batch(graph, batch_size) if workload.symbolic_batch else graph
    graph = workload.onnx(batch_size)
    return with_batch(graph, batch_size) if workload.symbolic_batch else graph  # written at this batch size already
