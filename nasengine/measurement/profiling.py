"""`nasengine device profile`: build a device's per-layer latency table for a supernet and report its error."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from nasengine.kernels.inputs import to_numpy
from nasengine.measurement.devices import Workload, get_device
from nasengine.measurement.devices.registry import at_precision
from nasengine.measurement.devices.lut_device import table_path
from nasengine.errors import UserError
from nasengine.evaluation.evaluator import quantization_images
from nasengine.measurement.lut import coverage_archs, profile
from nasengine.progress import Progress
from nasengine.training.loading import load_trained
from nasengine.tasks import task_from_spec
from nasengine.search_spaces.samplers import sample_unique


def profile_device(device_name: str, supernet_dir: Path, out: Path | None = None, check: int = 20,
                   seed: int = 0, progress: bool = True, precision: str = "fp32") -> dict[str, Any]:
    """Time every distinct layer once, then judge the table on `check` random subnets measured end to end:
    calibrate on half of them, report the error on the other half, and save the table calibrated on all.
    With `precision` int8 (or w8, w4) every layer (and every checked subnet) runs at that precision: the
    tables of one device at several precisions together price any per-layer precision policy."""
    if check < 4:
        raise UserError(f"--check needs at least 4 subnets, got {check}")
    net, config = load_trained(supernet_dir)
    images = quantization_images(task_from_spec(config["task"]))  # INT8 devices calibrate on training images
    device = get_device(device_name, supernet_dir=supernet_dir)
    if not device.runs_models:
        raise UserError(f"device {device_name!r} does not run models; profile a device that measures")
    reason = device.availability()
    if reason is not None:
        raise UserError(f"device {device_name!r} is not usable here: {reason}")
    if device.precision != "fp32":
        raise UserError(f"device {device_name!r} quantizes every layer itself; profile its FP32 twin with "
                        f"--precision {device.precision}")
    device = at_precision(device, precision)
    started = time.perf_counter()
    archs = coverage_archs(net.space, net.describe, seed=seed)
    with Progress(1, f"profile {device_name}", "layer", progress) as bar:
        def on_layer(done: int, total: int) -> None:
            bar.total = total
            if bar.bar is not None:
                bar.bar.total = total
            bar.update(1)

        table = profile(net, device, archs, on_layer)
    check_archs = sample_unique(net.space, check, seed=seed + 1)
    measured, layer_lists = [], []
    with Progress(len(check_archs), f"end-to-end check on {device_name}", "subnet", progress) as bar:
        for arch in check_archs:
            workload = Workload.of_supernet(net, arch, lambda a=arch: to_numpy(net.adapt_input(images, a)))
            measured.append(device.measure(workload).median_ms)
            layer_lists.append(net.describe(arch))
            bar.update(1)
    half = len(check_archs) // 2
    table.calibrate(layer_lists[:half], measured[:half])
    from nasengine.predictors.metrics import kendall_tau, mape

    held_out = [table.predict(layers) for layers in layer_lists[half:]]
    held_raw = [table.raw_sum(layers) for layers in layer_lists[half:]]
    report = {"held_out": len(held_out), "fit": table.fit,
              "mape_raw": mape(measured[half:], held_raw),
              "mape_calibrated": mape(measured[half:], held_out),
              "kendall_tau": kendall_tau(measured[half:], held_out)}
    table.calibrate(layer_lists, measured)
    table.quality["held_out"] = report
    path = out or table_path(supernet_dir, device_name, precision)
    table.save(path)
    return {"path": str(path), "entries": len(table.entries), "seconds": time.perf_counter() - started,
            "overhead_ms": table.overhead_ms, "report": report}
