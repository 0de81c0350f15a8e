"""Target devices: a registry of named devices over measurement backends, and the one timing loop."""

from nasengine.measurement.devices.base import Device, DeviceConfig, Workload
from nasengine.measurement.devices.registry import (device_configs, get_device, register_backend, register_device,
                                                    register_resolver)
from nasengine.measurement.devices.timing import Measurement, TimingSettings, time_repeated

# each import registers one backend
from nasengine.measurement.devices import lut_device as _lut  # noqa: F401,E402
from nasengine.measurement.devices import ort_cpu as _ort_cpu  # noqa: F401,E402
from nasengine.measurement.devices import predicted as _predicted  # noqa: F401,E402
from nasengine.measurement.devices import remote as _remote  # noqa: F401,E402
from nasengine.measurement.devices import table as _table  # noqa: F401,E402
from nasengine.measurement.devices import torch_backends as _torch  # noqa: F401,E402

for _threads in (1, 2):
    register_device(DeviceConfig(f"ort-cpu-{_threads}t", "onnxruntime", {"threads": _threads},
                                 f"onnxruntime CPU, {_threads} intra-op thread(s), batch 1, FP32"))
    register_device(DeviceConfig(f"ort-cpu-{_threads}t-int8", "onnxruntime", {"threads": _threads, "precision": "int8"},
                                 f"onnxruntime CPU, {_threads} intra-op thread(s), batch 1, INT8 QDQ graph"))
    register_device(DeviceConfig(f"torch-cpu-{_threads}t", "torch-cpu", {"threads": _threads},
                                 f"PyTorch eager on the CPU, {_threads} thread(s), batch 1"))
register_device(DeviceConfig("torch-cuda", "torch-cuda", {"index": 0}, "PyTorch eager on CUDA GPU 0, batch 1"))

__all__ = ["Device", "DeviceConfig", "Measurement", "TimingSettings", "Workload", "device_configs", "get_device",
           "register_backend", "register_device", "register_resolver", "time_repeated"]
