"""Pricing a per-layer precision policy from a device's lookup tables at several precisions (FP32, INT8, ...):
which precision each described layer runs at, and the latency of the whole subnet, conversions included."""

from __future__ import annotations

from typing import Mapping, Sequence

from nasengine.kernels.describe import LayerSpec
from nasengine.measurement.lut import LatencyTable, signature_key


def layer_precisions(layers: Sequence[LayerSpec], policy: Mapping[str, str]) -> list[str]:
    """Each described layer's precision under `policy` ({layer path: precision} of the layers that hold weights,
    in execution order, as `Quantization.policy` gives it): the weight-holding layers take the policy's
    precisions in order, a weightless layer (a pooling) follows the layer before it as the quantizer does.
    ValueError when the counts disagree (a family whose descriptions and layers do not line up)."""
    weighted = [i for i, layer in enumerate(layers) if layer.params > 0]
    if len(weighted) != len(policy):
        raise ValueError(f"{len(policy)} policy layers for {len(weighted)} described layers holding weights")
    out, current = [], "fp32"
    precisions = iter(policy.values())
    for layer in layers:
        if layer.params > 0:
            current = next(precisions)
        out.append(current)
    return out


def mixed_precision_latency(tables: Mapping[str, LatencyTable], layers: Sequence[LayerSpec],
                            precisions: Sequence[str]) -> float:
    """A subnet's latency with each layer at its precision, priced by the device's table of that precision (FP32's
    when it has none): each layer's entry scaled by its own table's calibration, the per-call constant of each table
    weighted by the share of layers it prices, so that a uniform policy reproduces its table's prediction exactly."""
    priced = [precision if precision in tables else "fp32" for precision in precisions]
    constants = [tables[p].scale * tables[p].overhead_ms + tables[p].offset_ms for p in priced or ["fp32"]]
    total = sum(constants) / len(constants)
    for i, (layer, precision) in enumerate(zip(layers, priced)):
        table, key = tables[precision], signature_key(layer)
        if key not in table.entries:
            raise ValueError(f"latency table for {table.device} ({precision}) has no entry for layer {layer.name}; "
                             "profile the device again for this supernet")
        quantize, dequantize = table.boundary(layer)  # paid where a run of this precision starts and ends
        starts = i == 0 or priced[i - 1] != precision
        ends = i == len(priced) - 1 or priced[i + 1] != precision
        total += table.scale * (table.entries[key] + quantize * starts + dequantize * ends)
    return max(total, 1e-6)
