"""What the device and the supernet say about a precision policy before it is evaluated.

Two priors, both cheap next to one real evaluation:
- each layer's latency at each precision, from the device's lookup tables (`nasengine device profile DEVICE SN`
  and `... --precision int8`, `w8`, `w4`), which price any per-layer policy;
- each layer's quantization sensitivity: the output error of the largest subnet with only that layer in INT8
  (HAQ and HAWQ rank layers this way), measured once per search and kept in the run directory.

They give the predictors two numbers per candidate (its priced latency, the summed sensitivity of its INT8 layers)
and propose policies likely to pay: each layer at its fastest priced precision where that beats FP32, the most
sensitive of those kept in FP32 at a random level of caution, so the search starts from policies that pay instead
of coin flips.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from nasengine.measurement.devices.lut_device import table_path
from nasengine.measurement.lut import LatencyTable, signature_key
from nasengine.measurement.policy_pricing import layer_precisions, mixed_precision_latency
from nasengine.search_spaces.quantization import GENE_PREFIX, PRECISIONS, STATIC_PRECISIONS
from nasengine.search_spaces.space import Arch
from nasengine.search_spaces.storage import atomic_write

SENSITIVITY_FILE = "quantization_sensitivity.json"
SENSITIVITY_SAMPLES = 512  # validation rows each layer's output error is measured on
CAUTION_LEVELS = (0.0, 0.25, 0.5)  # share of the INT8-paying layers a proposal keeps in FP32, most sensitive first


@dataclass(frozen=True)
class PrecisionTables:
    """A device's per-layer latency tables for one supernet, by precision (FP32 always, and at least one other)."""

    tables: Mapping[str, LatencyTable]

    def latency(self, layers: Sequence[Any], policy: Mapping[str, str]) -> float:
        """Priced latency (ms) of the described subnet under `policy` (see `layer_precisions`); a precision without
        a table is priced as FP32."""
        return mixed_precision_latency(self.tables, layers, layer_precisions(layers, policy))

    def saving(self, layer: Any, precision: str) -> float | None:
        """Milliseconds the layer saves at `precision` against FP32 (negative: slower), each entry at its table's
        scale; None when no table prices that precision. KeyError for a layer a table lacks."""
        if precision not in self.tables:
            return None
        fp32, other, key = self.tables["fp32"], self.tables[precision], signature_key(layer)
        return fp32.scale * fp32.entries[key] - other.scale * other.entries[key]


def load_precision_tables(supernet_dir: Path, device: str) -> PrecisionTables | None:
    """The device's tables for this supernet at every precision it was profiled at, or None unless the FP32 table
    and at least one other are there and readable."""
    tables = {}
    for precision in PRECISIONS:
        path = table_path(supernet_dir, device, precision)
        if not path.is_file():
            continue
        try:
            tables[precision] = LatencyTable.load(path)
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return PrecisionTables(tables) if "fp32" in tables and len(tables) > 1 else None


def quantization_sensitivity(run_dir: Path, identity: Mapping[str, Any], measure: Any) -> dict[str, float]:
    """{layer path: sensitivity}, from the run directory when it was measured for the same supernet and layers,
    else `measure()` (and kept there, so a resumed search or a worker proposes the same policies)."""
    path = Path(run_dir) / SENSITIVITY_FILE
    try:
        saved = json.loads(path.read_text())
        if saved.get("identity") == dict(identity):
            return {str(k): float(v) for k, v in saved["sensitivity"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        pass
    sensitivity = {str(k): float(v) for k, v in measure().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, json.dumps({"identity": dict(identity), "sensitivity": sensitivity}, indent=1))
    return sensitivity


class PolicyPrior:
    """Prices and proposes precision policies of one searched space.

    `split(arch) -> (network, policy)` separates an arch from its policy (`Quantization.policy`), `describe`
    gives a network's layers; `tables` (None: no prices beyond FP32 for this device) and `sensitivity` (per layer
    path, or a function measuring it, called once when first needed; empty: unknown) are the two priors, and
    `options` the precisions each layer may take (default fp32 and int8). A family whose descriptions do not line up
    with its quantizable layers gets no proposals."""

    def __init__(self, split: Any, describe: Any, tables: PrecisionTables | None,
                 sensitivity: Mapping[str, float] | Callable[[], Mapping[str, float]] | None = None,
                 options: Mapping[str, Sequence[str]] | None = None):
        self.split, self.describe, self.tables = split, describe, tables
        self.options = {path: tuple(choices) for path, choices in (options or {}).items()}
        self._sensitivity = sensitivity
        self._measured: dict[str, float] | None = None

    @property
    def sensitivity(self) -> dict[str, float]:
        if self._measured is None:
            given = self._sensitivity() if callable(self._sensitivity) else self._sensitivity
            self._measured = {str(k): float(v) for k, v in (given or {}).items()}
        return self._measured

    def int8_sensitivity(self, policy: Mapping[str, str]) -> float:
        """log1p of the summed sensitivity of the policy's INT8 layers, in units of the mean layer's."""
        scale = float(np.mean(list(self.sensitivity.values()))) if self.sensitivity else 0.0
        total = sum(self.sensitivity.get(path, 0.0) for path, p in policy.items() if p == "int8")
        return math.log1p(total / scale) if scale > 0 else 0.0

    @property
    def can_propose(self) -> bool:
        return self.tables is not None

    def savings(self, network: Arch, policy: Mapping[str, str]) -> dict[str, dict[str, float]] | None:
        """{layer: {precision: ms saved against FP32}} over each policy layer's priced precisions for this
        network, or None when the tables cannot price it."""
        if self.tables is None:
            return None
        layers = [layer for layer in self.describe(network) if layer.params > 0]
        if len(layers) != len(policy):
            return None
        out: dict[str, dict[str, float]] = {}
        try:
            for path, layer in zip(policy, layers):
                priced = {p: self.tables.saving(layer, p) for p in self.options.get(path, STATIC_PRECISIONS)
                          if p != "fp32"}
                out[path] = {p: s for p, s in priced.items() if s is not None}
        except KeyError:
            return None
        return out

    def propose(self, arch: Arch, rng: np.random.Generator) -> Arch:
        """`arch` with its precision genes set to a policy likely to pay: each layer at its fastest priced
        precision where that saves time against FP32, except a random share (`CAUTION_LEVELS`) of those layers,
        the most sensitive first, kept FP32; never a priced precision that loses (FP32 instead). Unpriced
        precisions stay as sampled, and so do the network genes; an arch the tables cannot price comes back
        unchanged."""
        network, policy = self.split(arch)
        saving = self.savings(network, policy)
        if not policy or saving is None:
            return dict(arch)
        best = {path: max(options, key=options.__getitem__) for path, options in saving.items() if options}
        paying = sorted((path for path in best if saving[path][best[path]] > 0),
                        key=lambda path: self.sensitivity.get(path, 0.0))
        caution = float(rng.choice(CAUTION_LEVELS)) if self.sensitivity else 0.0
        keep = set(paying[: len(paying) - int(round(caution * len(paying)))])
        chosen = {}
        for path, precision in policy.items():
            priced = precision in saving[path]
            chosen[GENE_PREFIX + path] = (best[path] if path in keep else "fp32" if priced else precision)
        return {**arch, **chosen}
