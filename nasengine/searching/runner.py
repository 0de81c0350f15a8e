"""`nasengine search`: the search API over the metrics of a trained supernet, for one or more devices, with
optional extra worker processes sharing the run's trial store."""

from __future__ import annotations

import multiprocessing
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from nasengine import supernets
from nasengine.measurement.devices import get_device
from nasengine.errors import UserError, one_line
from nasengine.evaluation.evaluator import Evaluator
from nasengine.plugins import load_plugin
from nasengine.training.loading import load_trained
from nasengine.progress import Progress
from nasengine.searching.arch_features import cost_features, latency_priors
from nasengine.searching.policy_prior import SENSITIVITY_SAMPLES, PolicyPrior, load_precision_tables, \
    quantization_sensitivity
from nasengine.searching.api import MARKER, RunSettings, SearchPlan, SearchResult, run_search
from nasengine.searching.hypervolume import load_reference
from nasengine.searching.objectives import METRICS, Constraint, bind_objectives, metric_column, parse_bound, \
    parse_constraint
from nasengine.searching.supernet_metrics import (BUILTIN_METRICS, DECODE_CACHE, SUPERNET_METRICS, Quantization,
                                                 SupernetMetrics)
from nasengine.graphs.quantization import SCHEME
from nasengine.search_spaces.quantization import PRECISIONS, STATIC_PRECISIONS, WEIGHT_ONLY_BITS, QuantizableLayer, \
    check_precisions
from nasengine.tasks import task_from_spec

__all__ = ["MARKER", "SearchRequest", "search"]
DEFAULT_DEVICE = "ort-cpu-1t"
MEASURE_LOCK = ".measure.lock"  # workers on one machine take turns timing (a measurement wants the CPU alone)


@dataclass(frozen=True)
class SearchRequest:
    supernet_dir: Path
    out: Path
    devices: tuple[str, ...] = ()
    evals: int = 200
    latency_budget_ms: float | None = None
    objectives: tuple[str, ...] = ("error", "latency")
    strategy: str = "nsga2"
    seed: int = 0
    overwrite: bool = False
    progress: bool = True
    constraints: tuple[str, ...] = ()
    storage: str | None = None
    study: str | None = None
    workers: int = 1
    plugins: tuple[str, ...] = ()  # re-imported by extra worker processes
    quantization: str = "none"  # none | int8 | search (per-layer precision genes co-searched)
    quant_accuracy: str = "real"  # real (onnxruntime on the split) | estimate (fake quantization)
    precisions: tuple[str, ...] = PRECISIONS  # what a searched policy may choose, where a layer supports it
    extra_identity: dict[str, Any] = field(default_factory=dict)
    hv_reference: Any = None  # fixed hypervolume scale: a JSON file path or its decoded mapping (hypervolume.py)
    decode_cache: int = DECODE_CACHE  # key/value positions a decoder's per-token latency and memory are taken at

    def resolved_devices(self) -> tuple[str, ...]:
        """The devices given, or the default one when a latency objective or constraint needs a device."""
        if self.devices:
            return self.devices
        names = [*(n.strip() for n in self.objectives), *(parse_bound(c)[0] for c in self.constraints)]
        per_device = any(n in METRICS and METRICS.get(n).per_device for n in names)
        return (DEFAULT_DEVICE,) if per_device or self.latency_budget_ms is not None else ()

    def validate(self) -> None:
        if self.evals < 2:
            raise UserError(f"--evals must be at least 2, got {self.evals}")
        if self.latency_budget_ms is not None and not self.latency_budget_ms > 0:
            raise UserError(f"--latency-budget must be a positive number of ms, got {self.latency_budget_ms}")
        if len(set(self.devices)) != len(self.devices):
            raise UserError("give each --device once")
        if self.workers < 1:
            raise UserError(f"--workers must be at least 1, got {self.workers}")
        if Path(self.out).resolve() == Path(self.supernet_dir).resolve():
            raise UserError("--out must differ from the supernet directory")
        if tuple(self.precisions) != PRECISIONS and self.quantization != "search":
            raise UserError("--precisions chooses what --quantization search may pick; add --quantization search")


def constraints_of(request: SearchRequest, devices: tuple[str, ...]) -> list[Constraint]:
    bound = [c for text in request.constraints for c in parse_constraint(text, devices)]
    if request.latency_budget_ms is not None:
        bound += parse_constraint(f"latency_ms<={request.latency_budget_ms!r}", devices)
    return bound


