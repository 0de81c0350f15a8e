"""Where INT8 pays on this CPU: onnxruntime INT8 against FP32 latency per layer type and size, and per subnet.

Layer grid: single static layers from the engine's own vocabulary (ConvBNAct-style conv -> BN -> activation,
depthwise kxk, full 3x3, the MobileNet inverted block `ElasticMBConv.export()`, Linear), batch 1, timed on
`ort-cpu-1t` (FP32, BN folded by the ONNX writer) and `ort-cpu-1t-int8` (every layer static QDQ INT8 by
`nasengine.graphs.quantization.quantize_layers`), i.e. through `device.measure(workload)` exactly as a search measures.
BN gets random non-trivial statistics so folding changes the weights. Single layers have no data: their INT8
ranges are calibrated on standard-normal inputs. A single-layer INT8 graph also pays one input QuantizeLinear and
one output DequantizeLinear that consecutive INT8 layers of a network share.

Subnets (with --supernet DIR, a `nasengine train` directory): the largest and smallest subnet as FP32 folded (what
the engine deploys), FP32 unfolded (BatchNormalization nodes kept), INT8 quantized from the folded graph and INT8
quantized from the unfolded graph, calibrated on the first 128 training images adapted to the subnet, with the
BatchNormalization / QuantizeLinear / DequantizeLinear node counts of each graph as written and as onnxruntime
runs it after its graph optimisations.

Timing is noisy, so the variants of one layer or subnet are measured interleaved, in rounds whose order rotates;
reported milliseconds are medians over rounds of each measurement's median, and ratios (FP32 / variant, > 1: the
variant is faster) are medians of the per-round ratios, all in this process.

    python benchmarks/int8_latency.py [--out runs/int8_latency] [--supernet DIR] [--rounds 3] [--threads 1]
        [--quick] [--skip-layers]
"""

from __future__ import annotations

import argparse
import csv
import logging
import os
import platform
import statistics
import sys
import tempfile
import time
from collections import Counter, OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import onnx
import onnxruntime
import torch
from torch import nn

from nasengine.kernels.layers import ElasticMBConv
from nasengine.kernels.trace import trace_layers
from nasengine.measurement.devices import Workload, get_device
from nasengine.measurement.devices.ort_cpu import OrtCpuDevice
from nasengine.measurement.devices.timing import Measurement, TimingSettings
from nasengine.errors import UserError
from nasengine.graphs.onnx_writer import INPUT_NAME, to_onnx
from nasengine.graphs.quantization import calibration_feeds, quantize_layers, with_batch
from nasengine.supernets import Supernet

LAYER_COLUMNS = ("layer", "kind", "shape", "macs", "fp32_ms", "int8_ms", "ratio", "ratio_min", "ratio_max",
                 "fp32_iqr_ms", "int8_iqr_ms", "rounds", "calibration")
SUBNET_COLUMNS = ("subnet", "variant", "input", "macs", "ms", "ratio_vs_fp32_folded", "ratio_min", "ratio_max",
                  "iqr_ms", "bn_nodes", "quantize_nodes", "dequantize_nodes", "nodes", "ort_bn_nodes", "ort_qdq_nodes",
                  "ort_nodes", "top1_agreement", "rounds")
CALIBRATION_IMAGES = 128
CHANNELS = (16, 32, 64, 128, 256)
SPATIAL = (7, 14, 28, 56)
MAX_CONV_MACS = 250_000_000  # full 3x3 convs above this take seconds per measurement; the trend is clear below it
QUICK_TIMING = TimingSettings(warmup_runs=3, warmup_seconds=0.0, min_repeats=10, min_seconds=0.02, max_repeats=200)


@dataclass(frozen=True)
class LayerCase:
    """One benchmarked layer: a display name, its type (for the summary), a builder and its input shape."""

    name: str
    kind: str
    build: Callable[[], nn.Module]
    input_shape: tuple[int, ...]


