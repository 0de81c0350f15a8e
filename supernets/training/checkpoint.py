"""Training checkpoints without pickle: tensors in safetensors, everything else in JSON."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from search_spaces.storage import atomic_file, atomic_write


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, text)


def save_tensors(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    """safetensors file written to a temporary name then renamed, so a crash never leaves half a file."""
    with atomic_file(path) as tmp:
        save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(tmp))


def optimizer_state(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split an optimizer's state dict into tensors (per parameter index) and JSON (groups, scalars)."""
    state = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for index, values in state["state"].items():
        for key, value in values.items():
            if torch.is_tensor(value):
                tensors[f"{index}.{key}"] = value
            else:
                scalars.setdefault(str(index), {})[key] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def load_optimizer_state(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor],
                         meta: dict[str, Any]) -> None:
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        index, key = name.split(".", 1)
        state.setdefault(int(index), {})[key] = value
    for index, values in meta.get("scalars", {}).items():
        state.setdefault(int(index), {}).update(values)
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def save_checkpoint(root: Path, epoch: int, model: nn.Module, optimizer: torch.optim.Optimizer,
                    meta: dict[str, Any], keep: int = 1) -> Path:
    """Write `root/epoch-NNNN/` (state.json last, marking it complete), then drop older checkpoints."""
    directory = root / f"epoch-{epoch:04d}"
    directory.mkdir(parents=True, exist_ok=True)
    save_tensors(directory / "model.safetensors", model.state_dict())
    opt_tensors, opt_meta = optimizer_state(optimizer)
    save_tensors(directory / "optimizer.safetensors", opt_tensors)
    atomic_write_text(directory / "state.json", json.dumps({**meta, "epoch": epoch, "optimizer": opt_meta}))
    for old in sorted(complete_checkpoints(root))[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return directory


def complete_checkpoints(root: Path) -> list[Path]:
    if not root.is_dir():
        return []
    return sorted(p for p in root.glob("epoch-*") if (p / "state.json").exists())


def load_checkpoint(root: Path, model: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any] | None:
    """Restore model and optimizer from the newest complete checkpoint under `root`; None when there is none."""
    found = complete_checkpoints(root)
    if not found:
        return None
    directory = found[-1]
    meta = json.loads((directory / "state.json").read_text())
    model.load_state_dict(load_file(str(directory / "model.safetensors")))
    load_optimizer_state(optimizer, load_file(str(directory / "optimizer.safetensors")), meta.pop("optimizer"))
    return meta
