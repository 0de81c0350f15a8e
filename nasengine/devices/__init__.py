"""Target devices: a registry of named devices over measurement backends, and the one timing loop."""

from nasengine.devices.base import Device, DeviceConfig, Workload
from nasengine.devices.registry import device_configs, get_device, register_backend, register_device
from nasengine.devices.timing import Measurement, TimingSettings, time_repeated

from nasengine.devices import ort_cpu as _ort_cpu  # noqa: F401  (registers the onnxruntime backend)

for _threads in (1, 2):
    register_device(DeviceConfig(f"ort-cpu-{_threads}t", "onnxruntime", {"threads": _threads},
                                 f"onnxruntime CPU, {_threads} intra-op thread(s), batch 1, FP32"))

__all__ = ["Device", "DeviceConfig", "Measurement", "TimingSettings", "Workload", "device_configs", "get_device",
           "register_backend", "register_device", "time_repeated"]
