"""Weight-only quantization of linear and attention layers: onnxruntime's MatMulNBits (INT8 or INT4 weights in
blocks along the input dimension, one FP32 scale per block; no calibration).

A MatMul with a constant 2-D weight under a layer's module path becomes one MatMulNBits node holding the packed
weight (onnxruntime's own packing kernels, symmetric, so no zero points). This is how LLM runtimes ship transformer
weights (llama.cpp's Q8_0 and Q4_0 are the same blocks of 32): 4-8x smaller than FP32. The nodes ask for
onnxruntime's INT8 compute (`accuracy_level` 4: activations quantized per block on the fly), without which its
CPU kernels run 8-bit weights 3-30x slower than FP32 here (BENCHMARKS.md). The accuracy is that of the graph
onnxruntime runs, like every quantized number in the engine.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import onnx
from onnx import numpy_helper

from nasengine.graphs.onnx_writer import node_in_layer

WEIGHT_ONLY_BITS = (8, 4)
BLOCK_SIZE = 32  # input channels per scale: small enough for the narrow layers of elastic subnets
ACCURACY_LEVEL = 4  # onnxruntime's INT8 compute for MatMulNBits (0: its FP32 compute)
_DOMAIN = "com.microsoft"


def _packers() -> dict[int, object]:
    from onnxruntime.capi._pybind_state import quantize_matmul_4bits, quantize_matmul_8bits

    return {4: quantize_matmul_4bits, 8: quantize_matmul_8bits}


def weight_matmuls(model: onnx.ModelProto, path: str) -> list[onnx.NodeProto]:
    """MatMul nodes computing part of the layer at `path` whose weight (second input) is a constant 2-D matrix."""
    weights = {init.name: init for init in model.graph.initializer}
    return [node for node in model.graph.node
            if node.op_type == "MatMul" and node_in_layer(node.name, path) and node.input[1] in weights
            and len(weights[node.input[1]].dims) == 2]


def layers_with_weight_matmuls(onnx_bytes: bytes, paths: Sequence[str]) -> list[str]:
    """Which of the layers at `paths` hold a MatMul with a constant weight (where weight-only precisions apply)."""
    model = onnx.load_model_from_string(onnx_bytes)
    return [path for path in paths if weight_matmuls(model, path)]


def pack_weight(weight: np.ndarray, bits: int, block_size: int = BLOCK_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """(packed blocks (N, k_blocks, bytes per block) uint8, scales (N, k_blocks) float32) of a (K, N) weight,
    symmetric, as MatMulNBits reads them."""
    if bits not in WEIGHT_ONLY_BITS:
        raise ValueError(f"weight-only bits must be one of {WEIGHT_ONLY_BITS}, got {bits}")
    rows, cols = weight.shape
    k_blocks = (rows + block_size - 1) // block_size
    padded = np.zeros((k_blocks * block_size, cols), dtype=np.float32)
    padded[:rows] = weight
    packed = np.zeros((cols, k_blocks, block_size * bits // 8), dtype=np.uint8)
    scales = np.zeros((cols, k_blocks), dtype=np.float32)
    zero_points = np.zeros((cols, (k_blocks + 8 // bits - 1) // (8 // bits)), dtype=np.uint8)
    _packers()[bits](packed, padded, scales, zero_points, block_size, cols, rows, True)
    return packed, scales


def weight_only_graph(onnx_bytes: bytes, layers: Mapping[str, int], block_size: int = BLOCK_SIZE,
                      accuracy_level: int = ACCURACY_LEVEL) -> bytes:
    """The graph with every constant-weight MatMul of each layer in `layers` ({module path: bits}) replaced by a
    MatMulNBits node at that many bits; ValueError for a layer that has no such MatMul."""
    if not layers:
        return onnx_bytes
    model = onnx.load_model_from_string(onnx_bytes)
    weights = {init.name: init for init in model.graph.initializer}
    replaced: dict[str, onnx.NodeProto] = {}
    new_initializers: list[onnx.TensorProto] = []
    for path, bits in layers.items():
        nodes = weight_matmuls(model, path)
        if not nodes:
            raise ValueError(f"layer {path!r} has no MatMul with a constant weight; weight-only precisions apply "
                             f"to linear and attention layers")
        for node in nodes:
            weight = numpy_helper.to_array(weights[node.input[1]]).astype(np.float32)
            packed, scales = pack_weight(weight, bits, block_size)
            name = f"{node.name}.w{bits}"
            new_initializers += [numpy_helper.from_array(packed, f"{name}.packed"),
                                 numpy_helper.from_array(scales.reshape(-1), f"{name}.scales")]
            replaced[node.name] = onnx.helper.make_node(
                "MatMulNBits", [node.input[0], f"{name}.packed", f"{name}.scales"], list(node.output), name=name,
                domain=_DOMAIN, K=int(weight.shape[0]), N=int(weight.shape[1]), bits=int(bits),
                block_size=int(block_size), **({"accuracy_level": int(accuracy_level)} if accuracy_level else {}))
    nodes = [replaced.get(node.name, node) for node in model.graph.node]
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    still_used = {name for node in model.graph.node for name in node.input}
    kept = [init for init in model.graph.initializer if init.name in still_used]
    del model.graph.initializer[:]
    model.graph.initializer.extend(kept + new_initializers)
    if not any(op.domain == _DOMAIN for op in model.opset_import):
        model.opset_import.append(onnx.helper.make_opsetid(_DOMAIN, 1))
    return model.SerializeToString()
