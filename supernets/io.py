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


from nasengine.kernels.weights import load_weights
from nasengine.search_spaces.messages import first_line
from nasengine.search_spaces.registry import RegistryError
from nasengine.supernets.base import Supernet
from nasengine.supernets.registry import from_config
from nasengine.supernets.training.checkpoint import atomic_write_text, save_tensors

FORMAT = "nasengine-supernet"
CONFIG, WEIGHTS = "config.json", "model.safetensors"


def save_supernet(net: Supernet, directory: Path, metadata: Mapping[str, Any] | None = None) -> None:
    """Weights first, config last: a directory with config.json is complete."""
    directory.mkdir(parents=True, exist_ok=True)
    save_tensors(directory / WEIGHTS, net.state_dict())
    config = {"format": FORMAT, "supernet": net.name, "kwargs": net.config, "space": net.space.to_dict(),
              **dict(metadata or {})}
    atomic_write_text(directory / CONFIG, json.dumps(config, indent=2))


def read_config(directory: Path) -> dict[str, Any]:
    path = Path(directory) / CONFIG
    if not path.is_file() or not (Path(directory) / WEIGHTS).is_file():
        raise FileNotFoundError(f"{directory}: no such directory" if not Path(directory).is_dir() else
                                f"{directory} is not a trained supernet directory (needs {CONFIG} and {WEIGHTS})")
    try:
        config = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ValueError(f"{path} is not readable JSON ({first_line(exc)}); retrain, or restore the file") from None
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
                         f"{first_line(exc)}") from None


def load_supernet(directory: Path) -> tuple[Supernet, dict[str, Any]]:
    """Rebuild the supernet from config.json and load its weights; returns (net, config)."""
    config = read_config(directory)
    with torch.random.fork_rng(devices=[]):  # the initial weights drawn while building are replaced by the saved ones
        net = build_from_config(config, Path(directory) / CONFIG)
    load_weights(net, Path(directory) / WEIGHTS, f"supernet {config['supernet']!r} as built from {CONFIG}")
    net.eval()
    return net, config


def weights_digest(directory: Path) -> str:
    """SHA-1 of the weights file (a directory's model.safetensors, or the file itself: a GGUF checkpoint): runs
    record it, so a retrained supernet never reuses stale evaluations."""
    h = hashlib.sha1()
    with open(Path(directory) if Path(directory).is_file() else Path(directory) / WEIGHTS, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
