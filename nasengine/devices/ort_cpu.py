"""onnxruntime on this machine's CPU, with a fixed thread count and graph optimisation level."""

from __future__ import annotations

import onnxruntime as ort

from nasengine.devices.base import Device, DeviceConfig, Workload
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

    Settings: `threads` (intra-op, default 1), `opt_level` (disable|basic|extended|all), `batch_size`.
    """

    backend = "onnxruntime"

    def __init__(self, config: DeviceConfig, **kw: object):
        super().__init__(config, **kw)  # type: ignore[arg-type]
        self.threads = int(config.settings.get("threads", 1))
        level = config.settings.get("opt_level", "all")
        if level not in _OPT_LEVELS:
            raise ValueError(f"device {config.name!r}: opt_level must be one of {sorted(_OPT_LEVELS)}")
        self.opt_level = _OPT_LEVELS[level]

    def session_options(self) -> ort.SessionOptions:
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = self.opt_level
        options.log_severity_level = 3
        return options

    def session(self, onnx_bytes: bytes) -> ort.InferenceSession:
        return ort.InferenceSession(onnx_bytes, self.session_options(), providers=["CPUExecutionProvider"])

    def _measure(self, workload: Workload) -> Measurement:
        session = self.session(workload.onnx(self.batch_size))
        name = session.get_inputs()[0].name
        feed = {name: workload.example_input(self.batch_size).numpy()}
        return time_repeated(lambda: session.run(None, feed), self.timing)
