import numpy as np
import onnxruntime as ort
import pytest
import torch
from torch import nn

from nasengine import supernets
from nasengine.graphs.onnx_writer import supports, to_onnx
from tests.helpers import perturb


def run_onnx(data: bytes, x: torch.Tensor) -> np.ndarray:
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    net = supernets.create("ofa_mbv3_digits")
    perturb(net)
    return net.eval()


def test_onnx_matches_torch_for_random_subnets(net) -> None:
    worst = 0.0
    for seed in range(10):
        arch = net.space.sample(seed=seed)
        static = net.extract(arch)
        x = net.example_input(arch, batch=2)
        assert supports(static)
        with torch.no_grad():
            expected = static(x).numpy()
        worst = max(worst, float(np.abs(run_onnx(to_onnx(static, x), x) - expected).max()))
    assert worst <= 1e-4


def test_dynamic_batch(net) -> None:
    arch = net.space.min()
    static = net.extract(arch)
    data = to_onnx(static, net.example_input(arch, 1), dynamic_batch=True)
    x = net.example_input(arch, 5)
    with torch.no_grad():
        np.testing.assert_allclose(run_onnx(data, x), static(x).numpy(), atol=1e-4)


def test_modules_outside_the_vocabulary_fall_back_to_torch_export() -> None:
    model = nn.Sequential(nn.Linear(4, 3), nn.Tanh()).eval()
    assert not supports(model)
    x = torch.randn(2, 4)
    with torch.no_grad():
        np.testing.assert_allclose(run_onnx(to_onnx(model, x), x), model(x).numpy(), atol=1e-5)
