"""Which random subnets a sandwich step trains besides the largest and smallest: a registry of samplers.

uniform           a uniform choice per gene (OFA, BigNAS); most draws land in the middle of the cost range.
cost-uniform      a cost band first, uniformly, then an arch of that band (AttentiveNAS's FLOPs-aware base
                  sampling): every cost level is trained as often.
attentive-best    cost-uniform, then the best of K candidates on this batch (AttentiveNAS BestUp, by minibatch loss).
attentive-worst   ... the worst of K (AttentiveNAS WorstUp): spend the step where the shared weights fit least.
complexity-shift  cost bands drawn in proportion to how far their loss lags (ShiftNAS-style complexity shift).

Samplers see training batches only (never a validation or test split). Bands split the cost range of a fixed pool
of archs into equal widths, per value of the step's shared genes (the resolution), so band draws respect the
step's resolution.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import numpy as np
import torch
from torch import nn

from nasengine.search_spaces.registry import Registry
from nasengine.search_spaces.space import Arch, Space

Scorer = Callable[[Arch], float]  # the loss of an arch on the current batch, without gradients
BANDS = 5
POOL = 1000
MIN_BAND = 20
CANDIDATES = 3


class SubnetSampler(ABC):
    """Draws the random subnets of one step; `observe` hears each trained subnet's loss; `state` is checkpointed."""

    name = ""
    batch_dependent = False  # draws depend on this process's batch or losses (so not on every rank alike)

    def bind(self, space: Space, cost: Callable[[Arch], float]) -> None:
        """Called when a training phase starts with the phase's space and the supernet's cost (MACs) of an arch."""
        self.space, self.cost = space, cost

    @abstractmethod
    def draw(self, rng: np.random.Generator, n: int, shared: dict[str, Any], score: Scorer) -> list[Arch]:
        """`n` archs with the `shared` genes set; `score` ranks candidates on this batch where a sampler needs it."""

    def observe(self, arch: Arch, loss: float) -> None:
        """The training loss of a subnet this sampler drew (before the optimizer step)."""

    def state(self) -> dict[str, Any]:
        return {}

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore what `state` returned (a resumed run continues on the same draws)."""


class Uniform(SubnetSampler):
    name = "uniform"

    def draw(self, rng: np.random.Generator, n: int, shared: dict[str, Any], score: Scorer) -> list[Arch]:
        return [{**self.space.sample(rng=rng), **shared} for _ in range(n)]


class CostUniform(SubnetSampler):
    """A band of equal probability, then a uniform member of a fixed pool of archs of that band."""

    name = "cost-uniform"

    def bind(self, space: Space, cost: Callable[[Arch], float]) -> None:
        super().bind(space, cost)
        self._pools: dict[str, list[list[Arch]]] = {}

    def bands(self, shared: dict[str, Any]) -> list[list[Arch]]:
        """A fixed pool of archs with the `shared` genes, split into BANDS of equal width in cost (built once per
        value; a band with fewer than MIN_BAND archs joins its neighbour, so the ends are not a handful of archs)."""
        key = repr(sorted(shared.items()))
        if key not in self._pools:
            rng = np.random.default_rng(int(hashlib.sha1(key.encode()).hexdigest()[:12], 16))  # same on resume
            archs = [self.space.validate({**self.space.sample(rng=rng), **shared}) for _ in range(POOL)]
            costs = np.array([self.cost(a) for a in archs])
            edges = np.linspace(costs.min(), costs.max(), BANDS + 1)[1:-1]
            index = np.searchsorted(edges, costs, side="right")
            bands = [[archs[i] for i in np.flatnonzero(index == b)] for b in range(BANDS)]
            merged: list[list[Arch]] = []
            for band in bands:  # small bands join the next one (the last small one joins the previous)
                if merged and len(merged[-1]) < MIN_BAND:
                    merged[-1] += band
                else:
                    merged.append(list(band))
            if len(merged) > 1 and len(merged[-1]) < MIN_BAND:
                merged[-2] += merged.pop()
            self._pools[key] = [band for band in merged if band]
        return self._pools[key]

    def band_weights(self, count: int) -> np.ndarray:
        return np.full(count, 1.0 / count)

    def candidates(self, rng: np.random.Generator, shared: dict[str, Any], k: int) -> tuple[int, list[Arch]]:
        bands = self.bands(shared)
        band = int(rng.choice(len(bands), p=self.band_weights(len(bands))))
        members = bands[band]
        chosen = [members[int(i)] for i in rng.integers(0, len(members), k)]
        self._drawn = {self.space.key(a): band for a in chosen}
        return band, chosen

    def draw(self, rng: np.random.Generator, n: int, shared: dict[str, Any], score: Scorer) -> list[Arch]:
        return [self.candidates(rng, shared, 1)[1][0] for _ in range(n)]


class AttentiveBest(CostUniform):
    """AttentiveNAS BestUp-K: of K candidates of one cost band, the one with the lowest loss on this batch."""

    name = "attentive-best"
    batch_dependent = True
    pick = staticmethod(np.argmin)

    def draw(self, rng: np.random.Generator, n: int, shared: dict[str, Any], score: Scorer) -> list[Arch]:
        out = []
        for _ in range(n):
            _, candidates = self.candidates(rng, shared, CANDIDATES)
            out.append(candidates[int(self.pick([score(a) for a in candidates]))])
        return out


class AttentiveWorst(AttentiveBest):
    """AttentiveNAS WorstUp-K: the candidate with the highest loss on this batch."""

    name = "attentive-worst"
    pick = staticmethod(np.argmax)


class ComplexityShift(CostUniform):
    """Bands drawn in proportion to their running loss relative to the mean band (half the mass stays uniform, so
    no band starves); the shift follows the training as the lagging bands catch up."""

    name = "complexity-shift"
    batch_dependent = True
    decay = 0.98

    def bind(self, space: Space, cost: Callable[[Arch], float]) -> None:
        super().bind(space, cost)
        self._loss = np.zeros(BANDS)
        self._seen = np.zeros(BANDS)

    def band_weights(self, count: int) -> np.ndarray:
        uniform = np.full(count, 1.0 / count)
        if not self._seen[:count].all():
            return uniform
        lag = self._loss[:count] / self._loss[:count].mean()
        return 0.5 * uniform + 0.5 * lag / lag.sum()

    def draw(self, rng: np.random.Generator, n: int, shared: dict[str, Any], score: Scorer) -> list[Arch]:
        out, bands = [], {}
        for _ in range(n):
            out.append(self.candidates(rng, shared, 1)[1][0])
            bands.update(self._drawn)
        self._drawn = bands
        return out

    def observe(self, arch: Arch, loss: float) -> None:
        band = getattr(self, "_drawn", {}).get(self.space.key(arch))
        if band is None:  # the largest and smallest subnets are trained every step whatever the sampler does
            return
        self._loss[band] = loss if not self._seen[band] else self.decay * self._loss[band] + (1 - self.decay) * loss
        self._seen[band] = 1

    def state(self) -> dict[str, Any]:
        return {"loss": self._loss.tolist(), "seen": self._seen.tolist()}

    def load_state(self, state: dict[str, Any]) -> None:
        self._loss, self._seen = np.array(state["loss"], float), np.array(state["seen"], float)


SAMPLERS: Registry[Callable[[], SubnetSampler]] = Registry("subnet sampler")
for _cls in (Uniform, CostUniform, AttentiveBest, AttentiveWorst, ComplexityShift):
    SAMPLERS.add(_cls.name, _cls)


def get_sampler(name: str) -> SubnetSampler:
    return SAMPLERS.get(name)()


@contextmanager
def frozen_norm_statistics(net: nn.Module) -> Iterator[None]:
    """Forward passes that leave every batch norm's running statistics as they were (momentum 0 meanwhile)."""
    norms = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [(m.momentum, m.num_batches_tracked.clone() if m.num_batches_tracked is not None else None) for m in norms]
    for m in norms:
        m.momentum = 0.0
    try:
        with torch.no_grad():
            yield
    finally:
        for m, (momentum, tracked) in zip(norms, saved):
            m.momentum = momentum
            if tracked is not None:
                m.num_batches_tracked.copy_(tracked)
