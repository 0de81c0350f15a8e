"""Weights from safetensors files (never pickle) into modules, with one-line errors saying what does not fit.

Shared by supernet directories and exported subnets, which must load without any supernet code.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from nasengine.search_spaces.messages import first_line


def read_tensors(path: Path) -> dict[str, torch.Tensor]:
    """All tensors of a safetensors file (never pickle); ValueError naming the file when it is not one."""
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        size = path.stat().st_size if path.is_file() else 0
        what = "empty" if size == 0 else f"not a readable safetensors file ({first_line(exc)})"
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
        raise ValueError(f"{path} does not fit {what}: {first_line(exc)}") from None


