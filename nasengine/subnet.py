"""Exported subnets: reload as plain torch modules and re-score them, without importing any supernet code."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from safetensors.torch import load_file
from torch import nn

from kernels.inputs import apply_input_transform
from kernels.static import from_spec
from nasengine.evaluation import accuracy
from nasengine.tasks import task_from_spec

FORMAT = "nasengine-subnet"

if TYPE_CHECKING:
    from nasengine.devices.base import Workload


def read_subnet_config(path: Path) -> dict[str, Any]:
    config_path = Path(path) / "config.json"
    if not config_path.is_file() or not (Path(path) / "model.safetensors").is_file():
        raise FileNotFoundError(f"{path} is not an exported subnet (needs config.json and model.safetensors)")
    config = json.loads(config_path.read_text())
    if config.get("format") != FORMAT:
        raise ValueError(f"{config_path} is not a nasengine subnet config")
    return config


def load_subnet(path: str | Path) -> nn.Module:
    """The exported subnet as a plain torch module in eval mode (built from torch.nn and kernels.static only)."""
    config = read_subnet_config(Path(path))
    try:
        module = from_spec(config["module"])
    except ValueError as exc:
        needs = config.get("requires_modules") or []
        if not needs:
            raise
        raise ValueError(f"{exc}; this subnet uses module types defined in {', '.join(needs)}: import that first "
                         f"(or pass its plugin with --plugin)") from None
    module.load_state_dict(load_file(str(Path(path) / "model.safetensors")), strict=True)
    return module.eval()


def evaluate_subnet(path: str | Path, split: str | None = None) -> float:
    """Top-1 accuracy of an exported subnet on its task split (the manifest's split by default)."""
    path = Path(path)
    config = read_subnet_config(path)
    manifest = json.loads((path / "manifest.json").read_text())
    data = task_from_spec(config["task"]).split(split or manifest["accuracy_split"]["split"])
    return accuracy(load_subnet(path), data, lambda x: apply_input_transform(x, config["input_transform"]))


def subnet_workload(path: str | Path) -> "Workload":
    """An exported subnet as a device workload: its model.onnx for ONNX backends, load_subnet for torch ones."""
    from nasengine.devices.base import Workload

    path = Path(path)
    config = read_subnet_config(path)
    return Workload(config["arch"], json.dumps(config["arch"], separators=(",", ":")), lambda: load_subnet(path),
                    tuple(config["input_shape"]), dynamic_onnx=(path / "model.onnx").read_bytes())
