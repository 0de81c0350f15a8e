"""`nasengine device adapt`: learn a new device's latency from a few measurements (predictors.latency), using
the devices already measured here (and imported tables) as the meta-training sources.

The sources' latencies of a seeded pool of archs are cached per device in SUPERNET_DIR/latency_data/ (one CSV
table per device, appended row by row, so an interrupted run resumes); the adapted predictor lands in
SUPERNET_DIR/latency_models/TARGET/ and serves as the device `meta:TARGET` in search.
"""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from nasengine.kernels.inputs import to_numpy
from nasengine.measurement.devices import Workload, get_device
from nasengine.measurement.devices.base import Device
from nasengine.measurement.devices.predicted import FEATURES, MODELS_DIR, N_DESCRIPTORS, arch_features
from nasengine.measurement.devices.table import table_key
from nasengine.errors import UserError
from nasengine.progress import Progress
from nasengine.evaluation.evaluator import quantization_images
from nasengine.training.loading import load_trained
from nasengine.tasks import task_from_spec
from nasengine.predictors.latency import MetaLatencyPredictor
from nasengine.predictors.metrics import mape, spearman_rho
from nasengine.search_spaces.samplers import sample_unique
from nasengine.search_spaces.storage import atomic_directory
from nasengine.search_spaces.space import Arch

DATA_DIR = "latency_data"
DEFAULT_SOURCES = ("ort-cpu-1t", "ort-cpu-2t", "ort-cpu-1t-int8", "torch-cpu-1t")  # threads and precisions


class LatencyCache:
    """Per-device CSV tables of measured latencies (arch JSON, latency_ms), appended one row at a time."""

    def __init__(self, directory: Path):
        self.directory = directory

    def path(self, device: str) -> Path:
        return self.directory / f"{device.replace(':', '_')}.csv"

    def read(self, device: str) -> dict[str, float]:
        path = self.path(device)
        if not path.is_file():
            return {}
        with open(path, newline="") as f:
            return {table_key(json.loads(row["arch"])): float(row["latency_ms"]) for row in csv.DictReader(f)
                    if row.get("latency_ms")}

    def append(self, device: str, arch: Arch, value: float) -> None:
        path = self.path(device)
        path.parent.mkdir(parents=True, exist_ok=True)
        new = not path.exists()
        with open(path, "a", newline="") as f:
            writer = csv.writer(f)
            if new:
                writer.writerow(["arch", "latency_ms"])
            writer.writerow([json.dumps(arch, separators=(",", ":")), repr(float(value))])


def _measure_pool(net: Any, device: Device, archs: Sequence[Arch], cache: LatencyCache, bar: Progress,
                  images: Any = None) -> np.ndarray:
    """Latency of each arch on `device`: cached, measured (and cached), or NaN when the device has no value.
    INT8 devices calibrate on `images` (training images) resized for each arch."""
    known = cache.read(device.name)
    out = np.full(len(archs), np.nan)
    for i, arch in enumerate(archs):
        key = table_key(arch)
        if key not in known:
            workload = Workload.of_supernet(net, arch, None if images is None else
                                            (lambda a=arch: to_numpy(net.adapt_input(images, a))))
            try:
                known[key] = device.measure(workload).median_ms
            except UserError:
                if device.runs_models:
                    raise
                bar.update(1)
                continue  # imported tables cover only some archs: NaN = not measured
            cache.append(device.name, arch, known[key])
        out[i] = known[key]
        bar.update(1)
    return out


def adapt_device(target: str, supernet_dir: Path, sources: Sequence[str] = DEFAULT_SOURCES, pool: int = 200,
                 support: int = 20, check: int = 0, seed: int = 0, progress: bool = True) -> dict[str, Any]:
    """Meta-train on `sources` over a pool of archs, measure `support` archs chosen by the predictor on the
    target, adapt, optionally judge on `check` more measured archs, and save the result."""
    sources = [s for s in sources if s != target]
    if not sources:
        raise UserError("give at least one --source device other than the target")
    if not 2 <= support <= pool or check < 0 or support + check > pool:
        raise UserError(f"need 2 <= --support <= --pool and --support + --check <= --pool "
                        f"(got support {support}, check {check}, pool {pool})")
    net, config = load_trained(supernet_dir)
    images = quantization_images(task_from_spec(config["task"]))
    context = {"supernet_dir": supernet_dir}
    target_device = get_device(target, **context)
    source_devices = [get_device(s, **context) for s in sources]
    for device in [target_device, *source_devices]:
        reason = device.availability()
        if reason is not None:
            raise UserError(f"device {device.name!r} is not usable here: {reason}")
    started = time.perf_counter()
    archs = sample_unique(net.space, pool, seed=seed, include_extremes=True)
    X = np.stack([arch_features(net.space, a, net.describe(a)) for a in archs])
    cache = LatencyCache(Path(supernet_dir) / DATA_DIR)
    with Progress(len(archs) * len(source_devices), "source latencies", "measurement", progress) as bar:
        latencies = {d.name: _measure_pool(net, d, archs, cache, bar, images) for d in source_devices}
    usable = {name: v for name, v in latencies.items() if np.sum(~np.isnan(v)) >= 3}
    if not usable:
        raise UserError("the source devices gave fewer than 3 latencies of the pool; add measurable sources")
    meta = MetaLatencyPredictor(seed=seed, descriptors=N_DESCRIPTORS).meta_fit(X, usable)
    chosen = [int(i) for i in meta.select_support(X, support)]
    rest = [i for i in range(len(archs)) if i not in set(chosen)]
    check_idx = [rest[i] for i in np.random.default_rng(seed).permutation(len(rest))[:check]]
    with Progress(support + check, f"measure on {target}", "subnet", progress) as bar:
        measured = _measure_pool(net, target_device, [archs[i] for i in chosen + check_idx], cache, bar, images)
    if np.isnan(measured).any():
        raise UserError(f"device {target!r} gave no latency for some support archs")
    adapted = meta.adapt(X[chosen], measured[:support])
    report: dict[str, Any] = {}
    if check:
        predicted = adapted.predict(X[check_idx])
        truth = measured[support:]
        report = {"n": check, "spearman_rho": spearman_rho(truth, predicted), "mape": mape(truth, predicted)}
    out = Path(supernet_dir) / MODELS_DIR / target.replace(":", "_")
    with atomic_directory(out, overwrite=True) as tmp:  # a later search never sees half an adaptation
        adapted.save(tmp / "predictor")
        (tmp / "model.json").write_text(json.dumps({
            "target": target, "sources": list(usable), "pool": len(archs), "seed": seed,
            "features": FEATURES, "space": net.space.to_dict(),
            "support": [{"arch": archs[i], "latency_ms": float(v)} for i, v in zip(chosen, measured[:support])],
            "check": report, "meta_fit_seconds": meta.fit_seconds}, indent=1))
    return {"path": str(out), "sources": list(usable), "support": support, "check": report,
            "seconds": time.perf_counter() - started}
