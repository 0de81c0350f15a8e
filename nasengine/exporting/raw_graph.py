"""`model.raw.onnx`: an image export's preprocessing contract written as ONNX nodes (Cast, Mul, Sub, Div, Transpose,
Resize) in front of its model.onnx, so onnxruntime alone maps raw NHWC images to logits; checked against the torch
path when it is exported."""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import torch
from torch import nn

from nasengine.errors import first_line
from nasengine.exporting.preprocess import normalize_images

RAW_GRAPH = "model.raw.onnx"
RAW_INPUT = "raw"
RAW_TOLERANCE = 1e-4  # largest |model.raw.onnx - torch path| accepted at export, on logits


def onnx_session(graph: bytes) -> Any:
    """An onnxruntime CPU session of ONNX bytes."""
    import onnxruntime as ort

    return ort.InferenceSession(graph, providers=["CPUExecutionProvider"])


def raw_graph(contract: Mapping[str, Any], model: bytes) -> bytes:
    """model.onnx with the contract's image steps in front: input `raw` (N, H, W, C) uint8 (or float32 when the
    training images were floats) -> Cast, Mul scale, Sub mean, Div std, Transpose to NCHW, Resize (linear,
    half_pixel: torch's bilinear with align_corners=False) -> the model's input."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    graph_model = onnx.load_model_from_string(model)
    graph = graph_model.graph
    spec, target = contract["raw"], str(contract["inputs"][0]["name"])
    h, w, c = int(spec["height"]), int(spec["width"]), int(spec["channels"])
    uint8 = spec["dtype"] == "uint8"
    nodes: list[onnx.NodeProto] = []
    constants = {"scale": np.asarray(contract["scale"], np.float32), "mean": np.asarray(contract["mean"], np.float32),
                 "std": np.asarray(contract["std"], np.float32)}

    def node(op: str, inputs: list[str], name: str, output: str | None = None, **attrs: Any) -> str:
        """Append one node named `preprocess/NAME`; its output's name."""
        out = output or f"preprocess/{name}"
        nodes.append(helper.make_node(op, inputs, [out], name=f"preprocess/{name}", **attrs))
        return out

    x = node("Cast", [RAW_INPUT], "cast", to=TensorProto.FLOAT) if uint8 else RAW_INPUT
    x = node("Mul", [x, "preprocess/const/scale"], "scale")
    x = node("Sub", [x, "preprocess/const/mean"], "mean")
    x = node("Div", [x, "preprocess/const/std"], "std")
    resize = contract.get("resize")
    size = (int(resize["size"][0]), int(resize["size"][1])) if resize else (h, w)
    x = node("Transpose", [x], "nchw", output=target if size == (h, w) else None, perm=[0, 3, 1, 2])
    if size != (h, w):
        constants.update({"starts": np.asarray([0], np.int64), "ends": np.asarray([2], np.int64),
                          "hw": np.asarray(size, np.int64)})
        shape = node("Shape", [x], "shape")
        nc = node("Slice", [shape, "preprocess/const/starts", "preprocess/const/ends"], "nc")
        sizes = node("Concat", [nc, "preprocess/const/hw"], "sizes", axis=0)
        node("Resize", [x, "", "", sizes], "resize", output=target, mode="linear",
             coordinate_transformation_mode="half_pixel")
    kept = [i for i in graph.input if i.name != target]
    del graph.input[:]
    graph.input.extend([helper.make_tensor_value_info(RAW_INPUT, TensorProto.UINT8 if uint8 else TensorProto.FLOAT,
                                                      ["N", h, w, c]), *kept])
    body = list(graph.node)
    del graph.node[:]
    graph.node.extend([*nodes, *body])
    graph.initializer.extend(numpy_helper.from_array(v, f"preprocess/const/{k}") for k, v in constants.items())
    onnx.checker.check_model(graph_model)
    return graph_model.SerializeToString()


def raw_graph_error(contract: Mapping[str, Any], graph: bytes, module: nn.Module) -> float:
    """Largest |logits of `graph` on raw images - logits of `module` on `preprocess` of them| over a few seeded raw
    images around the training statistics."""
    spec = contract["raw"]
    rng = np.random.default_rng(0)
    z = rng.standard_normal((4, int(spec["height"]), int(spec["width"]), int(spec["channels"])))
    raw = (np.asarray(contract["mean"]) + np.asarray(contract["std"]) * z) / float(contract["scale"])
    raw = np.clip(np.rint(raw), 0, 255).astype(np.uint8) if spec["dtype"] == "uint8" else raw.astype(np.float32)
    with torch.no_grad():
        expected = module(normalize_images(contract, raw, "torch")).detach().cpu().numpy()
    got = onnx_session(graph).run(None, {RAW_INPUT: raw})[0]
    return float(np.max(np.abs(got - expected)))


def with_raw_graph(contract: Mapping[str, Any], model: bytes, module: nn.Module) -> tuple[dict[str, Any],
                                                                                              dict[str, bytes]]:
    """(the contract, {model.raw.onnx: bytes}) for an image export whose pre-processing graph computes what
    `module` does on `preprocess` of raw images (within RAW_TOLERANCE); the contract names the graph, its input
    and the error found. Text and undescribed preprocessing get no graph (tokenisation is no ONNX operator)."""
    contract = dict(contract)
    if contract.get("kind") != "image":
        return contract, {}
    try:
        graph = raw_graph(contract, model)
        error = raw_graph_error(contract, graph, module)
    except Exception as exc:  # onnx's checker, onnxruntime: the graph is an extra, never a reason to fail an export
        contract["raw_graph"] = {"file": None, "why": f"not built: {type(exc).__name__}: {first_line(exc, 200)}"}
        return contract, {}
    if not error <= RAW_TOLERANCE:
        contract["raw_graph"] = {"file": None, "why": f"its outputs differed from the torch path by {error:.2e}"}
        return contract, {}
    raw = contract["raw"]
    contract["raw_graph"] = {"file": RAW_GRAPH, "input": RAW_INPUT, "dtype": "uint8" if raw["dtype"] == "uint8"
                             else "float32", "shape": ["N", raw["height"], raw["width"], raw["channels"]],
                             "layout": "NHWC", "output": "logits", "max_abs_error": error}
    return contract, {RAW_GRAPH: graph}
