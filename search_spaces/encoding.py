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
    """The encoding predictors see: a block of len(options) indicators per categorical gene, and for a numeric range
    (IntRange, FloatRange) two columns, active (0/1) and its position along the range (0..1), so predictors treat
    it as ordered; an inactive gene's block is all zero."""

    name = "onehot"

    @staticmethod
    def block(gene: Any) -> int:
        return 2 if gene.is_range else len(gene)

    def width(self, space: "Space") -> int:
        return sum(self.block(g) for g in space.genes)

    def encode(self, space: "Space", arch: Mapping[str, Any]) -> np.ndarray:
        arch = space.validate(arch)
        indices = np.array([[0 if arch[g.name] is None else g.index(arch[g.name]) for g in space.genes]])
        active = np.array([[arch[g.name] is not None for g in space.genes]])
        return self.from_indices(space, indices, active)[0]

    def from_indices(self, space: "Space", X: np.ndarray, active: np.ndarray) -> np.ndarray:
        """The encodings of many archs at once from their integer encodings `X` (n, genes) and which genes are
        active in each (`active`, same shape): the vectorised path of predictors scoring thousands of candidates."""
        X = np.asarray(X, dtype=np.int64)
        out = np.zeros((len(X), self.width(space)), dtype=np.float32)
        offset = 0
        for j, gene in enumerate(space.genes):
            on = active[:, j]
            if gene.is_range:
                out[on, offset] = 1.0
                out[on, offset + 1] = X[on, j] / max(len(gene) - 1, 1)
            else:
                out[np.flatnonzero(on), offset + X[on, j]] = 1.0
            offset += self.block(gene)
        return out

    def decode(self, space: "Space", vector: Sequence[float] | np.ndarray) -> "Arch":
        vec = np.asarray(vector, dtype=float).ravel()
        if vec.shape[0] != self.width(space):
            raise ValueError(f"one-hot encoding has {self.width(space)} entries, got {vec.shape[0]}")
        indices, offset = [], 0
        for gene in space.genes:
            block = vec[offset: offset + self.block(gene)]
            if gene.is_range:
                indices.append(int(round(float(np.clip(block[1], 0, 1)) * (len(gene) - 1))) if block[0] > 0 else -1)
            else:
                indices.append(int(np.argmax(block)) if block.max() > 0 else -1)
            offset += self.block(gene)
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
