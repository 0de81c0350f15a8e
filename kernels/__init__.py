"""Elastic weight-sharing operators (slicing, kernel transform) and their export to static torch modules.

Layering follows Once-for-All: elastic op -> elastic layer -> (supernet) -> static export.
"""

from nasengine.search_spaces._bare_name import defer_bare_name

defer_bare_name(__name__)  # under its bare name (a checkout's root on sys.path) the name goes to its owner

from nasengine.kernels.transformer import ClassToken, ElasticEncoderLayer, ElasticLayerNorm, ElasticSelfAttention, \
    EncoderLayer, PatchEmbedding, SelfAttention
from nasengine.kernels.text import ElasticTokenEmbedding, Pooler, TextClassifier, TokenEmbedding
from nasengine.kernels.describe import LayerSpec, OpSpec, conv_out_hw, total_macs, total_params
from nasengine.kernels import decoder  # noqa: F401  (registers the decoder's static modules)
from nasengine.kernels.activations import ACTIVATIONS, activation
from nasengine.kernels.layers import ConvBNAct, ElasticMBConv, ElasticSqueezeExcite, make_divisible
from nasengine.kernels.ops import ElasticBatchNorm2d, ElasticConv2d, ElasticLinear
from nasengine.kernels.static import GlobalAvgPool, Residual, SqueezeExcite, from_spec, register_static, to_spec
from nasengine.kernels.trace import TracedLayer, layer_kind, trace_layers

__all__ = [
    "ACTIVATIONS", "ClassToken", "ElasticEncoderLayer", "ElasticLayerNorm", "ElasticSelfAttention", "EncoderLayer",
    "PatchEmbedding", "SelfAttention", "ElasticTokenEmbedding", "Pooler", "TextClassifier", "TokenEmbedding",
    "ConvBNAct", "ElasticBatchNorm2d", "ElasticConv2d", "ElasticLinear", "ElasticMBConv", "ElasticSqueezeExcite",
    "GlobalAvgPool", "LayerSpec", "OpSpec", "Residual", "SqueezeExcite", "activation", "conv_out_hw",
    "from_spec", "make_divisible", "register_static", "to_spec", "total_macs", "total_params",
    "TracedLayer", "layer_kind", "trace_layers",
]