def search(request: SearchRequest, role: str = "main") -> dict[str, Any]:
    """Run (or resume) a search; writes RUN/results.csv, pareto.csv/.png, hypervolume.csv/.png, run.json.
    With `workers` > 1, that many processes evaluate against the same store; this one writes the reports."""
    request.validate()
    devices_named = request.resolved_devices()
    net, config = load_trained(request.supernet_dir)
    task = task_from_spec(config["task"])  # refuses changed data before anything is written
    devices = [get_device(name, supernet_dir=request.supernet_dir) for name in devices_named]
    for device in devices:
        reason = device.availability()
        if reason is not None:
            raise UserError(f"device {device.name!r} is not usable here: {reason}")
    quantization = _quantization(request, net, devices)
    objectives = bind_objectives(list(request.objectives), list(devices_named))
    constraints = constraints_of(request, devices_named)
    wanted = list(dict.fromkeys([*(o.column for o in objectives), *(c.column for c in constraints)]))
    phases = list(net.phases(net.space.max(), request.decode_cache))  # a decoder's decode latency, say
    computed = {*BUILTIN_METRICS, *(metric_column("latency_ms", d) for d in devices_named), *SUPERNET_METRICS.names(),
                *(metric_column(f"{p}_ms", d.name) for p in phases for d in devices if d.runs_models),
                *(["perplexity"] if task.language_model else [])}
    missing = [c for c in wanted if c not in computed]
    if missing:
        raise UserError(f"metric {missing[0]!r} is not computed for this supernet, its task or these devices "
                        f"(perplexity: language models; decode_ms: decoders on devices that run models; your own: "
                        f"nasengine.searching.register_supernet_metric(name, fn))")
    extra = [c for c in wanted if c in SUPERNET_METRICS]
    lock = Path(request.out) / MEASURE_LOCK if request.workers > 1 or role == "worker" else None
    evaluator = Evaluator(net, task, "val")
    evaluate = SupernetMetrics(evaluator, devices, extra, measure_lock=lock, quantization=quantization,
                               cache_tokens=request.decode_cache)
    identity = {"supernet_dir": str(Path(request.supernet_dir).resolve()),
                "supernet_weights_sha1": supernets.weights_digest(Path(request.supernet_dir)),
                "devices": list(devices_named), "latency_budget_ms": request.latency_budget_ms,
                **request.extra_identity}
    if request.hv_reference is not None:  # checked against the objectives before anything is written
        identity["hv_reference"] = load_reference(request.hv_reference, objectives)
    if phases:  # a decoder's latencies and memory depend on the cache length
        identity["decode_cache"] = request.decode_cache
    if quantization.mode != "none":  # recorded only when used, so FP32 runs of earlier versions still resume
        identity["quantization"] = {"mode": quantization.mode, "accuracy": quantization.accuracy, **SCHEME,
                                    "calibration_samples": evaluator.quantization_samples}
    first_device = devices_named[0] if devices_named else None
    policy_prior = _policy_prior(request, net, evaluator, quantization, devices_named,
                                 identity["supernet_weights_sha1"])

    def on_row(row: Any, bar: Any) -> None:  # (failed evaluations are shown by the search itself)
        status = ({"ppl": f"{row.metrics['perplexity']:.2f}"} if "perplexity" in row.metrics
                  else {"acc": f"{row.metrics['accuracy']:.3f}"})
        if first_device is not None:
            status["ms"] = f"{row.metrics[f'latency_ms:{first_device}']:.3f}"
        bar.update(1, **status)

    start = (lambda study: _start_workers(request, study)) if role == "main" and request.workers > 1 else None
    with torch.no_grad():
        run = RunSettings(out=Path(request.out), storage=request.storage, study_name=request.study, identity=identity,
                          overwrite=request.overwrite, progress=request.progress and role == "main",
                          label=f"search {','.join(devices_named) or 'supernet'}", role=role, on_row=on_row,
                          start_workers=start)
        result = run_search(quantization.space(net.space), objectives, constraints, evaluate,
                            SearchPlan(request.strategy, request.evals, request.seed), run,
                            arch_features=cost_features(
                                net, quantization, latency_priors(request.supernet_dir, devices_named),
                                sensitivity=policy_prior.int8_sensitivity if policy_prior is not None else None),
                            propose=policy_prior.propose if policy_prior is not None and policy_prior.can_propose
                            else None)
    return _summary(result, devices_named)


def _policy_prior(request: SearchRequest, net: supernets.Supernet, evaluator: Evaluator, quantization: Quantization,
                  devices: tuple[str, ...], weights_sha1: str) -> PolicyPrior | None:
    """What prices and proposes a searched precision policy (see searching.policy_prior): the tables of the first
    searched device profiled at FP32 and another precision, and each layer's sensitivity on the largest subnet,
    measured when first needed and kept in the run directory. None unless the policy is searched."""
    if quantization.mode != "search":
        return None
    measuring = [d for d in devices if ":" not in d]
    tables = next((t for t in (load_precision_tables(request.supernet_dir, d) for d in measuring) if t is not None),
                  None)
    if tables is None and measuring and request.progress:
        print(f"note: no INT8 latency table for {measuring[0]}; `nasengine device profile {measuring[0]} "
              f"{request.supernet_dir}` and `... --precision int8` let the search price and propose precision "
              f"policies", file=sys.stderr)
    largest = net.space.max()
    paths = [layer.path for layer in quantization.layers if layer.active_if is None or layer.active_if.holds(largest)]
    identity = {"supernet_weights_sha1": weights_sha1, "layers": paths, "split": "val",
                "samples": SENSITIVITY_SAMPLES}

    def measure() -> dict[str, float]:
        with Progress(len(paths), "quantization sensitivity", "layer", request.progress) as bar:
            return evaluator.quantization_sensitivity(largest, paths, SENSITIVITY_SAMPLES, lambda: bar.update(1))

    return PolicyPrior(quantization.policy, net.describe, tables,
                       lambda: quantization_sensitivity(Path(request.out), identity, measure),
                       {layer.path: layer.precisions for layer in quantization.layers})


