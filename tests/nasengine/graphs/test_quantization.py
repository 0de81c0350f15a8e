"""Quantization for real: exactly the policy's layers are INT8, calibrated on training images, and every INT8
number of the engine (INT8 devices, policies, exports) comes from the same graph."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

from nasengine import supernets
from nasengine.measurement.devices import get_device
from nasengine.measurement.devices.base import Workload
from nasengine.measurement.devices.quantize import deployed_graph
from nasengine.evaluation.evaluator import Evaluator, onnx_accuracy
from nasengine.graphs.onnx_writer import node_in_layer, to_onnx
from nasengine.graphs.quantization import calibration_feeds, nodes_of_layers, quantize_layers, with_batch
from nasengine.tasks import get_task
from tests.conftest import TINY


@pytest.fixture(scope="module")
def subnet() -> tuple:
    net = supernets.create("ofa_mbv3_digits", **TINY)
    arch = net.space.max()
    module = net.extract(arch)
    graph = to_onnx(module, net.example_input(arch, 1), dynamic_batch=True)
    return net, arch, module, graph


def _quantized_convs(graph: bytes) -> set[str]:
    """Conv nodes whose weight arrives through a DequantizeLinear (i.e. runs in INT8)."""
    model = onnx.load_model_from_string(graph)
    dequantized = {n.output[0] for n in model.graph.node if n.op_type == "DequantizeLinear"}
    return {n.name for n in model.graph.node if n.op_type == "Conv" and n.input[1] in dequantized}


def test_written_graphs_fold_batchnorm_and_name_nodes_by_module_path(subnet) -> None:
    net, arch, module, graph = subnet
    model = onnx.load_model_from_string(graph)
    assert "BatchNormalization" not in {n.op_type for n in model.graph.node}
    convs = {name for name, m in module.named_modules() if isinstance(m, torch.nn.Conv2d)}
    assert {n.name for n in model.graph.node if n.op_type == "Conv"} == convs
    unfolded = onnx.load_model_from_string(to_onnx(module, net.example_input(arch, 1), fold_batchnorm=False))
    assert "BatchNormalization" in {n.op_type for n in unfolded.graph.node}


def test_only_the_policy_layers_are_quantized(subnet) -> None:
    net, arch, module, graph = subnet
    feeds = calibration_feeds(net.example_input(arch, 64).numpy())
    layers = ["stem", "blocks.s1_b0"]
    mixed = _quantized_convs(quantize_layers(graph, feeds, layers))
    all_convs = {n.name for n in onnx.load_model_from_string(graph).graph.node if n.op_type == "Conv"}
    assert mixed == {c for c in all_convs if any(node_in_layer(c, p) for p in layers)} and mixed
    assert _quantized_convs(quantize_layers(graph, feeds, None)) == all_convs
    assert quantize_layers(graph, feeds, []) == graph  # nothing INT8: the FP32 graph itself
    head = nodes_of_layers(onnx.load_model_from_string(graph), ["head"])
    assert any("pool" in n for n in head)  # the weightless pooling follows the layer that feeds it


def test_with_batch_fixes_the_symbolic_dimension(subnet) -> None:
    net, arch, module, graph = subnet
    fixed = onnx.load_model_from_string(with_batch(graph, 3))
    assert fixed.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 3
    assert with_batch(with_batch(graph, 3), 3) == with_batch(graph, 3)


def test_int8_device_and_all_int8_policy_run_the_same_graph(subnet) -> None:
    """The `*-int8` devices calibrate on the workload's training images, like the search's policies."""
    net, arch, module, graph = subnet
    task = get_task("digits")
    evaluator = Evaluator(net, task, "val")
    layers = [layer.path for layer in net.quantizable_layers()]
    policy_graph = evaluator.deployed_graph(arch, layers)
    workload = Workload(arch, net.space.key(arch), lambda: evaluator.extract(arch), net.input_shape(arch),
                        calibration=lambda: evaluator.quantization_inputs(arch))
    assert workload.calibration_inputs()[1] == "training images"
    assert deployed_graph(workload, "int8", 1) == with_batch(policy_graph, 1)
    quantized = Workload(arch, "k", lambda: module, net.input_shape(arch), dynamic_onnx=policy_graph,
                         policy={p: "int8" for p in layers})
    assert deployed_graph(quantized, "fp32", 1) == with_batch(policy_graph, 1)  # never quantized twice
    with pytest.raises(Exception, match="cannot run a quantized graph"):
        get_device("torch-cpu-1t").measure(quantized)


def test_quantized_accuracy_is_the_onnxruntime_graph_on_the_split() -> None:
    net = supernets.create("ofa_mbv3_digits", **TINY)
    arch = net.space.sample(seed=1)
    task = get_task("digits")
    evaluator = Evaluator(net, task, "val")
    fp32 = evaluator.evaluate(arch)
    prepare = (lambda x: net.adapt_input(x, arch))
    graph = to_onnx(evaluator.extract(arch), net.example_input(arch, 1), dynamic_batch=True)
    assert onnx_accuracy(graph, evaluator.split, prepare) == pytest.approx(fp32, abs=2 / len(evaluator.split))
    score, quantized = evaluator.quantized(arch, ["stem"])
    assert score == onnx_accuracy(quantized, evaluator.split, prepare)
    assert np.isfinite(evaluator.fake_quantized(arch, ["stem"]))
