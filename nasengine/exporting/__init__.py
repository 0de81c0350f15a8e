"""Export: a chosen subnet as a standalone directory (config.json, model.safetensors, ONNX, INT8 ONNX, manifest), and
an export loaded back, re-scored and re-measured without any supernet code (`subnet`)."""

from __future__ import annotations

from typing import Any

from nasengine.exporting.subnet import evaluate_subnet, load_subnet, score_subnet

__all__ = ["ExportRequest", "evaluate_subnet", "export", "load_subnet", "score_subnet"]


def __getattr__(name: str) -> Any:
    """`export` and `ExportRequest` import the supernet code; loading an export never does."""
    if name in ("export", "ExportRequest"):
        import importlib

        return getattr(importlib.import_module("nasengine.exporting.exporter"), name)
    raise AttributeError(f"module 'nasengine.exporting' has no attribute {name!r}")
