"""Fixed-length vector encodings of architectures: they feed pymoo (integers) and predictors (one-hot)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping, Protocol, Sequence

import numpy as np

from nasengine.search_spaces.registry import Registry

if TYPE_CHECKING:
    from nasengine.search_spaces.space import Arch, Space


class Encoding(Protocol):
    name: str

    def width(self, space: "Space") -> int: ...

    def encode(self, space: "Space", arch: Mapping[str, Any]) -> np.ndarray: ...

    def decode(self, space: "Space", vector: Sequence[float] | np.ndarray) -> "Arch": ...


class IntegerEncoding:
    """One integer per gene: the index of its option (0 for inactive genes, which decode ignores)."""

    name = "int"

    def width(self, space: "Space") -> int:
        return len(space)

    def bounds(self, space: "Space") -> tuple[np.ndarray, np.ndarray]:
        return np.zeros(len(space), dtype=int), np.array([len(g) - 1 for g in space.genes])

    def encode(self, space: "Space", arch: Mapping[str, Any]) -> np.ndarray:
        arch = space.validate(arch)
        return np.array([0 if arch[g.name] is None else g.index(arch[g.name]) for g in space.genes], dtype=np.int64)

    def decode(self, space: "Space", vector: Sequence[float] | np.ndarray) -> "Arch":
        vec = np.asarray(vector, dtype=float).ravel()
        if vec.shape[0] != len(space):
            raise ValueError(f"integer encoding of {space.name or 'space'} has {len(space)} entries, "
                             f"got {vec.shape[0]}")
        idx = np.rint(vec).astype(int)
        for gene, i in zip(space.genes, idx):
            if not 0 <= i < len(gene):
                raise ValueError(f"gene {gene.name!r}: index {i} outside 0..{len(gene) - 1}")
        return space._from_indices(idx.tolist())


class OneHotEncoding:
    """A block of len(options) indicators per gene; an inactive gene's block is all zero."""

    name = "onehot"

    def width(self, space: "Space") -> int:
        return sum(len(g) for g in space.genes)

    def encode(self, space: "Space", arch: Mapping[str, Any]) -> np.ndarray:
        arch = space.validate(arch)
        out = np.zeros(self.width(space), dtype=np.float32)
        offset = 0
        for gene in space.genes:
            if arch[gene.name] is not None:
                out[offset + gene.index(arch[gene.name])] = 1.0
            offset += len(gene)
        return out

    def decode(self, space: "Space", vector: Sequence[float] | np.ndarray) -> "Arch":
        vec = np.asarray(vector, dtype=float).ravel()
        if vec.shape[0] != self.width(space):
            raise ValueError(f"one-hot encoding has {self.width(space)} entries, got {vec.shape[0]}")
        indices, offset = [], 0
        for gene in space.genes:
            block = vec[offset: offset + len(gene)]
            indices.append(int(np.argmax(block)) if block.max() > 0 else -1)
            offset += len(gene)
        out: dict[str, Any] = {}
        for gene, i in zip(space.genes, indices):
            if not space.is_active(gene, out):
                out[gene.name] = None
            elif i < 0:
                raise ValueError(f"gene {gene.name!r} is active but its one-hot block is empty")
            else:
                out[gene.name] = gene.options[i]
        return out


ENCODINGS: Registry[Encoding] = Registry("encoding")
ENCODINGS.add("int", IntegerEncoding())
ENCODINGS.add("onehot", OneHotEncoding())


def get_encoding(kind: str) -> Encoding:
    return ENCODINGS.get(kind)
