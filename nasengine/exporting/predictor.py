"""Predictions on raw samples from an export: raw images or strings in, labels (or probabilities) out, with the
torch module or onnxruntime on model.onnx, model.int8.onnx or model.raw.onnx."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from nasengine.exporting.preprocess import apply_contract, image_batch, load_tokenizer, read_preprocessing
from nasengine.exporting.raw_graph import RAW_GRAPH, RAW_INPUT, onnx_session
from nasengine.exporting.subnet import deployed_graph_name, load_subnet, read_onnx, read_subnet_config
from nasengine.kernels.inputs import specs_from_config

BACKENDS = ("torch", "onnxruntime")
__all__ = ["BACKENDS", "Predictor", "load_predictor"]


class Predictor:
    """An export that takes raw samples: `predict(raw)` gives labels (class names when the data named them, else
    class indices), `predict_proba(raw)` softmax probabilities, `logits(raw)` the scores. One sample in (an HxW or
    HxWxC image, a string) gives one label out; a batch gives an array. `backend="torch"` runs the reloaded FP32
    module; `backend="onnxruntime"` runs the deployed graph (or `graph`: fp32, int8, or raw for model.raw.onnx)."""

    def __init__(self, path: str | Path, backend: str = "torch", graph: str | None = None, batch_size: int = 256):
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
        self.path = Path(path)
        config = read_subnet_config(self.path)
        self.preprocessing = read_preprocessing(self.path)
        self.classes: list[str] | None = self.preprocessing.get("classes")
        self.backend, self.batch_size = backend, int(batch_size)
        self.input_names = [s.name for s in specs_from_config(config)]
        self._tokenizer = load_tokenizer(self.preprocessing, self.path) if self.preprocessing["kind"] == "text" \
            else None
        if backend == "torch":
            if graph not in (None, "fp32"):
                raise ValueError(f"the torch backend runs the FP32 module; graph={graph!r} needs "
                                 f"backend='onnxruntime'")
            self.graph, self._module = None, load_subnet(self.path)
        else:
            self.graph = self._raw_graph_name() if graph == "raw" else deployed_graph_name(self.path, graph)
            self._session = onnx_session(read_onnx(self.path / self.graph))

    def _raw_graph_name(self) -> str:
        """model.raw.onnx, or ValueError when this export has none."""
        if not (self.path / RAW_GRAPH).is_file():
            raise ValueError(f"{self.path} has no {RAW_GRAPH} (text exports and exports older than it have none); "
                             f"use graph=None")
        return RAW_GRAPH

    def preprocess(self, raw: Any) -> Any:
        """The model inputs of `raw` (torch tensors for the torch backend, numpy arrays for onnxruntime)."""
        framework = "torch" if self.backend == "torch" else "numpy"
        return apply_contract(self.preprocessing, raw, framework, self.path, self._tokenizer)[0]

    def logits(self, raw: Any) -> np.ndarray:
        """Scores (N, classes) of a batch, or (classes,) of one sample, as float32."""
        scores, single = self._scores(raw)
        return scores[0] if single else scores

    def predict_proba(self, raw: Any) -> np.ndarray:
        """Softmax probabilities (N, classes), or (classes,) for one sample."""
        scores, single = self._scores(raw)
        z = scores.astype(np.float64) - scores.max(axis=1, keepdims=True)
        p = np.exp(z)
        p = (p / p.sum(axis=1, keepdims=True)).astype(np.float32)
        return p[0] if single else p

    def predict(self, raw: Any) -> Any:
        """Labels: class names when known (else indices), as an array for a batch, one value for one sample."""
        scores, single = self._scores(raw)
        index = scores.argmax(axis=1)
        labels = np.asarray([self.classes[i] for i in index]) if self.classes else index.astype(np.int64)
        return labels[0].item() if single else labels

    def _scores(self, raw: Any) -> tuple[np.ndarray, bool]:
        """(logits (N, classes) float32, whether `raw` was one sample), run in batches of `batch_size`."""
        if self.graph == RAW_GRAPH:
            x, single = image_batch(self.preprocessing, raw)
            feed = {RAW_INPUT: _raw_feed(self.preprocessing, x)}
        else:
            inputs, single = apply_contract(self.preprocessing, raw, "torch" if self.backend == "torch" else "numpy",
                                    self.path, self._tokenizer)
            feed = {self.input_names[0]: inputs} if not isinstance(inputs, Mapping) else \
                {name: inputs[name] for name in self.input_names}
        n = int(next(iter(feed.values())).shape[0])
        chunks = [self._run({k: v[i: i + self.batch_size] for k, v in feed.items()})
                  for i in range(0, n, self.batch_size)]
        return np.concatenate(chunks).astype(np.float32), single

    def _run(self, feed: dict[str, Any]) -> np.ndarray:
        """Logits of one batch of model inputs (or raw images for model.raw.onnx) on the chosen backend."""
        if self.backend == "torch":
            with torch.no_grad():
                out = self._module(*feed.values())
            return out.detach().cpu().numpy()
        return np.asarray(self._session.run(None, {k: np.ascontiguousarray(v) for k, v in feed.items()})[0])


def load_predictor(path: str | Path, backend: str = "torch", graph: str | None = None) -> Predictor:
    """An export as a `Predictor` of raw samples (images or strings in, labels out); see `Predictor`."""
    return Predictor(path, backend, graph)



def _raw_feed(contract: Mapping[str, Any], x: Any) -> np.ndarray:
    """An (N, H, W, C) batch as model.raw.onnx takes it: uint8 (whole values 0..255 only) or float32."""
    array = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    if contract["raw"]["dtype"] != "uint8":
        return np.ascontiguousarray(array, dtype=np.float32)
    if array.dtype != np.uint8 and not (np.all(np.mod(array, 1) == 0) and array.min() >= 0 and array.max() <= 255):
        raise ValueError(f"{RAW_GRAPH} takes uint8 images (whole values 0..255), got {array.dtype} values outside "
                         f"that; use graph=None")
    return np.ascontiguousarray(array, dtype=np.uint8)
