"""Search-space DSL: genes with finite choices, conditional genes, spaces, JSON archs, encodings, samplers.

>>> from nasengine.search_spaces import Choice, Condition, Space
>>> space = Space([Choice("depth", [1, 2]), Choice("b1.kernel", [3, 5], active_if=Condition("depth", ">", 1))])
>>> space.size
3
"""

from nasengine.search_spaces._bare_name import defer_bare_name

defer_bare_name(__name__)  # under its bare name (a checkout's root on sys.path) the name goes to its owner

from nasengine.search_spaces.archs import arch_from_json, arch_to_json, read_archs, write_archs
from nasengine.search_spaces.choices import Choice, Condition, FloatRange, IntRange
from nasengine.search_spaces.encoding import IntegerEncoding, OneHotEncoding, get_encoding
from nasengine.search_spaces.samplers import SandwichSampler, sample_unique
from nasengine.search_spaces.space import Arch, Space

__all__ = [
    "Arch", "Choice", "Condition", "FloatRange", "IntRange", "IntegerEncoding", "OneHotEncoding", "SandwichSampler",
    "Space",
    "arch_from_json", "arch_to_json", "get_encoding", "read_archs", "sample_unique", "write_archs",
]