def _quantization(request: SearchRequest, net: supernets.Supernet, devices: list[Any]) -> Quantization:
    """The run's quantization setup; UserError when a device cannot time the quantized graphs it asks for."""
    if request.quantization == "none":
        return Quantization("none", accuracy=request.quant_accuracy)
    Quantization(request.quantization, accuracy=request.quant_accuracy)  # validates the names first
    for device in devices:
        if not device.runs_quantized_graphs:
            raise UserError(f"--quantization {request.quantization}: device {device.name!r} ({device.backend}) "
                            f"cannot run quantized graphs; use an onnxruntime or remote device")
        if device.precision != "fp32":
            raise UserError(f"--quantization {request.quantization}: device {device.name!r} quantizes every layer "
                            f"itself; search its FP32 twin (e.g. {device.name.removesuffix('-int8')}) instead")
    try:
        check_precisions(request.precisions)
    except ValueError as exc:
        raise UserError(f"--precisions: {exc}") from None
    try:
        layers = tuple(net.quantizable_layers())
    except ValueError as exc:
        raise UserError(str(exc)) from None
    weight_only = [p for p in request.precisions if p in WEIGHT_ONLY_BITS]
    if request.quantization == "search" and weight_only:
        if request.quant_accuracy == "estimate":
            raise UserError(f"--quant-accuracy estimate has no weight-only precisions ({', '.join(weight_only)}); "
                            f"score them for real or leave them out of --precisions")
        layers = _with_weight_only(net, layers, tuple(weight_only))
    allowed = tuple(p for p in request.precisions if p in STATIC_PRECISIONS or p in weight_only)
    layers = tuple(replace(layer, precisions=tuple(p for p in layer.precisions if p in allowed)) for layer in layers)
    return Quantization(request.quantization, layers, request.quant_accuracy)


def _with_weight_only(net: supernets.Supernet, layers: tuple[QuantizableLayer, ...], weight_only: tuple[str, ...]
                      ) -> tuple[QuantizableLayer, ...]:
    """`layers`, those whose weights feed matrix products in the largest subnet's graph (linear and attention
    layers of transformers) also offering the weight-only precisions."""
    from nasengine.graphs.onnx_writer import to_onnx
    from nasengine.graphs.weight_only import layers_with_weight_matmuls

    largest = net.space.max()
    graph = to_onnx(net.extract(largest), net.example_inputs(largest, 1), dynamic_batch=True)
    eligible = set(layers_with_weight_matmuls(graph, [layer.path for layer in layers]))
    return tuple(replace(layer, precisions=(*layer.precisions, *weight_only)) if layer.path in eligible else layer
                 for layer in layers)


def _summary(result: SearchResult, devices: tuple[str, ...]) -> dict[str, Any]:
    pareto = result.pareto_frame
    sizes = {} if pareto is None else {str(d): int(n) for d, n in pareto.groupby("device", dropna=False).size().items()}
    return {"out": str(result.out), "results": result.results_frame, "pareto": pareto, "pareto_sizes": sizes,
            **result.summary}


def _start_workers(request: SearchRequest, study: str) -> list[multiprocessing.process.BaseProcess]:
    """`workers - 1` more processes running the same search in the same study (spawned: no shared state)."""
    context = multiprocessing.get_context("spawn")
    processes = []
    for _ in range(request.workers - 1):
        worker_request = replace(request, workers=1, progress=False, study=study, overwrite=False)
        process = context.Process(target=_worker_main, args=(worker_request,), daemon=False)
        process.start()
        processes.append(process)
    return processes


def _worker_main(request: SearchRequest) -> None:
    """An extra worker: the same search against the same store, evaluating what no one else has claimed.
    Errors end it like the CLI ends (one line, exit 2; Ctrl-C exit 130), never with a traceback."""
    torch.set_num_threads(1)
    try:
        for ref in request.plugins:
            load_plugin(ref, given=True)
        search(request, role="worker")
    except UserError as exc:
        print(f"nasengine search worker: error: {one_line(str(exc))}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)
