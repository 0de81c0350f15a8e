import numpy as np
import pytest

from nasengine.search_spaces.registry import RegistryError
from torch import nn

from nasengine.measurement.devices import DeviceConfig, Measurement, TimingSettings, Workload, get_device, time_repeated
from nasengine.measurement.devices import registry
from nasengine.measurement.devices.registry import register_device
from nasengine.errors import UserError


def test_measurement_statistics_and_outliers() -> None:
    samples = np.array([1.0] * 20 + [1.1] * 20 + [50.0])
    m = Measurement.from_samples(samples)
    assert m.median_ms == pytest.approx(1.1) and m.repeats == 41 and m.outliers == 1
    assert m.mean_ms < 1.2  # the preempted sample does not pollute the mean
    assert Measurement.from_dict(m.to_dict()) == m


def test_time_repeated_honours_minimum_repeats_and_time() -> None:
    calls = []
    m = time_repeated(lambda: calls.append(1), TimingSettings(warmup_runs=3, warmup_seconds=0, min_repeats=7,
                                                               min_seconds=0, max_repeats=7))
    assert m.repeats == 7 and len(calls) == 10
    with pytest.raises(ValueError):
        TimingSettings(min_repeats=2)


def test_ort_device_measures_a_model_once_built() -> None:
    builds = []

    def build() -> nn.Module:
        builds.append(1)
        return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU())

    workload = Workload({"a": 1}, "k", build, (1, 16, 16))
    device = get_device("ort-cpu-1t")
    first, second = device.measure(workload), device.measure(workload)
    assert first.median_ms > 0 and first.repeats >= 30 and second.median_ms > 0
    assert len(builds) == 1


def test_device_registry_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "_DEVICES", registry._DEVICES.copy())  # registrations end with the test
    with pytest.raises(RegistryError, match="unknown device 'gpu9'"):
        get_device("gpu9")
    with pytest.raises(RegistryError, match="unknown backend 'fpga'"):
        register_device(DeviceConfig("x", "fpga"))
    with pytest.raises(RegistryError, match="registered twice"):
        register_device(DeviceConfig("ort-cpu-1t", "onnxruntime"))
    register_device(DeviceConfig("bad-ort", "onnxruntime", {"opt_level": "max"}), replace=True)
    with pytest.raises(UserError, match="opt_level"):
        get_device("bad-ort")
