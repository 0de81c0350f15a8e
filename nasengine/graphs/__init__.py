"""Deployable graphs shared by evaluation, measurement and export: static subnet -> ONNX (the direct writer, or
torch.onnx), and onnxruntime's static INT8 quantization of the layers a policy names."""

from nasengine.graphs.onnx_writer import onnx_error, to_onnx
from nasengine.graphs.quantization import quantized_graph

__all__ = ["onnx_error", "quantized_graph", "to_onnx"]
