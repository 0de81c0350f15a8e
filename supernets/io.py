"""Supernets on disk: `config.json` (rebuild recipe + metadata) and `model.safetensors` (weights)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Mapping

from safetensors.torch import load_file

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


def read_config(directory: Path) -> dict[str, Any]:
    path = Path(directory) / CONFIG
    if not path.is_file() or not (Path(directory) / WEIGHTS).is_file():
        raise FileNotFoundError(f"{directory} is not a trained supernet directory (needs {CONFIG} and {WEIGHTS})")
    config = json.loads(path.read_text())
    if config.get("format") != FORMAT:
        raise ValueError(f"{path} is not a nasengine supernet config")
    return config


def load_supernet(directory: Path) -> tuple[Supernet, dict[str, Any]]:
    """Rebuild the supernet from config.json and load its weights; returns (net, config)."""
    config = read_config(directory)
    net = from_config(config)
    net.load_state_dict(load_file(str(Path(directory) / WEIGHTS)))
    net.eval()
    return net, config


def weights_digest(directory: Path) -> str:
    """SHA-1 of the weights file: runs record it, so a retrained supernet never reuses stale evaluations."""
    h = hashlib.sha1()
    with open(Path(directory) / WEIGHTS, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
