"""Elastic weight-sharing operators (slicing, kernel transform) and their export to static torch modules.

Layering follows Once-for-All: elastic op -> elastic layer -> (supernet) -> static export.
"""

from kernels.transformer import ClassToken, ElasticEncoderLayer, ElasticLayerNorm, ElasticSelfAttention, \
    EncoderLayer, PatchEmbedding, SelfAttention
from kernels.text import ElasticTokenEmbedding, Pooler, TextClassifier, TokenEmbedding
from kernels.describe import LayerSpec, OpSpec, conv_out_hw, total_macs, total_params
from kernels.layers import ConvBNAct, ElasticMBConv, ElasticSqueezeExcite, activation, make_divisible
from kernels.ops import ElasticBatchNorm2d, ElasticConv2d, ElasticLinear
from kernels.static import GlobalAvgPool, Residual, SqueezeExcite, from_spec, register_static, to_spec
from kernels.trace import TracedLayer, layer_kind, trace_layers

__all__ = [
    "ClassToken", "ElasticEncoderLayer", "ElasticLayerNorm", "ElasticSelfAttention", "EncoderLayer",
    "PatchEmbedding", "SelfAttention", "ElasticTokenEmbedding", "Pooler", "TextClassifier", "TokenEmbedding",
    "ConvBNAct", "ElasticBatchNorm2d", "ElasticConv2d", "ElasticLinear", "ElasticMBConv", "ElasticSqueezeExcite",
    "GlobalAvgPool", "LayerSpec", "OpSpec", "Residual", "SqueezeExcite", "activation", "conv_out_hw",
    "from_spec", "make_divisible", "register_static", "to_spec", "total_macs", "total_params",
    "TracedLayer", "layer_kind", "trace_layers",
]
