"""FP32 ONNX -> INT8 QDQ ONNX with onnxruntime's static quantizer (what INT8 devices run and export)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import onnx
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static


class _Batches(CalibrationDataReader):
    def __init__(self, feeds: Iterable[dict[str, np.ndarray]]):
        self._it: Iterator[dict[str, np.ndarray]] = iter(feeds)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._it, None)


def random_feeds(onnx_bytes: bytes, batch_size: int, n: int = 4, seed: int = 0) -> list[dict[str, np.ndarray]]:
    """Standard-normal inputs shaped like the model's (symbolic dims -> batch_size): enough for latency,
    where the quantisation ranges do not change the work done."""
    model = onnx.load_model_from_string(onnx_bytes)
    rng = np.random.default_rng(seed)
    feeds = []
    for _ in range(n):
        feed = {}
        for value in model.graph.input:
            dims = [d.dim_value if d.HasField("dim_value") else batch_size for d in value.type.tensor_type.shape.dim]
            feed[value.name] = rng.standard_normal(dims).astype(np.float32)
        feeds.append(feed)
    return feeds


def quantize_int8(onnx_bytes: bytes, calibration: Iterable[dict[str, np.ndarray]], per_channel: bool = False) -> bytes:
    """INT8 weights and UINT8 activations in QDQ format, ranges calibrated on `calibration` feeds."""
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        src.write_bytes(onnx_bytes)
        quantize_static(str(src), str(dst), _Batches(calibration), quant_format=QuantFormat.QDQ,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=per_channel)
        return dst.read_bytes()


PRECISIONS = ("fp32", "int8")


def check_precision(value: object, device: str) -> str:
    """The precision setting of a device, or ValueError naming the device."""
    if value not in PRECISIONS:
        raise ValueError(f"device {device!r}: precision must be one of {', '.join(PRECISIONS)}, got {value!r}")
    return str(value)


def at_precision(onnx_bytes: bytes, precision: str, batch_size: int) -> bytes:
    """The graph a device of this precision runs: unchanged for fp32, statically quantised for int8."""
    if precision == "int8":
        return quantize_int8(onnx_bytes, random_feeds(onnx_bytes, batch_size))
    return onnx_bytes
