"""Fidelity of the weight-sharing path: supernet vs extracted static subnet vs its ONNX graph, and an export
re-checked in a fresh process.

For N random archs of a trained supernet (BN recalibrated per arch as the engine does, eval mode, real digits
inputs): max |Δlogit| between the supernet
with the arch active and `extract(arch)`, max |Δlogit| between that static module and onnxruntime running
the engine's ONNX export, and whether the extracted parameter count equals the analytic count of the arch.
With `--export EXP`, re-scores the export in a fresh process on the split its manifest records and
re-measures it on the manifest's device. Prints markdown.

    python benchmarks/fidelity.py SUPERNET_DIR [--archs 20] [--export EXP]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from nasengine.evaluation.evaluator import Evaluator
from nasengine.graphs.onnx_writer import to_onnx
from nasengine.tasks import get_task
from nasengine.supernets.io import load_supernet


def onnx_logits(model: torch.nn.Module, x: torch.Tensor) -> np.ndarray:
    session = ort.InferenceSession(to_onnx(model, x, dynamic_batch=True), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]


def subnet_rows(directory: Path, n_archs: int) -> list[dict]:
    net, _ = load_supernet(directory)
    task = get_task("digits")
    evaluator = Evaluator(net, task)
    images = task.split("test").inputs[:64]
    rows = []
    for seed in range(n_archs):
        arch = net.space.sample(seed=seed)
        x = net.adapt_input(images, arch)
        # BN recalibrated for this arch, as search and export do; the supernet is restored on leaving
        with evaluator.calibrated(arch), torch.no_grad():
            static = net.extract(arch).eval()
            elastic, plain = net(x), static(x)
        rows.append({
            "seed": seed, "resolution": arch.get("resolution"),
            "d_supernet_static": float((elastic - plain).abs().max()),
            "d_static_onnx": float(np.abs(onnx_logits(static, x) - plain.numpy()).max()),
            "logit_scale": float(plain.abs().max()),
            "params_analytic": net.cost(arch).params,
            "params_extracted": sum(p.numel() for p in static.parameters()),
        })
    return rows


def export_rows(export: Path) -> dict:
    manifest = json.loads((export / "manifest.json").read_text())
    code = "import json, sys, nasengine; print(json.dumps(nasengine.evaluate_subnet(sys.argv[1])))"
    reproduced = json.loads(subprocess.run([sys.executable, "-c", code, str(export)], capture_output=True,
                                           text=True, check=True).stdout)
    measured = json.loads(subprocess.run(
        [sys.executable, "-m", "nasengine", "measure", str(export), "--device", manifest["device"], "--json"],
        capture_output=True, text=True, check=True).stdout)[0]
    return {"device": manifest["device"], "manifest_accuracy": manifest["accuracy"], "reproduced": reproduced,
            "manifest_ms": manifest["latency_ms"], "remeasured_ms": measured["median_ms"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("supernet", type=Path)
    parser.add_argument("--archs", type=int, default=20)
    parser.add_argument("--export", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = subnet_rows(args.supernet, args.archs)
    print(f"{len(rows)} random archs of {args.supernet}, 64 test images each, eval mode\n")
    print("| seed | resolution | max abs dlogit supernet vs static | static vs ONNX | max abs logit | params analytic "
          "| extracted |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['seed']} | {r['resolution']} | {r['d_supernet_static']:.2e} | {r['d_static_onnx']:.2e} | "
              f"{r['logit_scale']:.1f} | {r['params_analytic']} | {r['params_extracted']} |")
    print(f"\nworst supernet vs static {max(r['d_supernet_static'] for r in rows):.2e} (bar 1e-5); "
          f"worst static vs ONNX {max(r['d_static_onnx'] for r in rows):.2e} (bar 1e-4); parameter counts equal "
          f"in {sum(r['params_analytic'] == r['params_extracted'] for r in rows)}/{len(rows)}")
    if args.export:
        e = export_rows(args.export)
        print(f"\nexport {args.export}: accuracy manifest {e['manifest_accuracy']:.4f}, fresh process "
              f"{e['reproduced']:.4f}; latency on {e['device']} manifest {e['manifest_ms']:.4f} ms, re-measured "
              f"{e['remeasured_ms']:.4f} ms (ratio {e['remeasured_ms'] / e['manifest_ms']:.3f}, bar within 20%)")


if __name__ == "__main__":
    main()
