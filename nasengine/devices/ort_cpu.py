"""onnxruntime on this machine's CPU, with a fixed thread count and graph optimisation level."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort

from nasengine.devices.base import Device, DeviceConfig, Workload
from nasengine.devices.quantize import check_precision, deployed_graph
from nasengine.devices.registry import register_backend
from nasengine.devices.timing import Measurement, time_repeated

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
    `precision` (fp32, or int8: the graph is statically quantised to QDQ INT8 before timing).
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
        """Time any single-input float ONNX model (symbolic dims become this device's batch size)."""
        session = self.session(onnx_bytes)
        gen = np.random.default_rng(0)
        feed = {}
        for arg in session.get_inputs():
            if arg.type != "tensor(float)":
                raise ValueError(f"input {arg.name!r} has type {arg.type}; only float inputs are supported")
            shape = [d if isinstance(d, int) else self.batch_size for d in arg.shape]
            feed[arg.name] = gen.standard_normal(shape).astype(np.float32)
        return time_repeated(lambda: session.run(None, feed), self.timing)
