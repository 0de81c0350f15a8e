"""Ready-made space builders for common supernet families."""

from nasengine.search_spaces.builtin.mobilenet import block_genes, elastic_mobilenet_space
from nasengine.search_spaces.builtin.transformer import encoder_space

__all__ = ["block_genes", "elastic_mobilenet_space", "encoder_space"]
