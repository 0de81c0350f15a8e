"""kernels.fake_quant: the torch INT8 estimate against FP32 and against onnxruntime's static QDQ graph."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, \
    quantize_static
from sklearn.datasets import load_digits
from torch import nn

from nasengine import supernets
from nasengine.kernels.fake_quant import ActQuant, QuantOp, fake_quantize, quantizable_paths
from nasengine.kernels.fold import fold_batchnorm
from nasengine.kernels.static import GlobalAvgPool, Residual
from nasengine.graphs.onnx_writer import node_in_layer, to_onnx


class _Feeds(CalibrationDataReader):
    def __init__(self, batches: Sequence[torch.Tensor]):
        self._it: Iterator[torch.Tensor] = iter(batches)

    def get_next(self) -> dict[str, np.ndarray] | None:
        x = next(self._it, None)
        return None if x is None else {"input": x.numpy()}


def ort_logits(module: nn.Module, calibration: Sequence[torch.Tensor], x: torch.Tensor, tmp: Path,
               layers: Sequence[str] | None = None) -> torch.Tensor:
    """Logits of the QDQ INT8 graph onnxruntime builds from the written ONNX (nodes under `layers`; None: all)."""
    fp32 = to_onnx(module, x[:1], dynamic_batch=True)
    nodes = None if layers is None else [
        n.name for n in onnx.load_model_from_string(fp32).graph.node
        if n.op_type != "Identity" and any(node_in_layer(n.name, path) for path in layers)]
    (tmp / "fp32.onnx").write_bytes(fp32)
    quantize_static(str(tmp / "fp32.onnx"), str(tmp / "int8.onnx"), _Feeds(calibration),
                    quant_format=QuantFormat.QDQ, per_channel=True, activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax, nodes_to_quantize=nodes)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(tmp / "int8.onnx"), options, providers=["CPUExecutionProvider"])
    return torch.from_numpy(session.run(None, {"input": x.numpy()})[0])


@pytest.fixture(scope="module")
def digits_subnet() -> tuple[nn.Module, list[torch.Tensor], torch.Tensor]:
    """The smallest ofa_mbv3_digits subnet trained 100 SGD steps on digits: (module, calibration batches, test x)."""
    torch.manual_seed(0)
    net = supernets.create("ofa_mbv3_digits")
    arch = net.space.min()
    module = net.extract(arch)
    digits = load_digits()
    x = net.adapt_input(torch.tensor(digits.images / 16.0, dtype=torch.float32).unsqueeze(1), arch)
    y = torch.tensor(digits.target)
    gen = torch.Generator().manual_seed(0)
    order = torch.randperm(len(x), generator=gen)
    train, test = order[:1400], order[1400:]
    optimizer = torch.optim.SGD(module.parameters(), lr=0.05, momentum=0.9)
    module.train()
    for _ in range(100):
        batch = train[torch.randint(0, len(train), (64,), generator=gen)]
        loss = nn.functional.cross_entropy(module(x[batch]), y[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    module.eval()
    calibration = [x[train[i: i + 128]] for i in range(0, 512, 128)]
    return module, calibration, x[test]


def _agreement(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.argmax(1) == b.argmax(1)).float().mean())


@torch.no_grad()
def test_no_int8_layer_is_the_folded_fp32_module(digits_subnet):
    module, calibration, x = digits_subnet
    out = fake_quantize(module, [], calibration)
    assert out is not module and not out.training
    assert not any(isinstance(m, ActQuant) for m in out.modules())
    torch.testing.assert_close(out(x), fold_batchnorm(module)(x), atol=1e-5, rtol=0)


@torch.no_grad()
def test_all_int8_tracks_onnxruntime_qdq(digits_subnet, tmp_path):
    module, calibration, x = digits_subnet
    ort_int8 = ort_logits(module, calibration, x, tmp_path)
    fake = fake_quantize(module, quantizable_paths(module), calibration)(x)
    fp32 = module(x)
    assert _agreement(fake, ort_int8) >= 0.95
    # measured: mean |delta logit| 0-0.002 against ORT vs ~0.09 for FP32, and 98-100 % of logits equal to ORT's
    assert (fake - ort_int8).abs().mean() < 0.2 * (fp32 - ort_int8).abs().mean()
    assert ((fake - ort_int8).abs() < 1e-4).float().mean() > 0.5


@torch.no_grad()
def test_some_int8_layers_track_onnxruntime(digits_subnet, tmp_path):
    module, calibration, x = digits_subnet
    layers = ["stem", "blocks.s1_b0", "head"]  # the pooling after the head goes INT8 with it
    ort_int8 = ort_logits(module, calibration, x, tmp_path, layers=[*layers, "pool"])
    fake = fake_quantize(module, layers, calibration)(x)
    fp32 = module(x)
    assert _agreement(fake, ort_int8) >= 0.95
    assert (fake - ort_int8).abs().mean() < 0.2 * (fp32 - ort_int8).abs().mean()


@torch.no_grad()
def test_only_listed_layers_change(digits_subnet):
    module, calibration, x = digits_subnet
    folded = fold_batchnorm(module)
    out = fake_quantize(module, ["stem"], calibration)
    assert (out(x) - folded(x)).abs().max() > 1e-3
    quantized = {name for name, m in out.named_modules() if isinstance(m, (ActQuant, QuantOp))}
    assert quantized and all(name.startswith("stem.") for name in quantized)
    before, after = folded.state_dict(), out.state_dict()
    for name, value in before.items():
        if not name.startswith("stem."):
            assert torch.equal(after[name], value), name
    # per output channel, symmetric: the stem's weights sit on a grid of 255 levels reaching +-127
    weight = out.get_submodule("stem.conv.op").weight
    steps = weight / (weight.abs().amax(dim=(1, 2, 3), keepdim=True) / 127)
    torch.testing.assert_close(steps, steps.round(), atol=1e-3, rtol=0)
    assert not torch.equal(weight, folded.get_submodule("stem.conv").weight)


@torch.no_grad()
def test_biases_sit_on_the_int32_grid_of_input_times_weight_scale(digits_subnet):
    module, calibration, _ = digits_subnet
    out = fake_quantize(module, quantizable_paths(module), calibration)
    weighted = [m for m in out.modules() if isinstance(m, QuantOp) and isinstance(m.op, (nn.Conv2d, nn.Linear))]
    assert len(weighted) == sum(isinstance(m, (nn.Conv2d, nn.Linear)) for m in module.modules())
    for m in weighted:
        w = m.op.weight.reshape(m.op.weight.shape[0], -1)
        steps = m.op.bias.double() / (m.input_q.scale * w.abs().amax(1) / 127).double()
        torch.testing.assert_close(steps, steps.round(), atol=0.02, rtol=0)


def test_weightless_layer_follows_the_layer_before_it(digits_subnet):
    module, calibration, _ = digits_subnet
    assert "pool" not in quantizable_paths(module)
    assert {"stem", "head", "classifier"} <= set(quantizable_paths(module))
    assert isinstance(fake_quantize(module, ["head"], calibration[:1]).pool, QuantOp)
    assert isinstance(fake_quantize(module, ["stem"], calibration[:1]).pool, GlobalAvgPool)


def test_input_module_unchanged(digits_subnet):
    module, calibration, _ = digits_subnet
    state = {k: v.clone() for k, v in module.state_dict().items()}
    structure = repr(module)
    fake_quantize(module, quantizable_paths(module), calibration)
    assert repr(module) == structure
    assert all(torch.equal(v, module.state_dict()[k]) for k, v in state.items())


def test_bad_arguments(digits_subnet):
    module, calibration, _ = digits_subnet
    with pytest.raises(ValueError, match=r"blocks\.nope.*known layers: stem, blocks\.first"):
        fake_quantize(module, ["stem", "blocks.nope"], calibration)
    with pytest.raises(ValueError, match="calibration"):
        fake_quantize(module, ["stem"], [])


@torch.no_grad()
def test_relu_fusion_residual_and_silu_track_onnxruntime(tmp_path):
    torch.manual_seed(0)
    module = nn.Sequential(
        nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU()),
        Residual(nn.Sequential(nn.Conv2d(8, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.SiLU())),
        GlobalAvgPool(), nn.Linear(8, 4)).eval()
    for bn in (module[0][1], module[1].body[1]):
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 2.0)
    calibration = [torch.randn(32, 3, 8, 8) for _ in range(2)]
    x = torch.randn(200, 3, 8, 8)
    ort_int8 = ort_logits(module, calibration, x, tmp_path)
    fake = fake_quantize(module, quantizable_paths(module), calibration)(x)
    assert (fake - ort_int8).abs().mean() < 0.2 * (module(x) - ort_int8).abs().mean()