def with_trained_statistics(module: nn.Module, seed: int = 0) -> nn.Module:
    """`module` in eval mode with non-trivial BN statistics and affine parameters (fresh BN is the identity, so
    folding it would change nothing), and no all-zero weight (a fresh SE expand conv starts at zero)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.BatchNorm2d):
                n = m.num_features
                m.running_mean.copy_(torch.rand(n, generator=gen) - 0.5)
                m.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
                m.weight.copy_(torch.rand(n, generator=gen) + 0.5)
                m.bias.copy_(torch.rand(n, generator=gen) - 0.5)
        for p in module.parameters():
            if p.dim() > 1 and not p.any():
                p.copy_(0.05 * torch.randn(p.shape, generator=gen))
    return module.eval()


def conv_bn_act(c_in: int, c_out: int, kernel: int, depthwise: bool = False, act: str = "relu") -> nn.Sequential:
    """conv (no bias) -> BN -> activation, named as `ConvBNAct.export()` names them."""
    conv = nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2, groups=c_in if depthwise else 1, bias=False)
    activation: nn.Module = nn.ReLU() if act == "relu" else nn.Hardswish()
    return nn.Sequential(OrderedDict(conv=conv, bn=nn.BatchNorm2d(c_out), act=activation))


def mbconv(channels: int, kernel: int, expand: float, act: str = "relu", se: bool = False) -> nn.Module:
    """The static MobileNet inverted block at full width (stride 1, residual)."""
    return ElasticMBConv(channels, channels, (kernel,), (expand,), 1, act, se).export()


def layer_grid(quick: bool) -> list[LayerCase]:
    """The default grid (about 90 layers), or a handful for --quick."""
    cases: list[LayerCase] = []

    def add(name: str, kind: str, build: Callable[[], nn.Module], shape: tuple[int, ...]) -> None:
        cases.append(LayerCase(name, kind, build, shape))

    if quick:
        for c, hw in ((16, 7), (32, 14)):
            add("pw1x1+bn+relu", "pointwise 1x1", lambda c=c: conv_bn_act(c, c, 1), (c, hw, hw))
        add("dw3x3+bn+relu", "depthwise 3x3", lambda: conv_bn_act(32, 32, 3, depthwise=True), (32, 14, 14))
        add("conv3x3+bn+relu", "full 3x3", lambda: conv_bn_act(16, 16, 3), (16, 14, 14))
        add("mbconv k3 e4 relu", "mbconv", lambda: mbconv(16, 3, 4), (16, 14, 14))
        add("linear", "linear", lambda: nn.Linear(128, 10), (128,))
        return cases
    for c in CHANNELS:
        for hw in SPATIAL:
            add("pw1x1+bn+relu", "pointwise 1x1", lambda c=c: conv_bn_act(c, c, 1), (c, hw, hw))
    for c in (32, 128):
        for hw in (14, 28):
            add("pw1x1+bn+hswish", "pointwise 1x1 hswish", lambda c=c: conv_bn_act(c, c, 1, act="hswish"),
                (c, hw, hw))
    for k, channels in ((3, CHANNELS), (5, (32, 128)), (7, (32, 128))):
        for c in channels:
            for hw in SPATIAL:
                add(f"dw{k}x{k}+bn+relu", f"depthwise {k}x{k}",
                    lambda c=c, k=k: conv_bn_act(c, c, k, depthwise=True), (c, hw, hw))
    for c in CHANNELS:
        for hw in SPATIAL:
            if c * c * 9 * hw * hw <= MAX_CONV_MACS:
                add("conv3x3+bn+relu", "full 3x3", lambda c=c: conv_bn_act(c, c, 3), (c, hw, hw))
    for c in (16, 32, 64, 128):
        for hw in (14, 28):
            add("mbconv k3 e4 relu", "mbconv", lambda c=c: mbconv(c, 3, 4), (c, hw, hw))
    for c, hw in ((32, 28), (64, 14)):
        add("mbconv k5 e6 hswish se", "mbconv se", lambda c=c: mbconv(c, 5, 6, "hswish", True), (c, hw, hw))
    for n_in, n_out in ((128, 10), (256, 256), (576, 1024), (1024, 1000), (1280, 1000)):
        add("linear", "linear", lambda n_in=n_in, n_out=n_out: nn.Linear(n_in, n_out), (n_in,))
    return cases


def _shape(shape: Sequence[int]) -> str:
    return "x".join(str(int(d)) for d in shape)


def _macs(module: nn.Module, example: torch.Tensor) -> int:
    return sum(layer.spec.macs for layer in trace_layers(module, example))


def _median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def measure_interleaved(measures: Sequence[Callable[[], Measurement]], rounds: int) -> list[list[Measurement]]:
    """`rounds` measurements of each variant, interleaved; each round starts one variant later than the last, so
    no variant always runs first (after a cold cache, or right after another process's burst)."""
    out: list[list[Measurement]] = [[] for _ in measures]
    for r in range(rounds):
        for i in range(len(measures)):
            j = (i + r) % len(measures)
            out[j].append(measures[j]())
    return out


def ratios(baseline: Sequence[Measurement], other: Sequence[Measurement]) -> list[float]:
    """baseline / other per round: > 1 when `other` is faster."""
    return [b.median_ms / o.median_ms for b, o in zip(baseline, other)]


def run_layers(cases: Sequence[LayerCase], fp32: OrtCpuDevice, int8: OrtCpuDevice, rounds: int) -> list[dict]:
    rows = []
    started = time.perf_counter()
    for index, case in enumerate(cases, 1):
        t0 = time.perf_counter()
        module = with_trained_statistics(case.build(), seed=index)
        example = torch.randn((1, *case.input_shape), generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            out_shape = tuple(module(example).shape[1:])
        key = f"{case.name}@{_shape(case.input_shape)}"
        workload = Workload({"layer": case.name, "input": list(case.input_shape)}, key, lambda m=module: m,
                            case.input_shape)
        calibration = workload.calibration_inputs()[1]
        fp32_ms, int8_ms = measure_interleaved([lambda: fp32.measure(workload), lambda: int8.measure(workload)],
                                               rounds)
        per_round = ratios(fp32_ms, int8_ms)
        row = {"layer": case.name, "kind": case.kind,
               "shape": f"{_shape(case.input_shape)} -> {_shape(out_shape)}", "macs": _macs(module, example),
               "fp32_ms": _median([m.median_ms for m in fp32_ms]), "int8_ms": _median([m.median_ms for m in int8_ms]),
               "ratio": _median(per_round), "ratio_min": min(per_round), "ratio_max": max(per_round),
               "fp32_iqr_ms": _median([m.iqr_ms for m in fp32_ms]), "int8_iqr_ms": _median([m.iqr_ms for m in int8_ms]),
               "rounds": rounds, "calibration": calibration}
        rows.append(row)
        print(f"[{index}/{len(cases)}] {case.name} {row['shape']}: FP32 {row['fp32_ms']:.4f} ms, INT8 "
              f"{row['int8_ms']:.4f} ms, FP32/INT8 {row['ratio']:.2f} ({time.perf_counter() - t0:.1f} s, "
              f"{time.perf_counter() - started:.0f} s in all)", flush=True)
    return rows


def node_counts(model: onnx.ModelProto) -> Counter:
    return Counter(node.op_type for node in model.graph.node)


def ort_node_counts(device: OrtCpuDevice, graph: bytes) -> Counter:
    """Op types of the graph onnxruntime actually runs on this device (after its graph optimisations)."""
    with tempfile.TemporaryDirectory() as tmp:
        options = device.session_options()
        options.optimized_model_filepath = str(Path(tmp) / "optimized.onnx")
        onnxruntime.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
        return node_counts(onnx.load(options.optimized_model_filepath, load_external_data=False))


def _top1(graph: bytes, inputs: np.ndarray) -> np.ndarray:
    session = onnxruntime.InferenceSession(graph, providers=["CPUExecutionProvider"])
    return np.concatenate([session.run(None, {INPUT_NAME: inputs[i: i + 1]})[0].argmax(axis=1)
                           for i in range(len(inputs))])


class _DropBatchNormAxisWarning(logging.Filter):
    """onnxruntime's quantizer warns once per BatchNormalization node of an unfolded graph that its per-channel
    axis 1 does not fit the rank-1 BN scale (and quantizes that scale per tensor); expected here, so dropped."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Axis 1 is out-of-range")


def subnet_graphs(module: nn.Module, example: torch.Tensor, calibration: np.ndarray) -> dict[str, bytes]:
    """The four graphs of one subnet, at batch 1."""
    feeds = calibration_feeds(calibration)
    folded = to_onnx(module, example, dynamic_batch=True)
    unfolded = to_onnx(module, example, dynamic_batch=True, fold_batchnorm=False)
    quiet, root = _DropBatchNormAxisWarning(), logging.getLogger()
    root.addFilter(quiet)
    try:
        int8_unfolded = quantize_layers(unfolded, feeds)
    finally:
        root.removeFilter(quiet)
    return {"FP32 folded": to_onnx(module, example), "FP32 unfolded": to_onnx(module, example, fold_batchnorm=False),
            "INT8 from folded": with_batch(quantize_layers(folded, feeds), 1),
            "INT8 from unfolded": with_batch(int8_unfolded, 1)}


def load_subnet_part(supernet_dir: Path) -> tuple[Supernet, torch.Tensor]:
    """The trained supernet and its first training images, or a one-line UserError."""
    from nasengine.training.loading import load_trained
    from nasengine.tasks import task_from_spec

    net, config = load_trained(supernet_dir)
    return net, task_from_spec(config["task"]).split("train").inputs[:CALIBRATION_IMAGES]


def run_subnets(net: Supernet, images: torch.Tensor, fp32: OrtCpuDevice, rounds: int) -> list[dict]:
    rows = []
    for name, arch in (("max", net.space.max()), ("min", net.space.min())):
        t0 = time.perf_counter()
        module = net.extract(arch)
        example = net.example_input(arch, 1)
        calibration = net.adapt_input(images, arch).numpy().astype(np.float32)
        graphs = subnet_graphs(module, example, calibration)
        measured = measure_interleaved([lambda g=g: fp32.measure_onnx(g) for g in graphs.values()], rounds)
        reference = _top1(graphs["FP32 folded"], calibration)
        macs = net.cost(arch).macs
        for (variant, graph), ms in zip(graphs.items(), measured):
            per_round = ratios(measured[0], ms)
            written, optimised = node_counts(onnx.load_model_from_string(graph)), ort_node_counts(fp32, graph)
            rows.append({"subnet": name, "variant": variant, "input": _shape(example.shape[1:]), "macs": macs,
                         "ms": _median([m.median_ms for m in ms]),
                         "ratio_vs_fp32_folded": _median(per_round), "ratio_min": min(per_round),
                         "ratio_max": max(per_round),
                         "iqr_ms": _median([m.iqr_ms for m in ms]), "bn_nodes": written["BatchNormalization"],
                         "quantize_nodes": written["QuantizeLinear"], "dequantize_nodes": written["DequantizeLinear"],
                         "nodes": sum(written.values()), "ort_bn_nodes": optimised["BatchNormalization"],
                         "ort_qdq_nodes": optimised["QuantizeLinear"] + optimised["DequantizeLinear"],
                         "ort_nodes": sum(optimised.values()),
                         "top1_agreement": float(np.mean(_top1(graph, calibration) == reference)), "rounds": rounds})
            row = rows[-1]
            print(f"{name} subnet, {variant}: {row['ms']:.4f} ms, FP32 folded / this {row['ratio_vs_fp32_folded']:.2f}"
                  f", BN {row['bn_nodes']}, Q {row['quantize_nodes']}, DQ {row['dequantize_nodes']}", flush=True)
        print(f"{name} subnet done in {time.perf_counter() - t0:.1f} s", flush=True)
    return rows


def write_csv(path: Path, rows: Sequence[dict], columns: Sequence[str]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns))
        writer.writeheader()
        for row in rows:
            writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})


def layer_markdown(rows: Sequence[dict]) -> list[str]:
    lines = ["| layer | shape (in -> out) | MACs | FP32 ms | INT8 ms | FP32/INT8 | per-round range |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        ratio = f"**{r['ratio']:.2f}**" if r["ratio"] > 1 else f"{r['ratio']:.2f}"
        lines.append(f"| {r['layer']} | {r['shape']} | {_macs_text(r['macs'])} | {r['fp32_ms']:.4f} | "
                     f"{r['int8_ms']:.4f} | {ratio} | {r['ratio_min']:.2f}-{r['ratio_max']:.2f} |")
    return lines


def _macs_text(macs: float) -> str:
    for scale, unit in ((1e9, "G"), (1e6, "M"), (1e3, "K")):
        if macs >= scale:
            return f"{macs / scale:.3g}{unit}"
    return f"{macs:.0f}"


def pays_from(rows: Sequence[dict]) -> float | None:
    """The fewest MACs from which INT8 is faster in every row of at least that many MACs; None when it loses on
    the largest row."""
    threshold = None
    for r in sorted(rows, key=lambda r: r["macs"], reverse=True):
        if r["ratio"] <= 1:
            break
        threshold = r["macs"]
    return threshold


def summary_markdown(rows: Sequence[dict]) -> list[str]:
    """Per layer type: the spread of FP32/INT8 and from how many MACs on INT8 is always faster."""
    lines = ["| layer type | rows | FP32/INT8 min | median | max | INT8 faster in | INT8 faster in every row from |",
             "|---|---|---|---|---|---|---|"]
    for kind in dict.fromkeys(r["kind"] for r in rows):
        mine = [r for r in rows if r["kind"] == kind]
        values = [r["ratio"] for r in mine]
        wins = sum(v > 1 for v in values)
        threshold = pays_from(mine)
        where = "never (loses on the largest)" if threshold is None else f"{_macs_text(threshold)} MACs"
        lines.append(f"| {kind} | {len(mine)} | {min(values):.2f} | {_median(values):.2f} | {max(values):.2f} | "
                     f"{wins}/{len(mine)} | {where} |")
    return lines


def subnet_markdown(rows: Sequence[dict]) -> list[str]:
    lines = ["| subnet | input | MACs | graph | ms | FP32 folded / this (per-round range) | BN | Q | DQ | nodes | "
             "BN / Q+DQ / nodes as ORT runs it | top-1 agreement with FP32 folded |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['subnet']} | {r['input']} | {_macs_text(r['macs'])} | {r['variant']} | {r['ms']:.4f} | "
                     f"{r['ratio_vs_fp32_folded']:.2f} ({r['ratio_min']:.2f}-{r['ratio_max']:.2f}) | {r['bn_nodes']} | "
                     f"{r['quantize_nodes']} | {r['dequantize_nodes']} | {r['nodes']} | {r['ort_bn_nodes']} / "
                     f"{r['ort_qdq_nodes']} / {r['ort_nodes']} | {r['top1_agreement']:.1%} |")
    return lines


def cpu_model() -> str:
    """The CPU model and its INT8 dot-product instruction sets (VNNI, AMX), from /proc/cpuinfo where there is one."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine()
    fields = dict(line.split(":", 1) for line in info.splitlines() if ":" in line)
    fields = {k.strip(): v.strip() for k, v in fields.items()}
    flags = fields.get("flags", "").split()
    int8 = [f for f in flags if "vnni" in f or f.startswith("amx")]
    return f"{fields.get('model name', platform.machine())}, INT8 instructions: {' '.join(int8) or 'no VNNI/AMX'}"


def environment(threads: int, load_before: float) -> str:
    return (f"{platform.node()}, {os.cpu_count()} CPUs ({cpu_model()}), Python "
            f"{platform.python_version()}, onnxruntime {onnxruntime.__version__}, torch {torch.__version__}, "
            f"{time.strftime('%Y-%m-%d %H:%M')}, {threads} intra-op thread(s), load average before the run "
            f"{load_before:.2f}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/int8_latency"),
                        help="writes layers.csv, subnets.csv and int8_latency.md here")
    parser.add_argument("--supernet", type=Path, default=None,
                        help="a trained supernet directory; without it the subnet part is skipped")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 3; subnets 5)")
    parser.add_argument("--threads", type=int, choices=(1, 2), default=1, help="ort-cpu-Nt devices")
    parser.add_argument("--quick", action="store_true", help="a tiny grid and short timing (seconds; for tests)")
    parser.add_argument("--skip-layers", action="store_true", help="only the subnet part")
    args = parser.parse_args(argv)
    if args.rounds is not None and args.rounds < 1:
        parser.error("--rounds must be at least 1")
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    fp32, int8 = get_device(f"ort-cpu-{args.threads}t"), get_device(f"ort-cpu-{args.threads}t-int8")
    assert isinstance(fp32, OrtCpuDevice) and isinstance(int8, OrtCpuDevice)
    if args.quick:
        fp32.timing = int8.timing = QUICK_TIMING
    layer_rounds = args.rounds or (2 if args.quick else 3)
    subnet_rounds = args.rounds or (2 if args.quick else 5)
    subnet_part = None
    if args.supernet is not None:
        try:  # refuse a bad directory before minutes of layer timing
            subnet_part = load_subnet_part(args.supernet)
        except UserError as exc:
            parser.error(str(exc))
    args.out.mkdir(parents=True, exist_ok=True)
    command = "python benchmarks/int8_latency.py " + " ".join(sys.argv[1:] if argv is None else argv)
    md = ["# Where INT8 pays: onnxruntime INT8 vs FP32 latency", "", f"`{command.strip()}` - "
          f"{environment(args.threads, load_before)}.", "",
          f"Devices `{fp32.name}` (FP32, BN folded) and `{int8.name}` (every layer static QDQ INT8: per-channel "
          "int8 weights, per-tensor uint8 activations, MinMax calibration), batch 1. The variants of one layer or "
          "subnet are measured interleaved, in rounds; ms are medians over rounds of the per-measurement medians, "
          "ratios the median per-round ratio (> 1: INT8, or the variant, is faster)."]
    started = time.perf_counter()
    if not args.skip_layers:
        cases = layer_grid(args.quick)
        print(f"layer grid: {len(cases)} layers x {layer_rounds} rounds on {fp32.name} / {int8.name}", flush=True)
        rows = run_layers(cases, fp32, int8, layer_rounds)
        write_csv(args.out / "layers.csv", rows, LAYER_COLUMNS)
        md += ["", "## Layers", "", f"{layer_rounds} rounds per layer; bold: INT8 is faster. INT8 ranges of single "
               f"layers are calibrated on {rows[0]['calibration']} "
               "(no data set behind a lone layer). A single-layer INT8 graph also converts its input to uint8 and "
               "its output back to float, which consecutive INT8 layers of a network share; small layers therefore "
               "look worse here than inside an INT8 network.", "", *summary_markdown(rows), "", *layer_markdown(rows)]
    if subnet_part is None:
        print("no --supernet given: skipping the subnet part (pass a trained supernet directory to run it)",
              flush=True)
        md += ["", "## Subnets", "", "Skipped: no `--supernet DIR` given."]
    else:
        print(f"subnets of {args.supernet}: max and min, 4 graphs each x {subnet_rounds} rounds", flush=True)
        rows = run_subnets(*subnet_part, fp32, subnet_rounds)
        write_csv(args.out / "subnets.csv", rows, SUBNET_COLUMNS)
        md += ["", "## Subnets", "", f"`{args.supernet}`: the largest and smallest subnet (supernet BN statistics, "
               f"no recalibration), each graph timed on `{fp32.name}`, {subnet_rounds} interleaved rounds. INT8 "
               f"graphs: `quantize_layers` on the folded or the unfolded FP32 graph, calibrated on the first "
               f"{CALIBRATION_IMAGES} training images. BN / Q / DQ / nodes count the graph as written; the next "
               "column counts it after onnxruntime's graph optimisations (what runs). Top-1 agreement: on the "
               "calibration images.", "", *subnet_markdown(rows)]
    (args.out / "int8_latency.md").write_text("\n".join(md) + "\n")
    print(f"\nwrote {args.out} in {time.perf_counter() - started:.0f} s\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
