"""Where weight-only INT8/INT4 (onnxruntime MatMulNBits) pays: transformer linear layers, and a supernet's subnets.

Layers: `nn.Linear(K, N)` on a sequence of T tokens (T = 1: one decoded token; T = 64: a prefill or an encoder
sentence), batch 1, written by the engine's ONNX writer, as FP32, static QDQ INT8 (weights and activations, as
`--quantization int8`) and weight-only INT8 / INT4 (`nasengine.graphs.weight_only`, as the engine writes them with
onnxruntime's INT8 compute, and without it: `/fp32-compute`), each timed on the device
through `device.measure`, the variants of one layer interleaved in rounds (ms: medians over rounds; ratios: the
median per-round FP32 / variant, > 1: the variant is faster).

Subnets (with SN, a trained transformer supernet): the largest and smallest subnet with every layer that holds a
matrix weight at one precision (the rest FP32), deployed exactly as a search deploys them: validation accuracy of
the graph onnxruntime runs, weight bytes, and latency on the device, interleaved.

    python benchmarks/weight_only.py [--supernet SN] [--device ort-cpu-1t] [--rounds 5] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Callable, Sequence

import torch
from torch import nn

from int8_latency import measure_interleaved  # (a sibling script: benchmarks/ is on the path when run)
from nasengine.evaluation.evaluator import Evaluator, onnx_accuracy
from nasengine.graphs.onnx_writer import to_onnx
from nasengine.graphs.quantization import quantized_graph
from nasengine.graphs.weight_only import layers_with_weight_matmuls, weight_only_graph
from nasengine.measurement.devices import Workload, get_device
from nasengine.measurement.devices.timing import Measurement
from nasengine.search_spaces.quantization import BYTES_PER_WEIGHT
from nasengine.tasks import task_from_spec
from nasengine.training.loading import load_trained

SHAPES = ((128, 512), (384, 384), (384, 1536), (1536, 384), (576, 1536), (1536, 576), (1024, 4096))
TOKENS = (1, 64)
VARIANTS = ("fp32", "int8", "w8", "w4")
FP32_COMPUTE = ("w8/fp32-compute", "w4/fp32-compute")  # MatMulNBits without accuracy_level 4 (layers only)


def _workload(name: str, graph: bytes, build: Callable[[], nn.Module], shape: tuple[int, ...], quantized: bool
              ) -> Workload:
    """A graph as the device times it (a quantized graph is the deployed one: nothing re-quantizes it)."""
    return Workload({"case": name}, name, build, shape, dynamic_onnx=graph,
                    policy={"layer": "int8"} if quantized else None)


def _summarise(runs: list[list[Measurement]], variants: Sequence[str] = VARIANTS) -> dict[str, float]:
    fp32 = runs[0]
    row = {}
    for variant, measured in zip(variants, runs):
        row[f"{variant}_ms"] = statistics.median(m.median_ms for m in measured)
        row[f"{variant}_ratio"] = statistics.median(f.median_ms / m.median_ms for f, m in zip(fp32, measured))
    return row


def layer_rows(device_name: str, rounds: int) -> list[dict]:
    device = get_device(device_name)
    rows = []
    for k, n in SHAPES:
        for tokens in TOKENS:
            torch.manual_seed(0)
            module = nn.Sequential(nn.Linear(k, n)).eval()
            example = torch.randn(1, tokens, k)
            graph = to_onnx(module, example, dynamic_batch=True)
            graphs = {"fp32": graph, "int8": quantized_graph(graph, example.repeat(8, 1, 1).numpy()),
                      "w8": weight_only_graph(graph, {"0": 8}), "w4": weight_only_graph(graph, {"0": 4}),
                      FP32_COMPUTE[0]: weight_only_graph(graph, {"0": 8}, accuracy_level=0),
                      FP32_COMPUTE[1]: weight_only_graph(graph, {"0": 4}, accuracy_level=0)}
            variants = (*VARIANTS, *FP32_COMPUTE)
            loads = [_workload(f"linear{k}x{n}@{tokens}:{v}", graphs[v], lambda m=module: m, (tokens, k), v != "fp32")
                     for v in variants]
            runs = measure_interleaved([lambda w=w: device.measure(w) for w in loads], rounds)
            row = {"layer": f"linear {k} -> {n}", "tokens": tokens, "weights": k * n, **_summarise(runs, variants)}
            rows.append(row)
            print(f"linear {k}->{n} T={tokens}: " + ", ".join(f"{v} {row[f'{v}_ms']:.4f} ms ({row[f'{v}_ratio']:.2f}x)"
                                                             for v in variants), flush=True)
    return rows


def subnet_rows(supernet_dir: Path, device_name: str, rounds: int) -> list[dict]:
    net, config = load_trained(supernet_dir)
    evaluator = Evaluator(net, task_from_spec(config["task"]), "val")
    device = get_device(device_name, supernet_dir=supernet_dir)
    rows = []
    for name, arch in (("largest", net.space.max()), ("smallest", net.space.min())):
        module = evaluator.extract(arch)
        graph = to_onnx(module, net.example_inputs(arch, 1), dynamic_batch=True)
        paths = [layer.path for layer in net.quantizable_layers()]
        matrix = layers_with_weight_matmuls(graph, paths)
        params = {path: sum(p.numel() for n, p in module.named_parameters() if n.startswith(f"{path}."))
                  for path in matrix}
        total = sum(p.numel() for p in module.parameters())
        graphs = {"fp32": graph,
                  "int8": evaluator.deployed_graph(arch, matrix, module),
                  "w8": evaluator.deployed_graph(arch, [], module, {p: 8 for p in matrix}),
                  "w4": evaluator.deployed_graph(arch, [], module, {p: 4 for p in matrix})}
        loads = [Workload.of_supernet(net, arch, lambda a=arch: evaluator.quantization_inputs(a), dynamic_onnx=g,
                                      policy={"layer": v} if v != "fp32" else None)
                 for v, g in graphs.items()]
        runs = measure_interleaved([lambda w=w: device.measure(w) for w in loads], rounds)
        row = {"subnet": name, "layers": f"{len(matrix)} of {len(paths)}", **_summarise(runs)}
        for variant, g in graphs.items():
            row[f"{variant}_accuracy"] = onnx_accuracy(g, evaluator.split, lambda x, a=arch: net.adapt_input(x, a))
            saved = sum(params.values()) * (4 - BYTES_PER_WEIGHT[variant])
            row[f"{variant}_mb"] = (total * 4 - saved) / 1e6
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--supernet", type=Path, default=None)
    parser.add_argument("--device", default="ort-cpu-1t")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--skip-layers", action="store_true")
    parser.add_argument("--out", type=Path, default=None, help="write weight_only.json here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    started = time.perf_counter()
    result = {"device": args.device, "rounds": args.rounds}
    if not args.skip_layers:
        result["layers"] = layer_rows(args.device, args.rounds)
    if args.supernet is not None:
        result["subnets"] = subnet_rows(args.supernet, args.device, args.rounds)
    result["seconds"] = time.perf_counter() - started
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "weight_only.json").write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
