"""PyTorch eager execution as a device: on this CPU with a fixed thread count, or on a CUDA GPU when present."""

from __future__ import annotations

import torch

from nasengine.measurement.devices.base import Device, DeviceConfig, Workload
from nasengine.measurement.devices.registry import register_backend
from nasengine.measurement.devices.timing import Measurement, time_repeated


@register_backend("torch-cpu")
class TorchCpuDevice(Device):
    """Times `model(x)` under inference mode with `threads` intra-op threads (restored afterwards)."""

    backend = "torch-cpu"

    def __init__(self, config: DeviceConfig, **kw: object):
        super().__init__(config, **kw)  # type: ignore[arg-type]
        self.threads = config.int_setting("threads", 1)

    def _measure(self, workload: Workload) -> Measurement:
        model, x = workload.model(), workload.example_input(self.batch_size)
        previous = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        try:
            with torch.inference_mode():
                return time_repeated(lambda: model(x), self.timing)
        finally:
            torch.set_num_threads(previous)


@register_backend("torch-cuda")
class TorchCudaDevice(Device):
    """Times `model(x)` on a CUDA device, synchronising after each run so the GPU work is what is timed."""

    backend = "torch-cuda"

    def __init__(self, config: DeviceConfig, **kw: object):
        super().__init__(config, **kw)  # type: ignore[arg-type]
        self.index = config.int_setting("index", 0, minimum=0)
        self.half = config.settings.get("precision", "fp32") == "fp16"

    def availability(self) -> str | None:
        if not torch.cuda.is_available():
            return "no CUDA device is visible to torch"
        if self.index >= torch.cuda.device_count():
            return f"CUDA device {self.index} does not exist ({torch.cuda.device_count()} visible)"
        return None

    def _measure(self, workload: Workload) -> Measurement:
        device = torch.device("cuda", self.index)
        dtype = torch.float16 if self.half else torch.float32
        model = workload.model().to(device=device, dtype=dtype)
        x = workload.example_input(self.batch_size).to(device=device, dtype=dtype)

        def run() -> None:
            model(x)
            torch.cuda.synchronize(device)

        try:
            with torch.inference_mode():
                return time_repeated(run, self.timing)
        finally:
            workload.model().to("cpu", dtype=torch.float32)
