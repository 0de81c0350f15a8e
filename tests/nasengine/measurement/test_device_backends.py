"""Device registry from files, and the table, torch, INT8 and lookup-table backends."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch
from torch import nn

from nasengine.measurement.devices import Workload, get_device
from nasengine.measurement.devices.config_files import parse_device_file
from nasengine.measurement.devices.registry import register_device
from nasengine.measurement.devices.timing import TimingSettings
from nasengine.errors import UserError

FAST = {"warmup_runs": 2, "warmup_seconds": 0, "min_repeats": 5, "min_seconds": 0, "max_repeats": 5}


def small_workload(arch=None) -> Workload:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1))
    return Workload(arch or {"a": 1}, "k", lambda: model.eval(), (1, 12, 12))


def test_device_files_in_toml_and_json(tmp_path: Path) -> None:
    (tmp_path / "d.toml").write_text('[devices.lab-ort]\nbackend = "onnxruntime"\nthreads = 2\n'
                                     'description = "lab box"\ntiming = { min_repeats = 5 }\n')
    (tmp_path / "d.json").write_text(json.dumps({"devices": {"lab-torch": {"backend": "torch-cpu", "threads": 1}}}))
    toml_dev, = parse_device_file(tmp_path / "d.toml")
    json_dev, = parse_device_file(tmp_path / "d.json")
    assert toml_dev.settings == {"threads": 2, "timing": {"min_repeats": 5}} and toml_dev.description == "lab box"
    assert json_dev.backend == "torch-cpu"
    register_device(toml_dev, replace=True)
    device = get_device("lab-ort")
    assert device.threads == 2 and device.timing.min_repeats == 5


@pytest.mark.parametrize("text, fragment", [
    ("[devices.x]\nthreads = 1\n", "needs a backend"),
    ("devices = 3\n", "declares no"),
    ("[devices.x\n", "not valid TOML"),
])
def test_bad_device_files_are_named_in_the_error(tmp_path: Path, text: str, fragment: str) -> None:
    (tmp_path / "bad.toml").write_text(text)
    with pytest.raises(UserError, match=fragment):
        parse_device_file(tmp_path / "bad.toml")


def test_devices_from_the_environment_show_up_in_the_cli(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    (tmp_path / "d.toml").write_text('[devices.env-dev]\nbackend = "onnxruntime"\nthreads = 1\n')
    env = {**os.environ, "NASENGINE_DEVICES": str(tmp_path / "d.toml")}
    out = subprocess.run([sys.executable, "-m", "nasengine", "devices", "--json"], capture_output=True, text=True,
                         env=env, check=True).stdout
    assert "env-dev" in {row["name"] for row in json.loads(out)}


def test_table_device_looks_up_archs_whatever_the_key_order(tmp_path: Path) -> None:
    pd.DataFrame({"arch": [json.dumps({"b": 2, "a": 1, "c": None})], "latency_ms": [3.5]}).to_csv(
        tmp_path / "t.csv", index=False)
    register_device(__import__("nasengine.measurement.devices", fromlist=["DeviceConfig"]).DeviceConfig(
        "tab", "table", {"csv": str(tmp_path / "t.csv")}), replace=True)
    device = get_device("tab")
    m = device.measure(small_workload({"a": 1, "b": 2}))
    assert m.median_ms == 3.5 and m.source == "table:t.csv"
    with pytest.raises(UserError, match="no latency for this arch"):
        device.measure(small_workload({"a": 2, "b": 2}))


def test_torch_cpu_and_int8_backends_measure() -> None:
    for name in ("torch-cpu-1t", "ort-cpu-1t-int8"):
        device = get_device(name)
        device.timing = TimingSettings(**FAST)
        m = device.measure(small_workload())
        assert m.median_ms > 0 and m.repeats == 5


class _TokensAndMask(nn.Module):
    """A model of two named integer inputs, as text models take them."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(50, 8)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return (self.embed(input_ids) * attention_mask.unsqueeze(-1)).sum(1)


def test_torch_devices_feed_every_named_input_and_record_them() -> None:
    from nasengine.kernels.inputs import InputSpec

    specs = [InputSpec("input_ids", "int64", (7,), 50), InputSpec("attention_mask", "int64", (7,), 2)]
    device = get_device("torch-cpu-1t")
    device.timing = TimingSettings(**FAST)
    m = device.measure(Workload({"a": 1}, "tokens", lambda: _TokensAndMask().eval(), specs))
    assert m.median_ms > 0 and m.inputs == "input_ids:int64[1,7],attention_mask:int64[1,7]"


def test_int8_graph_is_quantized_without_flooding_the_log(caplog) -> None:
    import logging

    import onnx

    with caplog.at_level(logging.INFO):
        q = onnx.load_model_from_string(small_workload().int8_onnx())
        logging.warning("other warnings still pass")
    assert {"QuantizeLinear", "DequantizeLinear"} <= {node.op_type for node in q.graph.node}
    assert [r.getMessage() for r in caplog.records] == ["other warnings still pass"]


def test_cuda_device_reports_why_it_is_unavailable() -> None:
    device = get_device("torch-cuda")
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    assert "CUDA" in device.availability()
    with pytest.raises(UserError, match="not usable here"):
        device.measure(small_workload())


@pytest.mark.parametrize("backend, key", [("table", "csv"), ("lut", "table"), ("predicted", "model")])
def test_file_backed_devices_name_their_missing_setting(backend: str, key: str, monkeypatch) -> None:
    from nasengine.measurement.devices import registry
    from nasengine.measurement.devices.base import DeviceConfig

    monkeypatch.setattr(registry, "_DEVICES", registry._DEVICES.copy())  # registrations end with the test
    register_device(DeviceConfig(f"no-{key}", backend, {}))
    with pytest.raises(UserError, match=f"device 'no-{key}'.*needs a `{key}` setting"):
        get_device(f"no-{key}")
