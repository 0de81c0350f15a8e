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


def test_a_linear_on_token_sequences_is_written_as_matmul_that_onnxruntime_runs() -> None:
    """ONNX's Gemm takes matrices only: a plain nn.Linear on (batch, tokens, channels) used to be written as a Gemm
    that onnxruntime refused."""
    import onnx

    model = nn.Sequential(nn.Linear(12, 8), nn.ReLU(), nn.Linear(8, 4)).eval()
    x = torch.randn(2, 5, 12)
    graph = to_onnx(model, x, dynamic_batch=True)
    ops = [n.op_type for n in onnx.load_model_from_string(graph).graph.node]
    assert "Gemm" not in ops and ops.count("MatMul") == 2
    session = ort.InferenceSession(graph, providers=["CPUExecutionProvider"])
    out = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    assert np.abs(out - model(x).detach().numpy()).max() < 1e-5
    flat = to_onnx(model, torch.randn(2, 12))  # on matrices the writer's own Gemm stays
    assert [n.op_type for n in onnx.load_model_from_string(flat).graph.node].count("Gemm") == 2


def test_layers_a_module_calls_in_a_loop_keep_their_module_paths_in_node_names() -> None:
    """torch.onnx names the nodes of `for layer in self.layers: ...` as `/l0/...`, dropping `layers`; the writer
    restores the module path, so a layer's nodes (INT8 policies, weight-only layers) are found by its path."""
    import onnx

    from nasengine.graphs.onnx_writer import node_in_layer

    class Looped(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.layers = nn.Sequential(*(nn.Linear(8, 8) for _ in range(2)))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            for layer in self.layers:
                x = torch.relu(layer(x))
            return x

    graph = onnx.load_model_from_string(to_onnx(Looped().eval(), torch.randn(1, 4, 8)))
    matmuls = [n.name for n in graph.graph.node if n.op_type == "MatMul"]
    assert len(matmuls) == 2 and all(any(node_in_layer(n, f"layers.{i}") for n in matmuls) for i in range(2))
