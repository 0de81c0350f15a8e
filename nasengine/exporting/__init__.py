"""Export: a chosen subnet as a standalone directory (config.json, model.safetensors, ONNX, INT8 ONNX, manifest), and
an export loaded back, re-scored and re-measured without any supernet code (`subnet`), or run on raw images and
strings (`preprocess`: the preprocessing contract every export records; `predictor`: `load_predictor`;
`raw_graph`: the contract as ONNX nodes, model.raw.onnx; `generate`: text from an exported language model)."""

from __future__ import annotations

from typing import Any

from nasengine.exporting.generate import generate_text
from nasengine.exporting.subnet import evaluate_subnet, load_subnet, score_subnet

__all__ = ["ExportRequest", "Predictor", "evaluate_subnet", "export", "generate_text", "load_predictor", "load_subnet",
           "score_subnet"]


def __getattr__(name: str) -> Any:
    """`export` and `ExportRequest` import the supernet code; loading an export never does. `load_predictor` and
    `Predictor` (raw samples in, labels out) come from `nasengine.exporting.predictor`."""
    if name in ("export", "ExportRequest", "load_predictor", "Predictor"):
        import importlib

        module = "nasengine.exporting.exporter" if name in ("export", "ExportRequest") else \
            "nasengine.exporting.predictor"
        return getattr(importlib.import_module(module), name)
    raise AttributeError(f"module 'nasengine.exporting' has no attribute {name!r}")
