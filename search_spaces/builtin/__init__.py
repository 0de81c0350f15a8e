"""Ready-made space builders for common supernet families."""

from search_spaces.builtin.mobilenet import block_genes, elastic_mobilenet_space

__all__ = ["block_genes", "elastic_mobilenet_space"]
