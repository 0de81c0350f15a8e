"""Supernets on disk: `config.json` (rebuild recipe + metadata) and `model.safetensors` (weights).

Loading never unpickles (JSON and safetensors only), and every way a directory can be wrong (garbage or
missing config, kwargs that cannot build the family, a truncated, empty or foreign weights file) is a
one-line ValueError naming the file.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Mapping

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from search_spaces.registry import RegistryError
from supernets.base import Supernet
from supernets.registry import from_config
from supernets.training.checkpoint import atomic_write_text, save_tensors

FORMAT = "nasengine-supernet"
CONFIG, WEIGHTS = "config.json", "model.safetensors"


def save_supernet(net: Supernet, directory: Path, metadata: Mapping[str, Any] | None = None) -> None:
    """Weights first, config last: a directory with config.json is complete."""
    directory.mkdir(parents=True, exist_ok=True)
    save_tensors(directory / WEIGHTS, net.state_dict())
    config = {"format": FORMAT, "supernet": net.name, "kwargs": net.config, "space": net.space.to_dict(),
              **dict(metadata or {})}
    atomic_write_text(directory / CONFIG, json.dumps(config, indent=2))


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def read_config(directory: Path) -> dict[str, Any]:
    path = Path(directory) / CONFIG
    if not path.is_file() or not (Path(directory) / WEIGHTS).is_file():
        raise FileNotFoundError(f"{directory} is not a trained supernet directory (needs {CONFIG} and {WEIGHTS})")
    try:
        config = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ValueError(f"{path} is not readable JSON ({_first_line(exc)}); retrain, or restore the file") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise ValueError(f"{path} is not a nasengine supernet config")
    if not isinstance(config.get("supernet"), str) or not isinstance(config.get("kwargs", {}), dict):
        raise ValueError(f"{path} needs a 'supernet' name and a 'kwargs' object")
    return config


def build_from_config(config: Mapping[str, Any], path: Path | str = CONFIG) -> Supernet:
    """The (untrained) supernet a config describes; ValueError naming `path` when its kwargs cannot build it."""
    try:
        return from_config(config)
    except RegistryError:
        raise
    except (TypeError, ValueError, RuntimeError, KeyError, IndexError) as exc:
        raise ValueError(f"{path}: cannot build supernet {config.get('supernet')!r} from its kwargs: "
                         f"{_first_line(exc)}") from None


def read_tensors(path: Path) -> dict[str, torch.Tensor]:
    """All tensors of a safetensors file (never pickle); ValueError naming the file when it is not one."""
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        size = path.stat().st_size if path.is_file() else 0
        what = "empty" if size == 0 else f"not a readable safetensors file ({_first_line(exc)})"
        raise ValueError(f"{path} is {what}") from None


def load_weights(module: nn.Module, path: Path, what: str) -> None:
    """Load a safetensors file into `module` strictly; a file made for another model (missing, unexpected or
    differently shaped tensors) is a one-line ValueError saying which and how many."""
    tensors = read_tensors(path)
    expected = module.state_dict()
    optional = {k for k in expected if k.endswith("num_batches_tracked")}  # torch fills these in itself
    missing = [k for k in expected if k not in tensors and k not in optional]
    unexpected = sorted((k for k in tensors if k not in expected), key=lambda k: k.endswith("num_batches_tracked"))
    shapes = [f"{k} {list(tensors[k].shape)} vs {list(v.shape)}" for k, v in expected.items()
              if k in tensors and tensors[k].shape != v.shape]
    problems = [f"{len(items)} {label} (e.g. {items[0]})" for label, items in
                (("missing tensor(s)", missing), ("unexpected tensor(s)", unexpected),
                 ("tensor(s) of another shape", shapes)) if items]
    if problems:
        raise ValueError(f"{path} does not fit {what}: {'; '.join(problems)}; was it written for another model?")
    try:
        module.load_state_dict(tensors, strict=True)
    except RuntimeError as exc:
        raise ValueError(f"{path} does not fit {what}: {_first_line(exc)}") from None


def load_supernet(directory: Path) -> tuple[Supernet, dict[str, Any]]:
    """Rebuild the supernet from config.json and load its weights; returns (net, config)."""
    config = read_config(directory)
    net = build_from_config(config, Path(directory) / CONFIG)
    load_weights(net, Path(directory) / WEIGHTS, f"supernet {config['supernet']!r} as built from {CONFIG}")
    net.eval()
    return net, config


def weights_digest(directory: Path) -> str:
    """SHA-1 of the weights file: runs record it, so a retrained supernet never reuses stale evaluations."""
    h = hashlib.sha1()
    with open(Path(directory) / WEIGHTS, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
