"""`nasengine export`: pick a Pareto subnet of a run and write it as a standalone directory.

EXP/config.json (module spec, input shape and transform, the preprocessing contract), EXP/model.safetensors,
EXP/model.onnx (FP32, BN folded), EXP/model.raw.onnx (image exports: the preprocessing as ONNX nodes in front of
model.onnx, taking raw NHWC images), EXP/model.int8.onnx when the subnet's quantization policy runs any layer below FP32
(static INT8, or weight-only INT8/INT4),
and EXP/manifest.json (arch, policy, accuracy of the deployed graph on a recorded split, latency re-measured on the
device, provenance).
`nasengine.exporting.subnet.load_subnet(EXP)` rebuilds it as a plain torch module, with no supernet code.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from statistics import NormalDist
from typing import Any, Callable

import numpy as np
import pandas as pd
import torch
from safetensors.torch import save_file

from nasengine import supernets
from nasengine.kernels.inputs import apply_input_transform, take
from nasengine.kernels.static import registering_modules, to_spec
from nasengine.measurement.devices import Workload, get_device
from nasengine.errors import UserError
from nasengine.evaluation.evaluator import Evaluator, onnx_scores, scores
from nasengine.graphs.onnx_writer import onnx_error, to_onnx
from nasengine.exporting.subnet import FORMAT
from nasengine.exporting.formats import FORMATS, write_formats
from nasengine.exporting.preprocess import export_preprocessing
from nasengine.exporting.raw_graph import with_raw_graph
from nasengine.reporting.fronts import (ACCURACY_COLUMNS, frame_costs, frame_feasible, front, group_constraints,
                                        latency_column)
from nasengine.reporting.reports import mark_exported, objectives_from_identity
from nasengine.searching.objectives import Constraint, Objective
from nasengine.searching.runner import DEFAULT_DEVICE, MARKER
from nasengine.training.loading import load_trained
from nasengine.searching.supernet_metrics import DECODE_CACHE, Quantization, measure_phases
from nasengine.search_spaces.quantization import int8_layers, quantizes, weight_only_layers
from nasengine.rundir import check_creatable
from nasengine.tasks import task_from_spec
from nasengine.search_spaces.storage import atomic_directory, atomic_file, atomic_write

ONNX_TOLERANCE = 1e-4  # largest |ONNX - torch| accepted on real inputs
EXPORT_FILES = ("config.json", "manifest.json", "model.onnx", "model.safetensors")


@dataclass(frozen=True)
class ExportRequest:
    run_dir: Path
    out: Path
    latency_budget_ms: float | None = None
    device: str | None = None
    overwrite: bool = False
    arch: dict[str, Any] | None = None  # export this arch instead of choosing from the Pareto set
    pick: str = "within-noise"  # within-noise | most-accurate (see `pick_subnet`)
    formats: tuple[str, ...] = ()  # more formats written beside the engine's own (nasengine.exporting.formats)
    # `nasengine finetune`: package these weights of `arch` (instead of the supernet's), add `provenance` to the
    # manifest and `extra_files` to the directory
    module: torch.nn.Module | None = None
    provenance: dict[str, Any] | None = None
    extra_files: dict[str, bytes] | None = None


def _read_run(run_dir: Path) -> dict[str, Any]:
    marker = Path(run_dir) / MARKER
    if not Path(run_dir).is_dir():
        raise UserError(f"{run_dir}: no such directory")
    if not marker.is_file():
        raise UserError(f"{run_dir} is not a search run directory (no {MARKER})")
    try:
        run = json.loads(marker.read_text())
    except (OSError, UnicodeDecodeError, ValueError):
        run = None
    if not isinstance(run, dict) or not isinstance(run.get("identity"), dict) \
            or not isinstance(run["identity"].get("devices"), list):
        raise UserError(f"{marker} is unreadable or not a nasengine run record")
    if run.get("status") == "failed":
        raise UserError(f"the search in {run_dir} failed ({run.get('error') or 'no reason recorded'}); fix that and "
                        f"run the same `nasengine search` command again")
    if run.get("status") != "complete" or not (Path(run_dir) / "results.csv").is_file():
        raise UserError(f"the search in {run_dir} is not complete; resume it with the same `nasengine search` command")
    return run


def _file_sha1(path: Path) -> str:
    return hashlib.sha1(Path(path).read_bytes()).hexdigest()


def _export_options(request: ExportRequest, run: dict[str, Any], device_name: str) -> dict[str, Any]:
    """What decides the exported subnet: recorded in manifest.json, compared when exporting into it again."""
    return {"run": str(Path(request.run_dir).resolve()), "device": device_name,
            "latency_budget_ms": request.latency_budget_ms, "arch": request.arch,
            "pick": None if request.arch is not None else request.pick,
            **({"formats": list(request.formats)} if request.formats else {}),
            "results_sha1": _file_sha1(Path(request.run_dir) / "results.csv"),
            "supernet_weights_sha1": run["identity"].get("supernet_weights_sha1")}


def _existing_export(out: Path, options: dict[str, Any]) -> dict[str, Any] | None:
    """The manifest of a complete export in `out` made with `options`; None when `out` does not exist;
    UserError when it holds something else."""
    if not out.exists():
        return None
    manifest_path = out / "manifest.json"
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, UnicodeDecodeError, ValueError):
        manifest = None
    complete = isinstance(manifest, dict) and all((out / name).is_file() for name in EXPORT_FILES)
    if not complete:
        raise UserError(f"{out} already exists and is not an export; choose another --out or pass --overwrite")
    recorded = manifest.get("options")
    if not isinstance(recorded, dict):
        raise UserError(f"{out} already exists and holds an export that does not record its options; choose "
                        f"another --out or pass --overwrite to replace it")
    if "pick" not in recorded and options.get("pick") == "most-accurate":  # nasengine 0.1 picked the most accurate
        recorded = {**recorded, "pick": "most-accurate"}
    for key in options:
        if recorded.get(key) != options[key]:
            what = {"results_sha1": "an earlier state of the run's results",
                    "supernet_weights_sha1": "other supernet weights"}.get(key, f"{key}={recorded.get(key)!r} "
                                                                             f"(now {options[key]!r})")
            raise UserError(f"{out} already exists and holds an export made with {what}; choose another --out "
                            f"or pass --overwrite to replace it")
    return manifest


PICKS = ("within-noise", "most-accurate")
NOISE_CONFIDENCE = 0.90  # one-sided: the best subnet's true accuracy is above the bound with this probability


@dataclass(frozen=True)
class PickRule:
    """How `pick_subnet` chooses: `pick` ("within-noise" or "most-accurate"), `val_size` (samples of the
    validation split the run's accuracies were measured on; within-noise needs it) and `latency_budget_ms`
    (applied first, on the export device)."""

    pick: str = "within-noise"
    val_size: int | None = None
    latency_budget_ms: float | None = None


def wilson_lower_bound(rate: float, n: int, confidence: float = NOISE_CONFIDENCE) -> float:
    """One-sided Wilson score lower bound of an accuracy `rate` measured on `n` samples: with probability
    `confidence` the true accuracy is above it, so a subnet scoring at least this is within the split's noise."""
    z = NormalDist().inv_cdf(confidence)
    z2n = z * z / n
    spread = z * math.sqrt(rate * (1.0 - rate) / n + z2n / (4.0 * n))
    return (rate + z2n / 2.0 - spread) / (1.0 + z2n)


def _pick_candidates(results: pd.DataFrame, group: list[Objective], constraints: list[Constraint], device: str,
                     latency_budget_ms: float | None) -> pd.DataFrame:
    """The Pareto front over `group` among the rows feasible for `device` and within the latency budget on it; a
    one-line UserError saying why when it is empty."""
    bounds = group_constraints(constraints, device)
    if latency_budget_ms is not None:
        column = latency_column(device)
        if column not in results.columns:
            raise UserError(f"the run recorded no latency on {device}, so --latency-budget cannot be applied there")
        bounds = [*bounds, Constraint(column, "<=", latency_budget_ms, device)]
    missing = [o.column for o in group if o.column not in results.columns]
    if missing:
        raise UserError(f"the run's results have no column {', '.join(missing)}; search again")
    candidates = front(results, group, bounds)
    if candidates.empty:
        feasible = results[frame_feasible(results, group_constraints(constraints, device))]
        if latency_budget_ms is not None and len(feasible):
            fastest = pd.to_numeric(feasible[latency_column(device)], errors="coerce").min()
            raise UserError(f"no evaluated subnet runs within {latency_budget_ms:g} ms on {device} "
                            f"(fastest evaluated: {fastest:.3f} ms)")
        what = ", ".join(str(c) for c in bounds) or "its objectives recorded"
        raise UserError(f"no evaluated subnet of this run qualifies for export on {device} ({what})")
    return candidates


def _best_of(frame: pd.DataFrame, order: list[Objective]) -> pd.Series:
    """The row of `frame` best on `order[0]`, ties broken by the next objectives."""
    return frame.iloc[int(np.lexsort(frame_costs(frame, order).T[::-1])[0])]


def _accuracies(frame: pd.DataFrame, objective: Objective) -> np.ndarray:
    """Top-1 accuracy (a fraction) of each row, from the `accuracy` objective or as 1 - `error`."""
    values = pd.to_numeric(frame[objective.column], errors="coerce").to_numpy(dtype=float)
    return values if objective.column == "accuracy" else 1.0 - values


def _brief(row: pd.Series, group: list[Objective]) -> dict[str, Any]:
    """A row as the manifest names it: its number, accuracy and value on each objective (None where unknown)."""
    def number(value: Any) -> float | None:
        value = pd.to_numeric(value, errors="coerce")
        return None if pd.isna(value) else float(value)

    number_value = number(row.get("number"))
    return {"number": None if number_value is None else int(number_value),
            **({"accuracy": number(row.get("accuracy"))} if "accuracy" in row.index else {}),
            **{o.column: number(row.get(o.column)) for o in group}}


def pick_subnet(results: pd.DataFrame, objectives: list[Objective], constraints: list[Constraint], device: str,
                rule: PickRule) -> tuple[pd.Series, dict[str, Any]]:
    """(row, record) of the subnet to export for `device` and how it was chosen (for the manifest).

    Candidates: the Pareto front over the device-independent objectives and `device`'s own, among the rows
    feasible under the run's constraints for `device` and within `rule.latency_budget_ms` on it. "most-accurate":
    the most accurate candidate (ties: the better on the next objective). "within-noise": among the candidates
    whose accuracy is at least `wilson_lower_bound` of the most accurate one's (n = `rule.val_size`), the fastest
    on `device` (when the run has no latency objective there, the best on the next objective; ties: the more
    accurate). A run without an accuracy/error objective exports the best candidate on its first objective."""
    group = [o for o in objectives if o.device in (None, device)]
    if not group:
        searched = sorted({o.device for o in objectives if o.device})
        raise UserError(f"the run's objectives are all measured on other devices ({', '.join(searched)}); "
                        f"choose one of them with --device")
    candidates = _pick_candidates(results, group, constraints, device, rule.latency_budget_ms)
    acc = next((o for o in group if o.column in ACCURACY_COLUMNS), None)
    if acc is None:
        best = _best_of(candidates, group)
        return best, {"rule": "first-objective", "picked": _brief(best, group),
                      "text": f"the best Pareto subnet on {group[0].column} (the run has no accuracy objective)"}
    rest = [o for o in group if o is not acc]
    best = _best_of(candidates, [acc, *rest])
    speed = next((o for o in rest if o.column == latency_column(device)), rest[0] if rest else None)
    if rule.pick == "most-accurate" or speed is None or not rule.val_size:  # no split size: no noise to allow for
        return best, {"rule": "most-accurate", "most_accurate": _brief(best, group), "picked": _brief(best, group),
                      "text": "the most accurate Pareto subnet (ties: the better on the next objective)"}
    return _within_noise(candidates, group, acc, speed, rule, device)


def _within_noise(candidates: pd.DataFrame, group: list[Objective], acc: Objective, speed: Objective,
                  rule: PickRule, device: str) -> tuple[pd.Series, dict[str, Any]]:
    """The within-noise pick of `pick_subnet`: the best on `speed` (then accuracy) of the candidates whose accuracy
    is at least the Wilson lower bound of the best accuracy on `rule.val_size` samples, and its record."""
    if rule.pick != "within-noise" or not rule.val_size or rule.val_size < 1:
        raise ValueError(f"pick {rule.pick!r} with validation size {rule.val_size!r}: within-noise needs val_size")
    rest = [o for o in group if o is not acc]
    best = _best_of(candidates, [acc, *rest])
    accuracies = _accuracies(candidates, acc)
    top = float(np.nanmax(accuracies))
    bound = wilson_lower_bound(top, rule.val_size)
    close = candidates[accuracies >= bound - 1e-12]
    picked = _best_of(close, [speed, acc, *(o for o in rest if o is not speed)])
    by = f"the fastest on {device}" if speed.column == latency_column(device) else f"the best on {speed.column}"
    text = (f"{by} of the {len(close)} Pareto subnets within the validation noise of the most accurate one: "
            f"accuracy at least {bound:.2%}, the one-sided {NOISE_CONFIDENCE:.0%} Wilson lower bound of its "
            f"{top:.2%} on n = {rule.val_size} validation samples")
    interval = {"method": "wilson score", "sided": "lower", "confidence": NOISE_CONFIDENCE, "n": int(rule.val_size),
                "accuracy": top, "lower_bound": bound}
    numbers = pd.to_numeric(close["number"], errors="coerce").dropna() if "number" in close.columns else []
    return picked, {"rule": "within-noise", "text": text, "by": speed.column, "interval": interval,
                    "candidates": [int(n) for n in numbers], "most_accurate": _brief(best, group),
                    "picked": _brief(picked, group)}


def choose_subnet(results: pd.DataFrame, objectives: list[Objective], constraints: list[Constraint],
                  device: str, latency_budget_ms: float | None = None, pick: str = "within-noise",
                  val_size: int | None = None) -> pd.Series:
    """The row `pick_subnet` exports for `device` (`pick` within-noise needs `val_size`, the number of validation
    samples the run's accuracies were measured on)."""
    return pick_subnet(results, objectives, constraints, device, PickRule(pick, val_size, latency_budget_ms))[0]


def export(request: ExportRequest) -> dict[str, Any]:
    """Choose, extract, verify and write the subnet; the output appears atomically, complete or not at all."""
    if request.latency_budget_ms is not None and not request.latency_budget_ms > 0:
        raise UserError(f"--latency-budget must be a positive number of ms, got {request.latency_budget_ms}")
    if request.pick not in PICKS:
        raise UserError(f"--pick must be one of {', '.join(PICKS)}, got {request.pick!r}")
    for name in request.formats:  # unknown names are refused before anything is computed or written
        FORMATS.get(name)
    out = Path(request.out)
    check_creatable(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"{out} exists and is not a directory; choose another --out")
    run = _read_run(Path(request.run_dir))
    identity = run["identity"]
    searched_devices = list(identity["devices"])
    # a search that measured no latency (e.g. objectives error,params) exports for the device named here
    device_name = request.device or (searched_devices[0] if searched_devices else DEFAULT_DEVICE)
    if searched_devices and device_name not in searched_devices:
        raise UserError(f"device {device_name!r} was not searched in this run "
                        f"(searched: {', '.join(searched_devices)})")
    options = _export_options(request, run, device_name)
    if not request.overwrite:
        existing = _existing_export(out, options)
        if existing is not None:
            return {**existing, "resumed": True}
    results = pd.read_csv(Path(request.run_dir) / "results.csv")
    objectives, constraints = objectives_from_identity(identity)
    net, config = load_trained(Path(identity["supernet_dir"]))
    if supernets.weights_digest(Path(identity["supernet_dir"])) != identity["supernet_weights_sha1"]:
        raise UserError(f"the supernet in {identity['supernet_dir']} changed since this search; search again")
    task = task_from_spec(config["task"])
    evaluator = Evaluator(net, task, "val")
    quant_info = identity.get("quantization") or {"mode": "none"}
    try:
        layers = tuple(net.quantizable_layers()) if quant_info["mode"] != "none" else ()
    except ValueError as exc:
        raise UserError(str(exc)) from None
    searched = {gene["name"]: tuple(gene["options"]) for gene in identity.get("space", {}).get("genes", [])}
    layers = tuple(replace(layer, precisions=searched.get(layer.gene, layer.precisions)) for layer in layers)
    quantization = Quantization(quant_info["mode"], layers, quant_info.get("accuracy", "real"))
    space = quantization.space(net.space)  # the precisions each layer had in the search (weight-only or not)
    if request.arch is not None:
        try:
            full_arch = space.validate(request.arch)
        except ValueError as exc:
            raise UserError(f"--arch is not in the search space: {exc}") from None
        known = results[results["arch"] == json.dumps(full_arch, separators=(",", ":"))]
        pick = {"rule": "arch", "text": "the arch given with --arch"}
        row = known.iloc[0] if len(known) else pd.Series({"accuracy": float("nan"),
                                                           latency_column(device_name): float("nan")})
    else:
        row, pick = pick_subnet(results, objectives, constraints, device_name,
                                PickRule(request.pick, len(evaluator.split), request.latency_budget_ms))
        full_arch = json.loads(row["arch"])
    arch, policy = quantization.policy(full_arch)
    int8, weight_only = int8_layers(policy), weight_only_layers(policy)
    module = evaluator.extract(arch) if request.module is None else request.module.eval()
    transform = net.input_transform(arch)
    test = task.split("test")
    prepare = (lambda x: apply_input_transform(x, transform))
    fp32_scores = scores(module, test, prepare)
    fp32_accuracy = fp32_scores["accuracy"]
    files = {"model.onnx": to_onnx(module, net.example_inputs(arch, 1), dynamic_batch=True)}
    # real inputs at their stored shape: the ONNX graph must compute what torch does
    probe = net.adapt_input(take(test.inputs, slice(0, 8)), arch)
    error = onnx_error(module, files["model.onnx"], probe)
    if not error <= ONNX_TOLERANCE:
        raise UserError(f"the ONNX graph of this subnet differs from the torch module by {error:.2e} (more than "
                        f"{ONNX_TOLERANCE:g}); nothing was exported")
    int8_graph = evaluator.deployed_graph(arch, int8, module, weight_only) if quantizes(policy) else None
    if int8_graph is not None:
        files["model.int8.onnx"] = int8_graph
    search_accuracy = float(row["accuracy"])
    if np.isnan(search_accuracy):  # an --arch the search never evaluated: score it as the search would have
        search_accuracy = (evaluator.quantized(arch, int8, weight_only=weight_only)[0] if quantizes(policy)
                           else evaluator.evaluate(arch))
    device = get_device(device_name, supernet_dir=identity["supernet_dir"])
    input_shape = list(net.input_shape(arch))
    inputs = [spec.to_dict() for spec in net.input_specs(arch)]

    def workload(graph: bytes, quantized: bool) -> Workload:
        """The shipped file as devices time it: `measure` on the export later times the very same bytes."""
        return Workload(arch, net.space.key(arch), lambda: module, net.input_specs(arch),
                        describe=lambda: net.describe(arch), calibration=lambda: evaluator.quantization_inputs(arch),
                        dynamic_onnx=graph, policy=policy if quantized else None)

    measurement = device.measure(workload(int8_graph, True) if int8_graph is not None
                                 else workload(files["model.onnx"], False))
    cache_tokens = int(identity.get("decode_cache", DECODE_CACHE))
    phases = {phase: {"ms": m.median_ms, "iqr_ms": m.iqr_ms, "inputs": m.inputs}
              for phase, m in measure_phases(net, arch, device, cache_tokens).items()}
    cost = net.cost(arch)
    searched = row.get(latency_column(device_name), float("nan"))
    deployed = onnx_scores(int8_graph, test, prepare) if int8_graph is not None else fp32_scores
    # one preprocessing contract in config.json and manifest.json; image exports add model.raw.onnx (raw NHWC in)
    preprocessing, raw_graph = with_raw_graph(export_preprocessing(task.preprocessing, transform,
                                                                   net.input_specs(arch)), files["model.onnx"], module)
    subnet_config = {"format": FORMAT, "version": 1, "module": to_spec(module), "input_shape": input_shape,
                     "inputs": inputs,
                     "input_transform": transform, "task": config["task"], "arch": arch,
                     "requires_modules": required_modules(module), "plugins": config.get("plugins", []),
                     "preprocessing": preprocessing}
    manifest = {
        "format": FORMAT, "arch": arch, "graph": "model.int8.onnx" if int8_graph is not None else "model.onnx",
        "accuracy": deployed["accuracy"], "accuracy_split": test.identity,
        "search_accuracy": search_accuracy, "search_split": task.split("val").identity,
        "latency_ms": measurement.median_ms, "latency": measurement.to_dict(),
        # a lookup table or a predictor gives a latency without running the model: never reported as re-measured
        "latency_kind": "measured" if device.runs_models else "predicted",
        "search_latency_ms": None if pd.isna(searched) else float(searched),
        "device": device_name, "device_config": device.describe(),
        "latency_budget_ms": request.latency_budget_ms, "pick": pick, "params": cost.params, "macs": cost.macs,
        "onnx_max_abs_error": error,
        "input_shape": input_shape, "inputs": inputs, "input_transform": transform,
        "preprocessing": preprocessing,
        "supernet": {"name": config["supernet"], "dir": identity["supernet_dir"],
                     "weights_sha1": identity["supernet_weights_sha1"]},
        "run": str(Path(request.run_dir).resolve()), "options": options,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    if phases:  # a decoder's per-token latency against a cache of `decode_cache` positions
        manifest.update(phases=phases, decode_cache=cache_tokens)
    if task.language_model:  # perplexity of the test text, and the search's on the validation text
        searched_perplexity = row.get("perplexity", float("nan"))
        manifest.update(perplexity=deployed["perplexity"], loss=deployed["loss"],
                        search_perplexity=None if pd.isna(searched_perplexity) else float(searched_perplexity))
    if quantization.mode != "none":
        manifest["quant_policy"] = policy
        manifest["quantization"] = quant_info
        manifest["fp32"] = {"graph": "model.onnx", "accuracy": fp32_accuracy,
                            "latency_ms": device.measure(workload(files["model.onnx"], False)).median_ms
                            if int8_graph is not None
                            else measurement.median_ms}
    assets = task.assets()
    manifest["formats"] = list(request.formats)
    manifest.update(request.provenance or {})
    files = {"config.json": json.dumps(subnet_config, indent=2).encode(),
             "manifest.json": json.dumps(manifest, indent=2).encode(), **files, **raw_graph, **assets,
             **(request.extra_files or {})}
    _write_atomically(out, request.overwrite, files, module.state_dict(),
                      lambda tmp: write_formats(request.formats, module, tmp, assets))
    _mark_exported(Path(request.run_dir), device_name, row)
    return {**manifest, "resumed": False}


def _mark_exported(run_dir: Path, device: str, row: pd.Series) -> None:
    """Star the exported subnet on the run's pareto.png (and record it in RUN/exported.json). Only a decoration:
    a run directory that cannot be written (someone else's, read-only) leaves the export as it is."""
    number = row.get("number")
    if number is None or pd.isna(number):
        return  # an --arch that the search never evaluated: nothing to mark
    try:
        mark_exported(run_dir, device, int(number))
    except OSError:
        pass


def required_modules(module: torch.nn.Module) -> list[str]:
    """Modules outside torch and nasengine that define or register static types of `module` (user families' own ops,
    torch classes a plugin added to the vocabulary): `load_subnet` names them, and the plugin recorded for them."""
    return registering_modules(module)


def _write_atomically(out: Path, overwrite: bool, files: dict[str, bytes], state: dict[str, torch.Tensor],
                      more: Callable[[Path], Any] | None = None) -> None:
    """The export directory, complete or not at all: files, weights, and what `more(directory)` writes (the
    requested formats) before the directory appears."""
    with atomic_directory(out, overwrite) as tmp:
        for name, data in files.items():
            atomic_write(tmp / name, data)
        with atomic_file(tmp / "model.safetensors") as weights:  # usual permissions (safetensors writes 0600)
            save_file({k: v.contiguous() for k, v in state.items()}, str(weights))
        if more is not None:
            more(tmp)
