"""What predictor-guided strategies know about a subnet before evaluating it: its cost descriptors from the op
descriptions (MACs, params, activations, op counts per kind of compute) and, for each searched device that has
one, the latency its lookup table or few-shot predictor gives. Latency and accuracy follow these long before a
few noisy measurements can say so, and a prior latency keeps measurement noise from steering the search."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable, Sequence

from nasengine.kernels.describe import DESCRIPTORS, LayerSpec, cost_descriptors
from nasengine.measurement.devices.lut_device import table_path
from nasengine.measurement.devices.predicted import MODELS_DIR, PredictedLatency
from nasengine.search_spaces.space import Arch

LatencyPrior = Callable[[Arch, Sequence[LayerSpec]], float]


def latency_priors(supernet_dir: Path, devices: Sequence[str]) -> dict[str, LatencyPrior]:
    """device -> predicted ms, for each measuring device with a lookup table (`nasengine device profile`) or an
    adapted predictor (`nasengine device adapt`) saved for this supernet; devices without one are left out."""
    priors: dict[str, LatencyPrior] = {}
    for device in devices:
        if ":" in device:  # lut:/meta: devices are predictions already
            continue
        table, adapted = table_path(supernet_dir, device), Path(supernet_dir) / MODELS_DIR / device
        try:
            if table.is_file():
                from nasengine.measurement.lut import LatencyTable

                loaded = LatencyTable.load(table)
                priors[device] = lambda arch, layers, loaded=loaded: loaded.predict(layers)
            elif (adapted / "model.json").is_file():
                model = PredictedLatency(adapted)
                priors[device] = model.predict
        except (OSError, ValueError, KeyError, TypeError):
            continue  # an unreadable prior is no prior; the device's own measurements still count
    return priors


def cost_features(net: Any, quantization: Any, priors: dict[str, LatencyPrior] | None = None
                  ) -> Callable[[Arch], list[float]]:
    """arch -> log1p of its cost descriptors, then log of each prior latency (its precision genes aside)."""
    priors = priors or {}

    def features(arch: Arch) -> list[float]:
        network = quantization.policy(arch)[0]
        layers = net.describe(network)
        costs = cost_descriptors(layers)
        return [*(math.log1p(costs[name]) for name in DESCRIPTORS),
                *(math.log(max(prior(network, layers), 1e-9)) for prior in priors.values())]

    return features
