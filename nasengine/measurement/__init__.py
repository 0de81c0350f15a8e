"""Measure: devices (a name, a backend, its settings) and the one timing loop; per-layer lookup tables
(`device profile`), few-shot latency predictors (`device adapt`) and the remote measurement agent (`device serve`)."""

from nasengine.measurement.devices import Device, DeviceConfig, Measurement, TimingSettings, Workload, \
    device_configs, get_device, register_backend, register_device, register_resolver

__all__ = ["Device", "DeviceConfig", "Measurement", "TimingSettings", "Workload", "device_configs", "get_device",
           "register_backend", "register_device", "register_resolver"]
