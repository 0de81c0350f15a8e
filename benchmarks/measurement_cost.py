"""What one latency measurement costs and how repeatable it is, on a local device.

For the smallest, the largest and random subnets of the default supernet: wall time of one
`device.measure` (static extraction + ONNX + session + warm-up + repeats), the within-measurement spread
(IQR / median) and the spread of the median across repeated measurements. Also the ONNX build time of the
engine's direct writer against torch.onnx.export on the same subnets (ratio measured in this process).

    python benchmarks/measurement_cost.py [--device ort-cpu-1t] [--archs 6] [--repeats 8]
"""

from __future__ import annotations

import argparse
import io
import json
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from nasengine import supernets
from nasengine.measurement.devices import Workload, get_device
from nasengine.graphs.onnx_writer import to_onnx


def torch_export_seconds(module: torch.nn.Module, x: torch.Tensor) -> float:
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (x,), io.BytesIO(), dynamo=False, opset_version=17)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="ort-cpu-1t")
    parser.add_argument("--archs", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=8)
    parser.add_argument("--json", default=None, help="also write the figures to this JSON file")
    args = parser.parse_args()
    torch.set_num_threads(1)
    net = supernets.create("ofa_mbv3_digits").eval()
    device = get_device(args.device)
    archs = [("min", net.space.min()), ("max", net.space.max())]
    archs += [(f"random {i}", net.space.sample(seed=i)) for i in range(max(0, args.archs - 2))]
    print(f"device {args.device}, {args.repeats} measurements per subnet\n")
    print("| subnet | median latency (ms) | wall time of one measurement (s) | repeats per measurement | "
          "IQR / median within | CV of the median across measurements |")
    print("|---|---|---|---|---|---|")
    cvs, walls, writer_s, torch_s = [], [], [], []
    for name, arch in archs:
        medians, spreads, wall, repeats = [], [], [], []
        for _ in range(args.repeats):
            started = time.perf_counter()
            workload = Workload(arch, net.space.key(arch), lambda a=arch: net.extract(a), net.input_shape(arch))
            m = device.measure(workload)
            wall.append(time.perf_counter() - started)
            medians.append(m.median_ms)
            spreads.append(m.spread)
            repeats.append(m.repeats)
        cv = float(np.std(medians) / np.mean(medians))
        cvs.append(cv)
        walls.append(np.median(wall))
        print(f"| {name} | {np.median(medians):.4f} | {np.median(wall):.3f} | {int(np.median(repeats))} | "
              f"{np.median(spreads):.1%} | {cv:.1%} |")
        static = net.extract(arch)
        x = net.example_input(arch, 1)
        for _ in range(3):
            t0 = time.perf_counter()
            to_onnx(static, x)
            writer_s.append(time.perf_counter() - t0)
            torch_s.append(torch_export_seconds(static, x))
    print(f"\nmedian wall time per measurement: {np.median(walls):.3f} s; mean CV of repeated medians: "
          f"{np.mean(cvs):.1%}")
    print(f"ONNX build: direct writer {np.median(writer_s) * 1e3:.1f} ms vs torch.onnx.export "
          f"{np.median(torch_s) * 1e3:.0f} ms per subnet ({np.median(torch_s) / np.median(writer_s):.0f}x faster)")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "measurement_wall_s": float(np.median(walls)), "mean_cv": float(np.mean(cvs)),
            "writer_ms": float(np.median(writer_s) * 1e3), "torch_export_ms": float(np.median(torch_s) * 1e3)}))


if __name__ == "__main__":
    main()
