"""Static subnet -> ONNX, written directly from the kernels.static vocabulary (milliseconds, not seconds).

Search measures hundreds of subnets; tracing each through torch.onnx costs 0.5-2 s, this costs a few ms.
Modules outside the vocabulary fall back to torch.onnx.export, so any static module still exports. Written graphs
are deployable as they are: BatchNorm is folded into the preceding convolution and nodes are named by module path.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from nasengine.kernels.fold import foldable, folded_conv_params
from nasengine.kernels.inputs import SINGLE_INPUT, Inputs, as_args, named, to_numpy
from nasengine.kernels.onnx_ops import child_path, conv_node
from nasengine.kernels.static import static_op

OPSET = 17
INPUT_NAME, OUTPUT_NAME = SINGLE_INPUT, "logits"


class _Graph:
    """Accumulates nodes and initializers. Nodes are named by the module path they compute (`blocks.s0_b0.body.
    expand.conv`), with `/part` for a module that needs several nodes, so a layer maps to its nodes by prefix."""

    def __init__(self, fold: bool = True) -> None:
        self.fold = fold  # fold BatchNorm into the preceding conv
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._used: set[str] = set()

    def unique(self, name: str) -> str:
        out, k = name, 1
        while out in self._used:
            k += 1
            out = f"{name}:{k}"
        self._used.add(out)
        return out

    def const(self, value: torch.Tensor | np.ndarray, name: str) -> str:
        array = value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)
        name = self.unique(name)
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def node(self, op: str, inputs: list[str], name: str, **attrs: object) -> str:
        out = self.unique(name or op.lower())
        self.nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        return out

    def convert(self, module: nn.Module, x: str, path: str = "") -> str:
        """Add the nodes computing `module` on `x`; its output's name (for converters of composite ops)."""
        return _convert(self, module, x, path)



def node_in_layer(node_name: str, layer_path: str) -> bool:
    """Whether the node called `node_name` computes part of the module at `layer_path` (or all of it); the root
    path "" holds every node."""
    if not layer_path:
        return True
    return node_name == layer_path or node_name.startswith((f"{layer_path}.", f"{layer_path}/", f"{layer_path}:"))


def _convert(g: _Graph, m: nn.Module, x: str, path: str = "") -> str:
    if type(m) is nn.Sequential:
        children = list(m.named_children())
        i = 0
        while i < len(children):
            name, child = children[i]
            if g.fold and i + 1 < len(children) and foldable(child, children[i + 1][1]):
                weight, bias = folded_conv_params(child, children[i + 1][1])  # BN folded into its conv
                x = conv_node(g, child, x, child_path(path, name), weight, bias)
                i += 2
                continue
            x = _convert(g, child, x, child_path(path, name))
            i += 1
        return x
    op = static_op(type(m))
    converter = op.onnx if op is not None else None
    if converter is None:
        raise NotImplementedError(type(m).__name__)
    return converter(g, m, x, path or type(m).__name__.lower())


def supports(model: nn.Module) -> bool:
    """True when every module of `model` has a direct converter."""
    try:
        _convert(_Graph(), model, INPUT_NAME)
    except NotImplementedError:
        return False
    return True


def to_onnx(model: nn.Module, example_input: Inputs, dynamic_batch: bool = False,
            fold_batchnorm: bool = True) -> bytes:
    """Serialized ONNX model (opset 17) computing `model` in eval mode on inputs shaped like `example_input`
    (one float tensor, or named inputs of any dtype: those always go through torch.onnx, named as given).
    `fold_batchnorm=False` keeps BatchNormalization nodes (only to measure what folding changes)."""
    model = model.eval()
    if not isinstance(example_input, torch.Tensor):
        return _torch_export(model, example_input, dynamic_batch)
    out_shape, sequence_linear = _run_once(model, example_input)
    if sequence_linear:
        return _torch_export(model, example_input, dynamic_batch)
    shape: list[int | str] = list(example_input.shape)
    if dynamic_batch:
        shape[0] = "batch"
    graph = _Graph(fold_batchnorm)
    try:
        out = _convert(graph, model, INPUT_NAME)
    except NotImplementedError:
        return _torch_export(model, example_input, dynamic_batch)
    graph.nodes.append(helper.make_node("Identity", [out], [OUTPUT_NAME], name="output"))
    if dynamic_batch:
        out_shape[0] = "batch"
    proto = helper.make_model(
        helper.make_graph(graph.nodes, "subnet",
                          [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, shape)],
                          [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, out_shape)],
                          graph.initializers),
        opset_imports=[helper.make_opsetid("", OPSET)], producer_name="nasengine")
    proto.ir_version = 8
    return proto.SerializeToString()


