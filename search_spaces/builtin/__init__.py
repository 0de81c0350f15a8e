"""Ready-made space builders for common supernet families."""

from search_spaces.builtin.mobilenet import block_genes, elastic_mobilenet_space
from search_spaces.builtin.transformer import encoder_space

__all__ = ["block_genes", "elastic_mobilenet_space", "encoder_space"]
