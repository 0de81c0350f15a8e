"""Evaluate: the one path from an arch to its accuracy (BN recalibrated on fixed training samples, then scored on a
split), FP32 in torch or as the deployed (INT8) graph in onnxruntime; the supernet is left as it was found."""

from nasengine.evaluation.evaluator import Evaluator, accuracy, onnx_accuracy, quantization_images

__all__ = ["Evaluator", "accuracy", "onnx_accuracy", "quantization_images"]
