"""The user-family example: its supernet matches its extracted subnets, traced costs count them, and data builds."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from nasengine import supernets
from nasengine.kernels.static import from_spec, to_spec
from nasengine.supernets.base import Supernet
from tests.helpers import perturb

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "user_family"
MODULE_NAME = "nasengine_example_user_family"


def _register_family() -> None:
    """Import family.py once (it registers `elastic_resnet`), unless a plugin loader already did."""
    if "elastic_resnet" in supernets.available():
        return
    spec = importlib.util.spec_from_file_location(MODULE_NAME, EXAMPLE / "family.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[MODULE_NAME] = module
    spec.loader.exec_module(module)


@pytest.fixture(scope="module")
def net() -> Supernet:
    _register_family()
    torch.manual_seed(0)
    net = supernets.create_for_task("elastic_resnet", in_channels=1, num_classes=4, input_size=(16, 16))
    perturb(net)
    return net.eval()


def test_space_and_inputs(net: Supernet) -> None:
    assert net.name == "elastic_resnet"
    assert {"resolution", "s0.depth", "s0.width", "s2.width"} <= set(net.space.names)
    arch = {**net.space.max(), "resolution": 8}
    assert net.input_shape(arch) == (1, 8, 8) and net.input_transform(arch) == {"resize": [8, 8]}
    assert net.adapt_input(torch.zeros(2, 1, 16, 16), arch).shape == (2, 1, 8, 8)


@torch.no_grad()
def test_extracted_subnets_match_the_supernet(net: Supernet) -> None:
    archs = [net.space.min(), net.space.max()] + [net.space.sample(seed=s) for s in range(8)]
    for arch in archs:
        x = net.example_input(arch, 3)
        net.set_active(arch)
        static = net.extract(arch)
        assert float((net(x) - static(x)).abs().max()) <= 1e-5
        assert net.cost(arch).params == sum(p.numel() for p in static.parameters())


def test_traced_layers_are_blocks(net: Supernet) -> None:
    arch = {**net.space.max(), "s1.depth": 2}
    names = [spec.name for spec in net.describe(arch)]
    assert names[:3] == ["stem", "s0.b0", "s0.b1"] and "s1.b2" not in names and names[-2:] == ["pool", "classifier"]
    kinds = {spec.name: spec.kind for spec in net.describe(arch)}
    assert kinds["s0.b0"] == "conv_bn_relu_conv_bn_relu" and kinds["s0.b1"] == "res(conv_bn_relu_conv_bn)_relu"
    low, high = net.cost(net.space.min()), net.cost(net.space.max())
    assert high.macs > 10 * low.macs and high.params > 3 * low.params
    x = net.example_input(arch, 2)
    h = x
    with torch.no_grad():
        for layer in net.layer_modules(arch):
            assert tuple(h.shape[1:]) == layer.input_shape
            h = layer.module(h)  # type: ignore[misc]
        torch.testing.assert_close(h, net.extract(arch)(x))


@torch.no_grad()
def test_export_round_trips_through_the_static_spec(net: Supernet) -> None:
    for seed in range(3):
        arch = net.space.sample(seed=seed)
        static = net.extract(arch)
        rebuilt = from_spec(json.loads(json.dumps(to_spec(static))))
        rebuilt.load_state_dict(static.state_dict())
        x = net.example_input(arch, 2)
        torch.testing.assert_close(rebuilt.eval()(x), static(x))


def test_config_rebuilds_the_same_supernet(net: Supernet) -> None:
    again = supernets.from_config(json.loads(json.dumps({"supernet": net.name, "kwargs": net.config})))
    again.load_state_dict(net.state_dict())
    assert again.space.to_dict() == net.space.to_dict()


def test_make_data_writes_a_balanced_npz(tmp_path: Path) -> None:
    out = tmp_path / "data.npz"
    subprocess.run([sys.executable, str(EXAMPLE / "make_data.py"), "--out", str(out)], check=True,
                   capture_output=True)
    with np.load(out, allow_pickle=False) as data:
        x, y = data["x"], data["y"]
    assert x.shape == (2000, 16, 16) and x.dtype == np.uint8 and y.shape == (2000,)
    assert np.issubdtype(y.dtype, np.integer) and np.bincount(y).tolist() == [500] * 4
    again = tmp_path / "again.npz"
    subprocess.run([sys.executable, str(EXAMPLE / "make_data.py"), "--out", str(again)], check=True,
                   capture_output=True)
    with np.load(again, allow_pickle=False) as data:
        assert np.array_equal(data["x"], x) and np.array_equal(data["y"], y)


def test_the_data_is_learnable_by_the_smallest_subnet() -> None:
    _register_family()
    spec = importlib.util.spec_from_file_location(f"{MODULE_NAME}_data", EXAMPLE / "make_data.py")
    assert spec is not None and spec.loader is not None
    make_data = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_data)
    x, y = make_data.make_dataset(n=1200)
    images, labels = torch.tensor(x, dtype=torch.float32)[:, None] / 255.0, torch.tensor(y)
    torch.manual_seed(0)
    net = supernets.create_for_task("elastic_resnet", in_channels=1, num_classes=4, input_size=(16, 16))
    arch = net.set_active({**net.space.min(), "resolution": 16})
    optimizer = torch.optim.Adam(net.parameters(), 3e-3)
    net.train()
    for _ in range(4):
        for batch in torch.randperm(1000).split(50):
            loss = torch.nn.functional.cross_entropy(net(images[batch]), labels[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    with torch.no_grad():
        accuracy = float((net.eval()(net.adapt_input(images[1000:], arch)).argmax(1) == labels[1000:]).float().mean())
    assert accuracy >= 0.85
