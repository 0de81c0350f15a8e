"""Per-layer latency lookup tables: time every distinct layer of a supernet once on a device, then predict a
subnet's latency as the sum over its layers (OFA's and FBNet's approach), calibrated on a few end-to-end runs.

Layers are keyed by their description (kernels.describe.LayerSpec without its name), so two blocks with the
same shapes share one entry. A table is JSON and serves as the `lut` device backend.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from torch import nn

from kernels.describe import LayerSpec
from nasengine.devices.base import Device, Workload
from search_spaces.space import Arch, Space
from search_spaces.storage import atomic_write

FORMAT = "nasengine-latency-table"


def signature_key(spec: LayerSpec) -> str:
    """Stable identity of what a layer computes (kind and ops with shapes), independent of its name."""
    text = json.dumps([spec.kind, [op.to_dict() for op in spec.ops]], sort_keys=True, separators=(",", ":"))
    return hashlib.sha1(text.encode()).hexdigest()[:20]


@dataclass
class LatencyTable:
    """Per-layer latencies (ms, per-call overhead removed) and a linear calibration of their sum."""

    device: str
    device_settings: dict[str, Any]
    supernet: str
    overhead_ms: float
    entries: dict[str, float] = field(default_factory=dict)
    spreads: dict[str, float] = field(default_factory=dict)
    scale: float = 1.0
    offset_ms: float = 0.0
    quality: dict[str, Any] = field(default_factory=dict)

    def missing(self, layers: Sequence[LayerSpec]) -> list[str]:
        return [layer.name for layer in layers if signature_key(layer) not in self.entries]

    def raw_sum(self, layers: Sequence[LayerSpec]) -> float:
        """One call's overhead plus each layer's own cost."""
        missing = self.missing(layers)
        if missing:
            raise ValueError(f"latency table for {self.device} has no entry for layer(s) {', '.join(missing[:3])}; "
                             "profile the device again for this supernet")
        return self.overhead_ms + sum(self.entries[signature_key(layer)] for layer in layers)

    def predict(self, layers: Sequence[LayerSpec]) -> float:
        return max(self.scale * self.raw_sum(layers) + self.offset_ms, 1e-6)

    def calibrate(self, layer_lists: Sequence[Sequence[LayerSpec]], measured_ms: Sequence[float]) -> dict[str, Any]:
        """Fit `scale * sum + offset` to end-to-end measurements (least squares, relative error) and record
        the error before and after (MAPE, Kendall tau)."""
        from predictors.metrics import kendall_tau, mape

        raw = np.array([self.raw_sum(layers) for layers in layer_lists])
        y = np.asarray(measured_ms, dtype=float)
        weights = 1.0 / y  # relative residuals: small and large subnets count alike
        design = np.stack([raw, np.ones_like(raw)], axis=1) * weights[:, None]
        (scale, offset), *_ = np.linalg.lstsq(design, y * weights, rcond=None)
        if scale <= 0:
            scale, offset = float(np.sum(y) / np.sum(raw)), 0.0
        self.scale, self.offset_ms = float(scale), float(offset)
        calibrated = np.array([self.predict(layers) for layers in layer_lists])
        self.quality = {"n": int(len(y)), "mape_raw": mape(y, raw), "mape_calibrated": mape(y, calibrated),
                        "kendall_tau": kendall_tau(y, raw)}
        return self.quality

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, **asdict(self)}

    def save(self, path: Path) -> None:
        atomic_write(path, json.dumps(self.to_dict(), indent=1))

    @classmethod
    def load(cls, path: Path) -> "LatencyTable":
        data = json.loads(Path(path).read_text())
        if not isinstance(data, dict) or data.pop("format", None) != FORMAT:
            raise ValueError(f"{path} is not a nasengine latency table")
        try:
            table = cls(**data)
        except TypeError as exc:
            raise ValueError(f"{path} is not a nasengine latency table ({exc})") from None
        bad = [k for k, v in table.entries.items() if not isinstance(v, (int, float)) or not 0 <= v < float("inf")]
        if bad:
            raise ValueError(f"{path}: entry {bad[0]} is not a latency >= 0 ms; profile the device again")
        return table


def coverage_archs(space: Space, limit: int = 400, extra_random: int = 32, seed: int = 0) -> list[Arch]:
    """Archs whose layers together include every distinct layer: each gene tag held at one option across the
    whole network, for every combination of tag options (sampled down to `limit`), plus random archs."""
    rng = np.random.default_rng(seed)
    tags = sorted({g.tag for g in space.genes if g.tag})
    options = [space.genes_tagged(t)[0].options for t in tags]
    combos = list(itertools.product(*options))
    if len(combos) > limit:
        combos = [combos[i] for i in sorted(rng.choice(len(combos), limit, replace=False))]
    archs = []
    for combo in combos:
        sub = space.restrict(by_tag={t: [v] for t, v in zip(tags, combo)
                                     if all(v in g.options for g in space.genes_tagged(t))})
        archs.append(sub.max())
    return archs + [space.sample(rng=rng) for _ in range(extra_random)]


def _tiny_model() -> nn.Module:
    return nn.Identity()


def profile(supernet: Any, device: Device, archs: Sequence[Arch],
            on_layer: Callable[[int, int], None] | None = None) -> LatencyTable:
    """Time each distinct layer met in `archs` once on `device` (through its ordinary measure path)."""
    overhead = device.measure(Workload({}, "overhead", _tiny_model, (1,))).median_ms
    todo: dict[str, tuple[Arch, str]] = {}
    for arch in archs:
        for spec in supernet.describe(arch):
            todo.setdefault(signature_key(spec), (arch, spec.name))
    table = LatencyTable(device.name, device.config.settings, supernet.name, overhead)
    by_arch: dict[str, list[str]] = {}
    for key, (arch, name) in todo.items():
        by_arch.setdefault(supernet.space.key(arch), []).append(key)
    done = 0
    for arch_key, keys in by_arch.items():
        arch = json.loads(arch_key)
        layers = {signature_key(layer.spec): layer for layer in supernet.layer_modules(arch)}
        for key in keys:
            layer = layers[key]
            m = device.measure(Workload({}, key, lambda module=layer.module: module, layer.input_shape))
            table.entries[key] = max(m.median_ms - overhead, 0.0)
            table.spreads[key] = m.spread
            done += 1
            if on_layer is not None:
                on_layer(done, len(todo))
    return table
