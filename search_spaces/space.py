"""A search space: an ordered set of genes; architectures are plain JSON dicts gene name -> choice."""

from __future__ import annotations

import itertools
import json
from math import prod
from typing import Any, Iterable, Iterator, Mapping, Sequence

import numpy as np

from nasengine.search_spaces.choices import Choice

Arch = dict[str, Any]


class Space:
    """Declares genes, validates, samples, counts and encodes architectures.

    A canonical arch holds every gene, in declaration order, with None for inactive genes; every method
    that returns an arch returns it canonical, so two archs describing the same network compare equal.
    """

    def __init__(self, genes: Iterable[Choice], name: str = ""):
        self.name = name
        self.genes: tuple[Choice, ...] = tuple(genes)
        self._by_name: dict[str, Choice] = {}
        for gene in self.genes:
            if gene.name in self._by_name:
                raise ValueError(f"gene {gene.name!r} is declared twice")
            cond = gene.active_if
            if cond is not None:
                controller = self._by_name.get(cond.gene)
                if controller is None:
                    raise ValueError(
                        f"gene {gene.name!r} depends on {cond.gene!r}, which must be declared before it"
                    )
                if controller.active_if is not None:
                    raise ValueError(
                        f"gene {gene.name!r} depends on {cond.gene!r}, which is itself conditional"
                    )
            self._by_name[gene.name] = gene

    # ------------------------------------------------------------------ introspection
    @property
    def names(self) -> list[str]:
        return [g.name for g in self.genes]

    def gene(self, name: str) -> Choice:
        try:
            return self._by_name[name]
        except KeyError:
            raise ValueError(f"unknown gene {name!r} in space {self.name or '(unnamed)'}") from None

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def __iter__(self) -> Iterator[Choice]:
        return iter(self.genes)

    def __len__(self) -> int:
        return len(self.genes)

    def genes_tagged(self, tag: str) -> list[Choice]:
        return [g for g in self.genes if g.tag == tag]

    @property
    def size(self) -> int:
        """Number of distinct canonical architectures (exact, conditional genes counted once per context)."""
        dependents: dict[str, list[Choice]] = {}
        for gene in self.genes:
            if gene.active_if is not None:
                dependents.setdefault(gene.active_if.gene, []).append(gene)
        total = 1
        for gene in self.genes:
            if gene.active_if is not None:
                continue
            deps = dependents.get(gene.name)
            if not deps:
                total *= len(gene)
                continue
            total *= sum(
                prod(len(d) for d in deps if d.active_if.holds({gene.name: value}))  # type: ignore[union-attr]
                for value in gene.options
            )
        return total

    # ------------------------------------------------------------------ validation
    def is_active(self, gene: Choice, arch: Mapping[str, Any]) -> bool:
        return gene.active_if is None or gene.active_if.holds(arch)

    def validate(self, arch: Mapping[str, Any]) -> Arch:
        """Canonical copy of `arch`; ValueError naming the gene when it is unknown, missing or out of choices."""
        if not isinstance(arch, Mapping):
            raise ValueError(f"an architecture is a dict of gene -> choice, got {type(arch).__name__}")
        unknown = [k for k in arch if k not in self._by_name]
        if unknown:
            raise ValueError(f"unknown gene {unknown[0]!r} (space {self.name or '(unnamed)'} has {len(self)} genes)")
        out: Arch = {}
        for gene in self.genes:
            if not self.is_active(gene, out):
                out[gene.name] = None
                continue
            if gene.name not in arch or arch[gene.name] is None:
                raise ValueError(f"gene {gene.name!r} is missing (choices {list(gene.options)})")
            out[gene.name] = gene.options[gene.index(arch[gene.name])]
        return out

    def canonical(self, arch: Mapping[str, Any]) -> Arch:
        """Alias of validate: the canonical form is what validation returns."""
        return self.validate(arch)

    def key(self, arch: Mapping[str, Any]) -> str:
        """Canonical JSON text of an arch: equal networks give equal keys (cache and store key)."""
        return json.dumps(self.validate(arch), separators=(",", ":"))

    # ------------------------------------------------------------------ construction of archs
    def _from_indices(self, indices: Sequence[int]) -> Arch:
        out: Arch = {}
        for gene, i in zip(self.genes, indices):
            out[gene.name] = gene.options[int(i)] if self.is_active(gene, out) else None
        return out

    def sample(self, seed: int | None = None, rng: np.random.Generator | None = None) -> Arch:
        """A uniformly random choice per gene (one draw per gene whether active or not, so streams stay aligned)."""
        rng = rng if rng is not None else np.random.default_rng(seed)
        return self._from_indices([int(rng.integers(len(g))) for g in self.genes])

    def enumerate(self, limit: int | None = None) -> list[Arch] | None:
        """Every distinct canonical arch (inactive genes collapse, so duplicates are dropped), or None when the
        encodings number more than `limit` (a guard: most spaces are far too large to list)."""
        if limit is not None and prod(len(g) for g in self.genes) > limit:
            return None
        archs: dict[str, Arch] = {}
        for indices in itertools.product(*(range(len(g)) for g in self.genes)):
            arch = self._from_indices(indices)
            archs.setdefault(self.key(arch), arch)
        return list(archs.values())

    def min(self) -> Arch:
        """The first (cheapest) option of every gene."""
        return self._from_indices([0] * len(self.genes))

    def max(self) -> Arch:
        """The last (most expensive) option of every gene."""
        return self._from_indices([len(g) - 1 for g in self.genes])

    def restrict(self, by_tag: Mapping[str, Sequence[Any]] | None = None,
                 by_name: Mapping[str, Sequence[Any]] | None = None) -> "Space":
        """A sub-space whose genes keep only the given options (by tag, then by exact name)."""
        by_tag = dict(by_tag or {})
        by_name = dict(by_name or {})
        for name in by_name:
            self.gene(name)
        known_tags = {g.tag for g in self.genes}
        for tag in by_tag:
            if tag not in known_tags:
                raise ValueError(f"no gene is tagged {tag!r} (tags: {sorted(t for t in known_tags if t)})")
        genes = []
        for gene in self.genes:
            if gene.name in by_name:
                gene = gene.with_options(by_name[gene.name])
            elif gene.tag in by_tag:
                gene = gene.with_options(by_tag[gene.tag])
            genes.append(gene)
        return Space(genes, name=self.name)

    # ------------------------------------------------------------------ encodings
    def encode(self, arch: Mapping[str, Any], kind: str = "int") -> np.ndarray:
        """Integer (option index per gene, 0 when inactive) or one-hot (all-zero block when inactive) vector."""
        from nasengine.search_spaces.encoding import get_encoding

        return get_encoding(kind).encode(self, arch)

    def encode_many(self, archs: Iterable[Mapping[str, Any]], kind: str = "int") -> np.ndarray:
        from nasengine.search_spaces.encoding import get_encoding

        enc = get_encoding(kind)
        return np.stack([enc.encode(self, a) for a in archs])

    def decode(self, vector: Sequence[float] | np.ndarray, kind: str = "int") -> Arch:
        """Inverse of encode; integer vectors are rounded and must lie within each gene's index range."""
        from nasengine.search_spaces.encoding import get_encoding

        return get_encoding(kind).decode(self, vector)

    def encoding_width(self, kind: str = "int") -> int:
        from nasengine.search_spaces.encoding import get_encoding

        return get_encoding(kind).width(self)

    # ------------------------------------------------------------------ persistence
    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "genes": [g.to_dict() for g in self.genes]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Space":
        return cls((Choice.from_dict(g) for g in data["genes"]), name=data.get("name", ""))

    def __repr__(self) -> str:
        return f"Space({self.name!r}, genes={len(self)}, size={self.size})"
