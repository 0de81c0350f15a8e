"""onnxruntime on this machine's CPU, with a fixed thread count and graph optimisation level."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import onnxruntime as ort

from nasengine.measurement.devices.base import Device, DeviceConfig, Workload
from nasengine.measurement.devices.quantize import check_precision, deployed_graph
from nasengine.measurement.devices.registry import register_backend
from nasengine.measurement.devices.timing import Measurement, time_repeated

_OPT_LEVELS = {
    "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}


@register_backend("onnxruntime")
class OrtCpuDevice(Device):
    """Exports the subnet to ONNX and times `InferenceSession.run` on one pre-built input.

    Settings: `threads` (intra-op, default 1), `opt_level` (disable|basic|extended|all), `batch_size`,
    `precision` (fp32; int8: the graph is statically quantised to QDQ INT8 before timing; w8/w4: its matrix
    weights are quantized weight-only to INT8/INT4, onnxruntime MatMulNBits).
    """

    backend = "onnxruntime"
    runs_quantized_graphs = True

    def __init__(self, config: DeviceConfig, **kw: object):
        super().__init__(config, **kw)  # type: ignore[arg-type]
        self.threads = config.int_setting("threads", 1)
        level = config.settings.get("opt_level", "all")
        if not isinstance(level, str) or level not in _OPT_LEVELS:
            raise ValueError(f"device {config.name!r}: opt_level must be one of {sorted(_OPT_LEVELS)}")
        self.opt_level = _OPT_LEVELS[level]
        self.precision = check_precision(config.settings.get("precision", "fp32"), config.name)

    def session_options(self) -> ort.SessionOptions:
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = self.opt_level
        options.log_severity_level = 3
        options.add_session_config_entry("session.load_model_format", "ONNX")  # ONNX protobuf only, never ORT format
        return options

    def session(self, onnx_bytes: bytes) -> ort.InferenceSession:
        return ort.InferenceSession(onnx_bytes, self.session_options(), providers=["CPUExecutionProvider"])

    def _measure(self, workload: Workload) -> Measurement:
        return self.measure_onnx(deployed_graph(workload, self.precision, self.batch_size))

    def measure_onnx(self, onnx_bytes: bytes) -> Measurement:
        """Time any ONNX model on inputs of its declared names, types and shapes (symbolic dims become this
        device's batch size); the measurement records them (`inputs`, e.g. the sequence length of a text model)."""
        session = self.session(onnx_bytes)
        feed = synthetic_feed(session.get_inputs(), self.batch_size)
        measurement = time_repeated(lambda: session.run(None, feed), self.timing)
        return replace(measurement, inputs=describe_feed(feed))


_FEED_TYPES = {"tensor(float)": np.float32, "tensor(int64)": np.int64, "tensor(int32)": np.int32}


def synthetic_feed(args: list, batch_size: int) -> dict[str, np.ndarray]:
    """Inputs for a session's declared inputs: standard-normal floats; integers all ones (a valid token id and an
    all-attending mask, so a text model runs its full sequence length)."""
    gen = np.random.default_rng(0)
    feed = {}
    for arg in args:
        if arg.type not in _FEED_TYPES:
            raise ValueError(f"input {arg.name!r} has type {arg.type}; supported: {', '.join(_FEED_TYPES)}")
        shape = [d if isinstance(d, int) else batch_size for d in arg.shape]
        dtype = _FEED_TYPES[arg.type]
        feed[arg.name] = (gen.standard_normal(shape).astype(dtype) if dtype == np.float32
                          else np.ones(shape, dtype=dtype))
    return feed


def describe_feed(feed: dict[str, np.ndarray]) -> str:
    """`name:dtype[shape]` of each input, as recorded with a measurement."""
    return ",".join(f"{k}:{v.dtype}[{','.join(map(str, v.shape))}]" for k, v in feed.items())