@torch.no_grad()
def _run_once(model: nn.Module, example_input: torch.Tensor) -> tuple[list[int | str], bool]:
    """(output shape, whether a plain nn.Linear sees an input of rank > 2) from one forward pass: ONNX's Gemm
    takes matrices only, so a Linear on tokens of a sequence is written by torch.onnx (MatMul and Add) instead."""
    seen: list[int] = []
    handles = [m.register_forward_pre_hook(lambda _, args: seen.append(args[0].dim()))
               for m in model.modules() if type(m) is nn.Linear]
    try:
        out_shape: list[int | str] = list(model(example_input).shape)
    finally:
        for handle in handles:
            handle.remove()
    return out_shape, any(rank > 2 for rank in seen)


def _torch_export(model: nn.Module, example_input: Inputs, dynamic_batch: bool) -> bytes:
    buffer = io.BytesIO()
    names = list(named(example_input))
    axes = {name: {0: "batch"} for name in [*names, OUTPUT_NAME]} if dynamic_batch else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, as_args(example_input), buffer, dynamo=False, opset_version=OPSET,
                          input_names=names, output_names=[OUTPUT_NAME], dynamic_axes=axes)
    return _module_path_names(buffer.getvalue(), [path for path, _ in model.named_modules() if path])


def _module_path_names(onnx_bytes: bytes, paths: list[str] | None = None) -> bytes:
    """Rename torch.onnx's scoped node names (`/layers/l0/attn/query/MatMul`) to the writer's convention
    (`layers.l0.attn.query/MatMul`), so layers map to their nodes the same way for every exporter. torch.onnx
    drops the parents of a child a module calls in a loop (`for layer in self.layers` gives `/l0/...`): such a
    scope becomes the one module path of `paths` (the model's) that ends with it."""
    model = onnx.load_model_from_string(onnx_bytes)
    known = set(paths or ())
    suffixes: dict[str, list[str]] = {}
    for path in known:
        parts = path.split(".")
        for i in range(1, len(parts)):
            suffixes.setdefault(".".join(parts[i:]), []).append(path)
    used: set[str] = set()
    for node in model.graph.node:
        if node.name.startswith("/"):
            *scope, op = node.name[1:].split("/")
            dotted = ".".join(scope)
            if known and dotted and dotted not in known and len(suffixes.get(dotted, ())) == 1:
                dotted = suffixes[dotted][0]
            name = f"{dotted}/{op}" if scope else op
            candidate, k = name, 1
            while candidate in used:
                k += 1
                candidate = f"{name}:{k}"
            node.name = candidate
        used.add(node.name)
    return model.SerializeToString()


def onnx_error(model: nn.Module, onnx_bytes: bytes, example_input: Inputs) -> float:
    """Largest absolute difference between `model` (eval mode) and its ONNX graph run by onnxruntime on
    `example_input`: every export is checked against its torch module with this."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])
    feed = to_numpy(example_input)
    if isinstance(example_input, torch.Tensor):
        feed = {session.get_inputs()[0].name: feed[INPUT_NAME]}
    got = session.run(None, feed)[0]
    with torch.no_grad():
        expected = model.eval()(*as_args(example_input)).detach().cpu().numpy()
    return float(np.abs(got - expected).max())
