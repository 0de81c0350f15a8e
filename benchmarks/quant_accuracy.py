"""How well the fake-quantization estimate agrees with the real quantized accuracy, per (arch, policy) pair.

Real: the BN-recalibrated subnet written as ONNX, quantized by onnxruntime (QDQ, per-channel weights, MinMax on
training images) for the policy's INT8 layers, run by onnxruntime on the validation split. Estimate: the same
subnet fake-quantized in torch (kernels.fake_quant) on the same calibration images. Pairs are drawn from the
search space with policy genes (random archs; policies all-INT8, mixed or single-layer), FP32 accuracy beside.

    python benchmarks/quant_accuracy.py SUPERNET_DIR [--pairs 24] [--seed 0] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from nasengine.evaluation.evaluator import Evaluator
from nasengine.predictors.metrics import kendall_tau
from nasengine.training.loading import load_trained
from nasengine.tasks import task_from_spec
from nasengine.search_spaces.quantization import int8_layers, split_policy, with_policy_genes


def _pairs(net, count: int, seed: int) -> list[tuple[dict, list[str]]]:
    """Random archs with, in turn, an all-INT8 policy, a random mixed policy and one INT8 layer."""
    layers = net.quantizable_layers()
    space = with_policy_genes(net.space, layers)
    rng = np.random.default_rng(seed)
    pairs = []
    for i in range(count):
        arch, policy = split_policy(space.sample(rng=rng))
        active = list(policy)
        kind = i % 3
        if kind == 0:
            chosen = active
        elif kind == 1:
            chosen = int8_layers(policy) or active[:1]
        else:
            chosen = [active[int(rng.integers(len(active)))]]
        pairs.append((arch, chosen))
    return pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("supernet_dir", type=Path)
    parser.add_argument("--pairs", type=int, default=24)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="write rows.json and summary.json here")
    args = parser.parse_args()
    net, config = load_trained(args.supernet_dir)
    evaluator = Evaluator(net, task_from_spec(config["task"]), "val")
    rows = []
    for i, (arch, layers) in enumerate(_pairs(net, args.pairs, args.seed)):
        started = time.perf_counter()
        real, _ = evaluator.quantized(arch, layers)
        real_s = time.perf_counter() - started
        started = time.perf_counter()
        estimate = evaluator.fake_quantized(arch, layers)
        estimate_s = time.perf_counter() - started
        fp32 = evaluator.evaluate(arch)
        rows.append({"arch": arch, "int8_layers": layers, "fp32": fp32, "real": real, "estimate": estimate,
                     "real_s": real_s, "estimate_s": estimate_s})
        print(f"{i + 1}/{args.pairs}: {len(layers)} INT8 layers  fp32 {fp32:.4f}  real {real:.4f}  "
              f"estimate {estimate:.4f}  ({real_s:.2f}s vs {estimate_s:.2f}s)", flush=True)
    real = np.array([r["real"] for r in rows])
    estimate = np.array([r["estimate"] for r in rows])
    fp32 = np.array([r["fp32"] for r in rows])
    summary = {
        "pairs": len(rows), "split": evaluator.split.name, "split_size": len(evaluator.split),
        "mean_abs_diff": float(np.abs(real - estimate).mean()), "max_abs_diff": float(np.abs(real - estimate).max()),
        "kendall_tau_estimate": kendall_tau(real, estimate),
        "kendall_tau_fp32": kendall_tau(real, fp32),
        "mean_abs_diff_fp32": float(np.abs(real - fp32).mean()),
        "mean_drop_real": float((fp32 - real).mean()), "mean_drop_estimate": float((fp32 - estimate).mean()),
        "drop_tau": kendall_tau(fp32 - real, fp32 - estimate),
        "real_s": float(np.median([r["real_s"] for r in rows])),
        "estimate_s": float(np.median([r["estimate_s"] for r in rows])),
    }
    print(json.dumps(summary, indent=2))
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "rows.json").write_text(json.dumps(rows, indent=1))
        (args.out / "summary.json").write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
