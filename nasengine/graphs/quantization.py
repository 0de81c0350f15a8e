"""INT8 graphs for real: onnxruntime static QDQ quantization of exactly the layers a policy marks INT8.

Every INT8 number in the engine (search rows, `*-int8` devices, `model.int8.onnx`) comes from `quantize_layers`:
per-channel symmetric INT8 weights, per-tensor asymmetric UINT8 activations, MinMax ranges calibrated on a fixed
sample of training images, on the BN-folded graph the ONNX writer emits. A layer is a module path; its nodes are
those named under that path. Weightless nodes between layers (a pooling) follow the layer that feeds them.
"""

from __future__ import annotations

import logging
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator, Mapping, Sequence

import numpy as np
import onnx
from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, \
    quantize_static

from nasengine.graphs.onnx_writer import INPUT_NAME, node_in_layer

CALIBRATION_BATCH = 128
SCHEME = {"format": "QDQ", "weights": "int8 symmetric per channel", "activations": "uint8 asymmetric per tensor",
          "calibration_method": "minmax", "calibration_data": "training images"}


class _Feeds(CalibrationDataReader):
    def __init__(self, feeds: Iterable[dict[str, np.ndarray]]):
        self._it: Iterator[dict[str, np.ndarray]] = iter(feeds)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._it, None)


_QUANTIZER_CHATTER = ("Please consider", "Expected bias")


class _DropPreprocessAdvice(logging.Filter):
    """onnxruntime's quantizer logs on the root logger, for every model, advice to pre-process (our graphs are
    folded and shape-complete) and that LayerNorm biases stay FP32 (as intended); both flood search logs."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(_QUANTIZER_CHATTER)


@contextmanager
def _quiet_quantizer() -> Iterator[None]:
    advice = _DropPreprocessAdvice()
    root = logging.getLogger()
    root.addFilter(advice)
    try:
        yield
    finally:
        root.removeFilter(advice)


def calibration_feeds(inputs: np.ndarray | Mapping[str, np.ndarray], batch_size: int = CALIBRATION_BATCH,
                      input_name: str = INPUT_NAME) -> list[dict[str, np.ndarray]]:
    """Model inputs (already resized for the subnet; one float array, or a feed of named arrays) cut into
    calibration batches for a dynamic-batch graph."""
    if not isinstance(inputs, Mapping):
        inputs = {input_name: np.ascontiguousarray(np.asarray(inputs, dtype=np.float32))}
    n = len(next(iter(inputs.values())))
    return [{k: v[i: i + batch_size] for k, v in inputs.items()} for i in range(0, n, batch_size)]


def nodes_of_layers(model: onnx.ModelProto, layers: Sequence[str], all_layers: Sequence[str] | None = None
                    ) -> list[str]:
    """Names of the nodes computing `layers`: nodes under a layer's path, and nodes under no layer of
    `all_layers` (every quantizable layer; a pooling between the head and the classifier, constants) that follow
    one of those nodes. Without `all_layers`, a node reading a `.weight` initializer starts an FP32 layer."""
    wanted = set(layers)
    known = sorted(set(all_layers or ()) | wanted, key=len, reverse=True)  # the longest (innermost) path wins
    out: list[str] = []
    current: str | None = None
    for node in model.graph.node:
        owner = next((path for path in known if node_in_layer(node.name, path)), None)
        if owner is not None:
            current = owner if owner in wanted else None
        elif all_layers is None and node.input and any(i.endswith(".weight") for i in node.input):
            current = None  # a layer the policy keeps in FP32 starts here
        if current is not None and node.op_type != "Identity":
            out.append(node.name)
    return out


def quantize_layers(onnx_bytes: bytes, feeds: Iterable[dict[str, np.ndarray]],
                    layers: Sequence[str] | None = None, all_layers: Sequence[str] | None = None) -> bytes:
    """The QDQ INT8 graph of `onnx_bytes` with the nodes of `layers` (module paths; None: every layer) quantised
    and the rest left FP32, ranges calibrated on `feeds`; `all_layers` (every quantizable layer) tells which
    nodes belong to layers kept in FP32. With an empty `layers` the graph is returned unchanged."""
    model = onnx.load_model_from_string(onnx_bytes)
    nodes = None if layers is None else nodes_of_layers(model, layers, all_layers)
    unmatched = [path for path in (layers or ()) if not any(node_in_layer(n.name, path) for n in model.graph.node)]
    if unmatched:  # never report an FP32 graph as the policy's INT8 one
        raise ValueError(f"no ONNX node computes layer {unmatched[0]!r}; its nodes must be named by module path")
    if nodes is not None and not nodes:
        return onnx_bytes
    with tempfile.TemporaryDirectory() as tmp, _quiet_quantizer():
        src, dst = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        src.write_bytes(onnx_bytes)
        quantize_static(str(src), str(dst), _Feeds(feeds), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, nodes_to_quantize=nodes,
                        calibrate_method=CalibrationMethod.MinMax)
        return dst.read_bytes()


def quantized_graph(graph: bytes, inputs: np.ndarray | Mapping[str, np.ndarray], layers: Sequence[str] | None = None,
                    all_layers: Sequence[str] | None = None) -> bytes:
    """The one way the engine builds an INT8 graph: `graph` (symbolic batch) with `layers` (None: all) quantized,
    calibrated on model `inputs`. INT8 devices, search policies and exports all call this."""
    return quantize_layers(graph, calibration_feeds(inputs), layers, all_layers)


def with_batch(onnx_bytes: bytes, batch_size: int) -> bytes:
    """The graph with its symbolic batch dimension fixed to `batch_size` (a device times one batch size, and a
    static shape lets onnxruntime plan as it does for graphs written at that size)."""
    model = onnx.load_model_from_string(onnx_bytes)
    changed = False
    for value in [*model.graph.input, *model.graph.output]:
        dims = value.type.tensor_type.shape.dim
        if dims and not dims[0].HasField("dim_value"):
            dims[0].dim_value = batch_size
            changed = True
    if not changed:
        return onnx_bytes
    del model.graph.value_info[:]  # shapes inferred for the symbolic batch would contradict the fixed one
    return model.SerializeToString()


def is_quantized(onnx_bytes: bytes) -> bool:
    """Whether a graph holds QDQ (or QLinear) INT8 nodes."""
    model = onnx.load_model_from_string(onnx_bytes)
    return any(n.op_type in ("QuantizeLinear", "DequantizeLinear") or n.op_type.startswith("QLinear")
               for n in model.graph.node)
