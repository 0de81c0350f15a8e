"""Weight-only INT8/INT4 (onnxruntime MatMulNBits) for the matrix weights of linear and attention layers."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from torch import nn

from nasengine.graphs.onnx_writer import to_onnx
from nasengine.graphs.weight_only import layers_with_weight_matmuls, pack_weight, weight_only_graph


def _run(graph: bytes, x: torch.Tensor) -> np.ndarray:
    session = ort.InferenceSession(graph, providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]


@pytest.fixture(scope="module")
def mlp() -> tuple[nn.Module, torch.Tensor, bytes]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(72, 128), nn.GELU(), nn.Linear(128, 64), nn.Flatten(), nn.Linear(16 * 64, 10))
    x = torch.randn(4, 16, 72)
    return model.eval(), x, to_onnx(model.eval(), x, dynamic_batch=True)


def test_only_sequence_linears_hold_weight_matmuls(mlp: tuple[nn.Module, torch.Tensor, bytes]) -> None:
    _, _, graph = mlp
    assert layers_with_weight_matmuls(graph, ["0", "1", "2", "3", "4"]) == ["0", "2"]  # "4" is a Gemm on (B, C)


def test_weight_only_graphs_shrink_by_their_bits_and_err_by_their_rounding(
        mlp: tuple[nn.Module, torch.Tensor, bytes]) -> None:
    model, x, graph = mlp
    reference = model(x).detach().numpy()
    errors, sizes = {}, {}
    for bits in (8, 4):
        quantized = weight_only_graph(graph, {"0": bits, "2": bits})
        nodes = onnx.load_model_from_string(quantized).graph.node
        assert [n.op_type for n in nodes].count("MatMulNBits") == 2 and "MatMul" not in [n.op_type for n in nodes]
        assert {a.i for n in nodes if n.op_type == "MatMulNBits" for a in n.attribute if a.name == "bits"} == {bits}
        errors[bits] = float(np.abs(_run(quantized, x) - reference).max())
        sizes[bits] = len(quantized)
    scale = float(np.abs(reference).max())
    assert errors[8] < 0.02 * scale and errors[8] < errors[4] < 0.5 * scale
    # 4 bytes per FP32 weight; quantized: K padded to blocks of 32, `bits` per weight, one FP32 scale per block
    shapes = [(72, 128), (128, 64)]
    fp32 = sum(4 * k * n for k, n in shapes)
    padded = sum(-(-k // 32) * 32 * n for k, n in shapes)
    scales = sum(4 * -(-k // 32) * n for k, n in shapes)
    assert len(graph) - sizes[8] == pytest.approx(fp32 - padded - scales, rel=0.02)
    assert sizes[8] - sizes[4] == pytest.approx(padded / 2, rel=0.02)


def test_packing_is_what_the_kernel_reads_and_a_layer_without_matmuls_is_refused(
        mlp: tuple[nn.Module, torch.Tensor, bytes]) -> None:
    weight = np.linspace(-1, 1, 40 * 3, dtype=np.float32).reshape(40, 3)  # K = 40 pads to two blocks of 32
    packed, scales = pack_weight(weight, 8)
    assert packed.shape == (3, 2, 32) and scales.shape == (3, 2)
    codes = packed.astype(np.int16) - 128  # symmetric 8-bit: stored with an offset of 128
    rebuilt = (codes * scales[:, :, None]).reshape(3, 64)[:, :40].T
    assert np.abs(rebuilt - weight).max() <= scales.max() / 2 + 1e-6
    with pytest.raises(ValueError, match="no MatMul with a constant weight"):
        weight_only_graph(mlp[2], {"1": 8})
    with pytest.raises(ValueError, match="bits must be one of"):
        pack_weight(weight, 3)


def test_a_weight_only_device_quantizes_every_matrix_weight_and_leaves_other_graphs_fp32(
        mlp: tuple[nn.Module, torch.Tensor, bytes]) -> None:
    from nasengine.measurement.devices import Workload
    from nasengine.measurement.devices.quantize import deployed_graph

    model, x, _ = mlp
    ops = [n.op_type for n in onnx.load_model_from_string(
        deployed_graph(Workload({}, "mlp", lambda: model, tuple(x.shape[1:])), "w4", 1)).graph.node]
    assert ops.count("MatMulNBits") == 2 and "Gemm" in ops  # the (B, C) classifier stays a float Gemm
    conv = nn.Sequential(nn.Conv2d(3, 8, 3)).eval()
    workload = Workload({}, "conv", lambda: conv, (3, 8, 8))
    assert deployed_graph(workload, "w8", 1) == workload.onnx(1)
