"""What predictor-guided strategies know about a subnet before evaluating it: its cost descriptors from the op
descriptions (MACs, params, activations, op counts per kind of compute), for each searched device that has one the
latency its lookup tables or few-shot predictor give (priced at the candidate's precision policy when the device has
tables at other precisions too), and the summed quantization sensitivity of its INT8 layers when the policy is
searched. Latency and accuracy follow these long before a few noisy measurements can say so, and a prior latency
keeps measurement noise from steering the search."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from nasengine.kernels.describe import DESCRIPTORS, LayerSpec, cost_descriptors
from nasengine.measurement.devices.lut_device import table_path
from nasengine.measurement.devices.predicted import MODELS_DIR, PredictedLatency
from nasengine.search_spaces.quantization import quantizes
from nasengine.search_spaces.space import Arch

LatencyPrior = Callable[[Arch, Sequence[LayerSpec], Mapping[str, str]], float]  # (network, layers, policy) -> ms


def latency_priors(supernet_dir: Path, devices: Sequence[str]) -> dict[str, LatencyPrior]:
    """device -> predicted ms, for each measuring device with a lookup table (`nasengine device profile`; with tables
    at other precisions, `--precision int8` say, each layer is priced at the policy's precision) or an adapted predictor
    (`nasengine device adapt`) saved for this supernet; devices without one are left out."""
    from nasengine.measurement.lut import LatencyTable
    from nasengine.searching.policy_prior import load_precision_tables

    priors: dict[str, LatencyPrior] = {}
    for device in devices:
        if ":" in device:  # lut:/meta: devices are predictions already
            continue
        table, adapted = table_path(supernet_dir, device), Path(supernet_dir) / MODELS_DIR / device
        try:
            if table.is_file():
                loaded, both = LatencyTable.load(table), load_precision_tables(supernet_dir, device)
                priors[device] = _table_prior(loaded, both)
            elif (adapted / "model.json").is_file():
                model = PredictedLatency(adapted)
                priors[device] = lambda network, layers, policy, model=model: model.predict(network, layers)
        except (OSError, ValueError, KeyError, TypeError):
            continue  # an unreadable prior is no prior; the device's own measurements still count
    return priors


def _table_prior(fp32: Any, both: Any) -> LatencyPrior:
    """The FP32 table's prediction, or the policy priced layer by layer when the device has tables at other
    precisions too."""
    def prior(network: Arch, layers: Sequence[LayerSpec], policy: Mapping[str, str]) -> float:
        if both is not None and quantizes(policy):
            try:
                return both.latency(layers, policy)
            except ValueError:  # descriptions and policy layers do not line up: the FP32 price is still a prior
                pass
        return fp32.predict(layers)

    return prior


def cost_features(net: Any, quantization: Any, priors: dict[str, LatencyPrior] | None = None,
                  sensitivity: Callable[[Mapping[str, str]], float] | None = None) -> Callable[[Arch], list[float]]:
    """arch -> log1p of its network's cost descriptors, log of each prior latency at the arch's policy, then (when
    given) the policy's quantization sensitivity."""
    priors = priors or {}

    def features(arch: Arch) -> list[float]:
        network, policy = quantization.policy(arch)
        layers = net.describe(network)
        costs = cost_descriptors(layers)
        return [*(math.log1p(costs[name]) for name in DESCRIPTORS),
                *(math.log(max(prior(network, layers, policy), 1e-9)) for prior in priors.values()),
                *([sensitivity(policy)] if sensitivity is not None else [])]

    return features
