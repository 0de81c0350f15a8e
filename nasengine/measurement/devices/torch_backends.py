"""PyTorch eager execution as a device: on this CPU with a fixed thread count, or on a CUDA GPU when present."""

from __future__ import annotations

from dataclasses import replace

import torch

from nasengine.kernels.inputs import Inputs, as_args, named
from nasengine.measurement.devices.base import Device, DeviceConfig, Workload
from nasengine.measurement.devices.registry import register_backend
from nasengine.measurement.devices.timing import Measurement, time_repeated


@register_backend("torch-cpu")
class TorchCpuDevice(Device):
    """Times the model on its example inputs (every declared input, in order) under inference mode with `threads`
    intra-op threads (restored afterwards)."""

    backend = "torch-cpu"

    def __init__(self, config: DeviceConfig, **kw: object):
        super().__init__(config, **kw)  # type: ignore[arg-type]
        self.threads = config.int_setting("threads", 1)

    def _measure(self, workload: Workload) -> Measurement:
        model, inputs = workload.model(), workload.example_input(self.batch_size)
        args = as_args(inputs)
        previous = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        try:
            with torch.inference_mode():
                return replace(time_repeated(lambda: model(*args), self.timing), inputs=describe_inputs(inputs))
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
        # floats in the model's precision; token ids and masks keep their integer type
        inputs = workload.example_input(self.batch_size)
        args = [x.to(device=device, dtype=dtype if x.is_floating_point() else x.dtype) for x in as_args(inputs)]

        def run() -> None:
            model(*args)
            torch.cuda.synchronize(device)

        try:
            with torch.inference_mode():
                return replace(time_repeated(run, self.timing), inputs=describe_inputs(inputs))
        finally:
            workload.model().to("cpu", dtype=torch.float32)


def describe_inputs(inputs: Inputs) -> str:
    """`name:dtype[shape]` of each input fed, as onnxruntime devices record it (batch and sequence length)."""
    return ",".join(f"{name}:{str(x.dtype).removeprefix('torch.')}[{','.join(map(str, x.shape))}]"
                    for name, x in named(inputs).items())
