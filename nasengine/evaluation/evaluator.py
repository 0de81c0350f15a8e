"""The one subnet-evaluation path: BN recalibration on training images, then top-1 accuracy on a split."""

from __future__ import annotations

import math
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Iterator, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from nasengine.kernels.calibration import preserved_state, recalibrate_bn
from nasengine.kernels.inputs import Inputs, as_args, pack, rows, take, to_numpy
from nasengine.tasks.base import Split, Task

if TYPE_CHECKING:  # exported subnets are scored without importing any supernet code
    from nasengine.supernets.base import Supernet


LOGITS_PER_BATCH = 1 << 25  # logits held at once while scoring (128 MB of float32): bounds a language model's batch


def batch_rows(split: Split, batch_size: int) -> int:
    """`batch_size`, or fewer rows where a row's logits are large (a token block of a language model: positions
    x vocabulary), so that scoring never holds more than LOGITS_PER_BATCH logits."""
    per_row = max(1, int(split.labels[:1].numel()) * int(split.identity.get("vocab", 0) or 0))
    return max(1, min(batch_size, LOGITS_PER_BATCH // per_row)) if per_row > 1 else batch_size


class Tally:
    """Running top-1 hits, targets and summed cross-entropy of batches: accuracy over every target (each image,
    or each next token of a text block) and the mean loss (its exp is a language model's perplexity)."""

    def __init__(self) -> None:
        self.correct, self.count, self.loss = 0, 0, 0.0

    def add(self, logits: torch.Tensor, targets: torch.Tensor) -> None:
        flat, y = logits.reshape(-1, logits.shape[-1]).float(), targets.reshape(-1)
        self.correct += int((flat.argmax(dim=-1) == y).sum())
        self.count += int(y.numel())
        self.loss += float(F.cross_entropy(flat, y, reduction="sum"))

    def scores(self) -> dict[str, float]:
        mean = self.loss / max(self.count, 1)
        return {"accuracy": self.correct / max(self.count, 1), "loss": mean, "perplexity": math.exp(min(mean, 700.0))}


@torch.no_grad()
def scores(model: nn.Module, split: Split, prepare: Any = None, batch_size: int = 256) -> dict[str, float]:
    """Top-1 accuracy over every target, mean cross-entropy and its exp (perplexity) of `model` on `split`;
    `prepare(x)` maps task inputs to model inputs (e.g. resizing)."""
    model.eval()
    tally = Tally()
    for x, y in split.batches(batch_rows(split, batch_size)):
        tally.add(model(*as_args(prepare(x) if prepare is not None else x)), y)
    return tally.scores()


def accuracy(model: nn.Module, split: Split, prepare: Any = None, batch_size: int = 256) -> float:
    """Top-1 accuracy of `model` on `split` (see `scores`)."""
    return scores(model, split, prepare, batch_size)["accuracy"]


def onnx_accuracy(onnx_bytes: bytes, split: Split, prepare: Any = None, batch_size: int = 256) -> float:
    """Top-1 accuracy of an ONNX graph (FP32 or quantized) run by onnxruntime on `split` (see `onnx_scores`)."""
    return onnx_scores(onnx_bytes, split, prepare, batch_size)["accuracy"]


def onnx_scores(onnx_bytes: bytes, split: Split, prepare: Any = None, batch_size: int = 256) -> dict[str, float]:
    """`scores` of an ONNX graph (FP32 or quantized) run by onnxruntime on `split`: how a deployed graph scores,
    with the same batches and input preparation as the torch module."""
    tally = Tally()
    for outputs, y in _onnx_batches(onnx_bytes, split, prepare, batch_size):
        tally.add(torch.from_numpy(outputs), y)
    return tally.scores()


def onnx_outputs(onnx_bytes: bytes, split: Split, prepare: Any = None, batch_size: int = 256) -> np.ndarray:
    """The first output of an ONNX graph on every row of `split` (logits), stacked: for comparing two graphs of
    one subnet (FP32 against a quantized one) output by output."""
    return np.concatenate([outputs for outputs, _ in _onnx_batches(onnx_bytes, split, prepare, batch_size)])


def _onnx_batches(onnx_bytes: bytes, split: Split, prepare: Any, batch_size: int) -> Iterator[tuple[np.ndarray, Any]]:
    """(first output, targets) per batch of `split`, the graph run by onnxruntime on this process's threads."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = max(1, torch.get_num_threads())
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    session = ort.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])
    names = [arg.name for arg in session.get_inputs()]
    for x, y in split.batches(batch_rows(split, batch_size), collate=False):  # graphs have the stored length
        feed = to_numpy(prepare(x) if prepare is not None else x)
        if len(names) == 1 and len(feed) == 1:
            feed = {names[0]: next(iter(feed.values()))}
        yield session.run(None, feed)[0], y


def calibration_indices(n_train: int, samples: int = 512) -> torch.Tensor:
    """The fixed training images BN statistics and INT8 ranges are calibrated on (the first 128 for INT8): the
    same for a search, its export and a reloaded export."""
    gen = torch.Generator().manual_seed(1234)
    return torch.randperm(n_train, generator=gen)[: min(samples, n_train)]


QUANTIZATION_SAMPLES = 128


def quantization_images(task: Task, samples: int = QUANTIZATION_SAMPLES) -> Inputs:
    """The fixed training samples INT8 ranges are calibrated on, as task inputs (resize them for a subnet)."""
    train = task.split("train")
    # at their stored shape: INT8 graphs are written for the full sequence length
    return take(train.inputs, calibration_indices(len(train))[:samples])


class Evaluator:
    """Accuracy of any arch of any supernet: activate, recalibrate BN on a fixed training subset, score a split.

    Deterministic for a given arch (the calibration subset and order are fixed), so repeated
    evaluations and resumed searches agree. `evaluate` and `extract` leave the supernet exactly as they found
    it (every parameter and buffer, the active arch, the train/eval mode), so evaluations do not depend on
    one another and a supernet stays usable for other archs, or for training, afterwards.
    """

    def __init__(self, supernet: "Supernet", task: Task, split: str = "val", calibration_samples: int = 512,
                 batch_size: int = 256, quantization_samples: int = QUANTIZATION_SAMPLES):
        self.supernet, self.task = supernet, task
        self.split = task.split(split)
        train = task.split("train")
        self.calibration = train.subset(calibration_indices(len(train), calibration_samples), "calibration")
        self.batch_size = batch_size
        self.quantization_samples = min(quantization_samples, len(self.calibration))

    def calibrate(self, arch: Mapping[str, Any]) -> dict[str, Any]:
        """Activate `arch` and re-estimate its BN statistics; returns the canonical arch.

        This changes the supernet's shared state (it leaves `arch` active and the BN statistics of every other
        subnet reset); use `calibrated(arch)`, `evaluate` or `extract` to have the supernet restored.
        """
        canonical = self.supernet.set_active(arch)
        batches = (as_args(self.supernet.adapt_input(x, canonical))
                   for x, _ in self.calibration.batches(self.batch_size))
        recalibrate_bn(self.supernet, batches)
        return canonical

    @contextmanager
    def calibrated(self, arch: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
        """`with evaluator.calibrated(arch) as canonical:` the supernet runs `arch` in eval mode with its
        recalibrated BN statistics; on leaving, the supernet is restored exactly (see `preserved_state`)."""
        with preserved_state(self.supernet):
            yield self.calibrate(arch)

    def evaluate(self, arch: Mapping[str, Any], split: Split | None = None) -> float:
        """Top-1 accuracy of `arch` with recalibrated BN on the evaluator's split (or the one given)."""
        return self.scores(arch, split)["accuracy"]

    def scores(self, arch: Mapping[str, Any], split: Split | None = None) -> dict[str, float]:
        """Accuracy (over every target), mean cross-entropy and perplexity of `arch` with recalibrated BN on the
        evaluator's split (or the one given): the one evaluation path, for classifiers and language models."""
        with self.calibrated(arch) as canonical:
            return scores(self.supernet, split or self.split, lambda x: self.supernet.adapt_input(x, canonical),
                          self.batch_size)

    def extract(self, arch: Mapping[str, Any]) -> nn.Module:
        """A static subnet of `arch` with its recalibrated BN statistics baked in (the supernet is restored)."""
        with self.calibrated(arch):
            return self.supernet.extract(arch)

    def quantization_inputs(self, arch: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """The fixed training samples INT8 ranges are calibrated on (the first of the BN calibration subset),
        prepared for `arch`, as an onnxruntime feed."""
        canonical = self.supernet.space.validate(arch)
        batch = take(self.calibration.inputs, slice(0, self.quantization_samples))
        return to_numpy(self.supernet.adapt_input(batch, canonical))

    def deployed_graph(self, arch: Mapping[str, Any], int8_layers: Sequence[str], module: nn.Module | None = None,
                       weight_only: Mapping[str, int] | None = None) -> bytes:
        """The ONNX graph (symbolic batch) of `arch` as deployed with `int8_layers` in INT8 and `weight_only` layers
        ({path: bits}) with weight-only quantized matrix weights: the BN-recalibrated subnet (or `module`, its
        extraction) written by the ONNX writer, quantized by onnxruntime (INT8 ranges from training images)."""
        from nasengine.graphs.onnx_writer import to_onnx
        from nasengine.graphs.quantization import quantized_graph
        from nasengine.graphs.weight_only import weight_only_graph

        canonical = self.supernet.space.validate(arch)
        module = module if module is not None else self.extract(canonical)
        graph = to_onnx(module, self.supernet.example_inputs(canonical, 1), dynamic_batch=True)
        every = [layer.path for layer in self.supernet.quantizable_layers()]
        graph = quantized_graph(graph, self.quantization_inputs(canonical), list(int8_layers), every)
        return weight_only_graph(graph, dict(weight_only or {}))

    def quantized(self, arch: Mapping[str, Any], int8_layers: Sequence[str], split: Split | None = None,
                  weight_only: Mapping[str, int] | None = None) -> tuple[float, bytes]:
        """(accuracy, graph) of `arch` deployed with `int8_layers` in INT8 and `weight_only` layers quantized
        weight-only, the graph run by onnxruntime on the evaluator's split (or the one given): the real accuracy."""
        canonical = self.supernet.space.validate(arch)
        graph = self.deployed_graph(canonical, int8_layers, weight_only=weight_only)
        score = onnx_accuracy(graph, split or self.split, lambda x: self.supernet.adapt_input(x, canonical),
                              self.batch_size)
        return score, graph

    def quantization_sensitivity(self, arch: Mapping[str, Any], layers: Sequence[str], samples: int = 512,
                                 on_layer: Any = None) -> dict[str, float]:
        """Per layer of `layers`, the output error of `arch` deployed with only that layer in INT8: squared error of
        the graph's outputs against the FP32 graph's, relative to the FP32 outputs' energy, on the first `samples`
        rows of the split. HAQ's and HAWQ's per-layer sensitivity, measured on the graph that deploys."""
        canonical = self.supernet.space.validate(arch)
        module = self.extract(canonical)
        subset = self.split.subset(torch.arange(min(samples, len(self.split))), "sensitivity")

        def outputs(int8_layers: list[str]) -> np.ndarray:
            graph = self.deployed_graph(canonical, int8_layers, module)
            return onnx_outputs(graph, subset, lambda x: self.supernet.adapt_input(x, canonical), self.batch_size)

        reference = outputs([]).astype(np.float64)
        energy = float(np.sum(reference ** 2)) or 1.0
        sensitivity = {}
        for path in layers:
            sensitivity[path] = float(np.sum((outputs([path]) - reference) ** 2) / energy)
            if on_layer is not None:
                on_layer()
        return sensitivity

    def fake_quantized(self, arch: Mapping[str, Any], int8_layers: Sequence[str], split: Split | None = None) -> float:
        """Estimated accuracy of `arch` with `int8_layers` in INT8, by fake quantization in torch (no onnxruntime):
        weights per channel, activation ranges observed on the same training images the real quantizer uses."""
        from nasengine.kernels.fake_quant import fake_quantize

        canonical = self.supernet.space.validate(arch)
        inputs = {k: torch.from_numpy(v) for k, v in self.quantization_inputs(canonical).items()}
        model = fake_quantize(self.extract(canonical), list(int8_layers),
                              [take(pack(inputs), slice(i, i + self.batch_size))
                               for i in range(0, rows(pack(inputs)), self.batch_size)])
        return accuracy(model, split or self.split, lambda x: self.supernet.adapt_input(x, canonical), self.batch_size)
