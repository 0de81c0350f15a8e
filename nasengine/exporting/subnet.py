"""Exported subnets: reload as plain torch modules and re-score them, without importing any supernet code.

Loading never unpickles (JSON, safetensors and ONNX only); a damaged export (garbage or incomplete
config.json or manifest.json, a truncated, empty or mismatched model.safetensors, a model.onnx that is not
ONNX) is a one-line ValueError naming the file.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from nasengine.kernels.inputs import apply_input_transform, specs_from_config, to_numpy
from nasengine.kernels.static import from_spec
from nasengine.kernels.weights import load_weights
from nasengine.errors import first_line
from nasengine.evaluation.evaluator import onnx_scores, quantization_images, scores
from nasengine.plugins import recorded_plugin_of, reload_recorded
from nasengine.tasks import task_from_spec

FORMAT = "nasengine-subnet"
REQUIRED = ("module", "input_shape", "input_transform", "task", "arch")

if TYPE_CHECKING:
    from nasengine.measurement.devices.base import Workload


def _read_json(path: Path) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ValueError(f"{path} is missing; export the subnet again") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ValueError(f"{path} is not readable JSON ({first_line(exc)}); export the subnet again") from None


def read_subnet_config(path: Path) -> dict[str, Any]:
    config_path = Path(path) / "config.json"
    if not config_path.is_file() or not (Path(path) / "model.safetensors").is_file():
        raise FileNotFoundError(f"{path}: no such directory" if not Path(path).is_dir() else
                                f"{path} is not an exported subnet (needs config.json and model.safetensors)")
    config = _read_json(config_path)
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise ValueError(f"{config_path} is not a nasengine subnet config")
    missing = [key for key in REQUIRED if key not in config]
    if missing:
        raise ValueError(f"{config_path} lacks {', '.join(repr(k) for k in missing)}; export the subnet again")
    return config


def load_subnet(path: str | Path) -> nn.Module:
    """The exported subnet as a plain torch module in eval mode (built from torch.nn and kernels.static only)."""
    config = read_subnet_config(Path(path))
    try:
        with torch.random.fork_rng(devices=[]):  # building the modules draws initial weights: not from the caller's
            module = from_spec(config["module"])
    except ValueError as exc:
        needs = [m for m in config.get("requires_modules") or [] if m not in sys.modules]
        if not needs:
            raise ValueError(f"{Path(path) / 'config.json'}: cannot rebuild the module: {first_line(exc)}") from None
        plugins = [p for p in (recorded_plugin_of(m, config.get("plugins", [])) for m in needs) if p]
        if plugins:
            raise ValueError(f"{Path(path) / 'config.json'}: {first_line(exc)}: the type is registered by plugin "
                             f"{', '.join(dict.fromkeys(plugins))}; import it first "
                             f"(nasengine.plugins.load_plugin(PATH)) or pass it with --plugin") from None
        raise ValueError(f"{exc}; this subnet uses module types defined in {', '.join(needs)}: import that first "
                         f"(or pass its plugin with --plugin)") from None
    except (KeyError, TypeError, AttributeError, IndexError, RuntimeError) as exc:
        raise ValueError(f"{Path(path) / 'config.json'}: cannot rebuild the module: "
                         f"{type(exc).__name__}: {first_line(exc)}") from None
    load_weights(module, Path(path) / "model.safetensors", "the module in config.json")
    return module.eval()


GRAPHS = {"fp32": "model.onnx", "int8": "model.int8.onnx"}


def deployed_graph_name(path: str | Path, graph: str | None = None) -> str:
    """The graph file an exported subnet is scored and timed with: `graph` (fp32 | int8), else the one its
    manifest deployed (model.int8.onnx for a quantized policy), else model.onnx; ValueError when it is absent."""
    path = Path(path)
    if graph is not None:
        if graph not in GRAPHS:
            raise ValueError(f"graph must be one of {', '.join(GRAPHS)}, got {graph!r}")
        name = GRAPHS[graph]
    else:
        manifest = _read_json(path / "manifest.json") if (path / "manifest.json").is_file() else {}
        name = manifest.get("graph", GRAPHS["fp32"]) if isinstance(manifest, dict) else GRAPHS["fp32"]
        if name not in GRAPHS.values():
            raise ValueError(f"{path / 'manifest.json'} names an unknown graph {name!r}; export the subnet again")
    if not (path / name).is_file():
        raise ValueError(f"{path} has no {name}"
                         + (" (its policy runs every layer in FP32)" if graph == "int8" else ""))
    return name


def score_subnet(path: str | Path, split: str | None = None, graph: str | None = None) -> dict[str, Any]:
    """Top-1 accuracy of an exported subnet on a split of its task (the manifest's split by default), with the
    split's name, size and the graph scored: {"accuracy", "split", "n", "graph"}, and for a language model its
    "perplexity" and "loss" (mean next-token cross-entropy). The FP32 model is run as the reloaded torch module; the
    INT8 graph by onnxruntime."""
    path = Path(path)
    config = read_subnet_config(path)
    if split is None:
        manifest = _read_json(path / "manifest.json")
        recorded = manifest.get("accuracy_split") if isinstance(manifest, dict) else None
        if not isinstance(recorded, dict) or not isinstance(recorded.get("split"), str):
            raise ValueError(f"{path / 'manifest.json'} records no accuracy split; pass --split")
        split = recorded["split"]
    name = deployed_graph_name(path, graph)
    reload_recorded(config.get("plugins", []))  # a plugin's data kind or named data set rebuilds the split
    task = task_from_spec(config["task"])
    data = task.split(split)
    prepare = (lambda x: apply_input_transform(x, config["input_transform"]))
    if name == GRAPHS["fp32"]:
        value = scores(load_subnet(path), data, prepare)
    else:
        value = onnx_scores(read_onnx(path / name), data, prepare)
    language = {"perplexity": value["perplexity"], "loss": value["loss"]} if task.language_model else {}
    return {"accuracy": value["accuracy"], **language, "split": split, "n": len(data), "graph": name}


def evaluate_subnet(path: str | Path, split: str | None = None, graph: str | None = None) -> float:
    """Top-1 accuracy of an exported subnet on its task split (the manifest's split by default)."""
    return float(score_subnet(path, split, graph)["accuracy"])


def read_onnx(path: Path) -> bytes:
    """The bytes of an ONNX file, checked to be a well-formed ONNX model; ValueError naming the file."""
    import onnx

    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise ValueError(f"{path} is missing; export the subnet again") from None
    try:
        onnx.checker.check_model(onnx.load_model_from_string(data))
    except Exception as exc:  # protobuf's DecodeError, onnx's ValidationError, ...
        raise ValueError(f"{path} is not a valid ONNX model ({first_line(exc, 200)})") from None
    return data


def subnet_workload(path: str | Path, graph: str | None = None) -> "Workload":
    """An exported subnet as a device workload: its deployed graph (or the one `graph` names) for ONNX backends,
    load_subnet for torch ones; INT8 devices calibrate model.onnx on the training images the search used."""
    from nasengine.measurement.devices.base import Workload

    path = Path(path)
    config = read_subnet_config(path)
    name = deployed_graph_name(path, graph)
    policy = None
    if name != GRAPHS["fp32"]:
        manifest = _read_json(path / "manifest.json")
        policy = manifest.get("quant_policy") if isinstance(manifest, dict) else None
        if not isinstance(policy, dict):
            raise ValueError(f"{path / 'manifest.json'} records no quant_policy for {name}; export the subnet again")

    def calibration() -> Any:
        reload_recorded(config.get("plugins", []))
        images = quantization_images(task_from_spec(config["task"]))
        return to_numpy(apply_input_transform(images, config["input_transform"]))

    return Workload(config["arch"], json.dumps(config["arch"], separators=(",", ":")), lambda: load_subnet(path),
                    specs_from_config(config), dynamic_onnx=read_onnx(path / name), calibration=calibration,
                    policy=policy)
