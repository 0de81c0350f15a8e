"""Training checkpoints without pickle: tensors in safetensors, everything else in JSON.

A checkpoint is a directory under the checkpoint root, written whole through `atomic_directory` (each file
inside through `atomic_file`, so it is fsynced): it appears complete or not at all, whenever the process is
killed. `epoch-NNNN/` is the end of epoch NNNN; `epoch-NNNN-step-SSSSSSS/` is SSSSSSS steps into epoch NNNN
(and holds the generator states needed to continue that epoch exactly). Older checkpoints are removed only
after a newer one is complete, so the newest complete checkpoint always survives.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import uuid
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from nasengine.search_spaces.storage import atomic_directory, atomic_file, atomic_write

_NAME = re.compile(r"^epoch-(\d+)(?:-step-(\d+))?$")
MODEL, OPTIMIZER, RNG, STATE = "model.safetensors", "optimizer.safetensors", "rng.safetensors", "state.json"


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


def checkpoint_name(epoch: int, step: int | None = None) -> str:
    """`epoch-NNNN` for the end of `epoch`, `epoch-NNNN-step-SSSSSSS` for `step` steps into it."""
    return f"epoch-{epoch:04d}" if step is None else f"epoch-{epoch:04d}-step-{step:07d}"


def _position(path: Path) -> tuple[int, float]:
    match = _NAME.match(path.name)
    assert match is not None
    return int(match.group(1)), math.inf if match.group(2) is None else int(match.group(2))


def save_checkpoint(root: Path, epoch: int, model_state: dict[str, torch.Tensor], optimizer: torch.optim.Optimizer,
                    meta: dict[str, Any], keep: int = 1, step: int | None = None,
                    rng: dict[str, torch.Tensor] | None = None) -> Path:
    """Write the checkpoint of `epoch` (its end, or `step` steps into it), then drop all but the `keep` newest.

    `model_state`: the model's weights and buffers (BN statistics averaged over ranks under torchrun); `rng` holds
    generator states (uint8 tensors). state.json is written last and records `epoch` and `step`.
    """
    root = Path(root)
    directory = root / checkpoint_name(epoch, step)
    with atomic_directory(directory, overwrite=True) as tmp:
        save_tensors(tmp / MODEL, model_state)
        opt_tensors, opt_meta = optimizer_state(optimizer)
        save_tensors(tmp / OPTIMIZER, opt_tensors)
        if rng:
            save_tensors(tmp / RNG, rng)
        atomic_write_text(tmp / STATE, json.dumps({**meta, "epoch": epoch, "step": step, "optimizer": opt_meta}))
    kept = set(complete_checkpoints(root)[-keep:])  # incomplete ones (older writers killed mid-way) go too
    _remove([p for p in _checkpoint_dirs(root) if p not in kept])
    _remove([p for p in root.iterdir() if p.name.startswith(".") and p.is_dir()])  # leftovers of killed writes
    return directory


def _remove(paths: list[Path]) -> None:
    """Rename each directory away first (one atomic step), so a half-deleted one never looks like a checkpoint."""
    for path in paths:
        trash = path.with_name(f".trash-{uuid.uuid4().hex}")
        try:
            path.rename(trash)
        except FileNotFoundError:
            continue
        shutil.rmtree(trash, ignore_errors=True)


def _checkpoint_dirs(root: Path) -> list[Path]:
    if not root.is_dir():
        return []
    return [p for p in root.iterdir() if p.is_dir() and _NAME.match(p.name)]


def complete_checkpoints(root: Path) -> list[Path]:
    """Checkpoint directories with their state.json, oldest first."""
    return sorted((p for p in _checkpoint_dirs(Path(root)) if (p / STATE).exists()), key=_position)


def newest_checkpoint(root: Path) -> Path | None:
    found = complete_checkpoints(root)
    return found[-1] if found else None


def read_checkpoint(directory: Path, model: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """Restore model and optimizer from one checkpoint directory; returns its JSON state, with the generator
    states under "rng" (tensors; empty for an end-of-epoch checkpoint) and "step" None at an epoch's end."""
    meta = json.loads((directory / STATE).read_text())
    model.load_state_dict(load_file(str(directory / MODEL)))
    load_optimizer_state(optimizer, load_file(str(directory / OPTIMIZER)), meta.pop("optimizer"))
    meta.setdefault("step", None)
    meta["rng"] = load_file(str(directory / RNG)) if (directory / RNG).exists() else {}
    return meta
