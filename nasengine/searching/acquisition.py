"""Which predicted candidates deserve a real evaluation: expected hypervolume improvement over the real front.

Each candidate has a predicted mean and spread per objective (costs, minimised) and a probability of meeting the
constraints. Its acquisition is the hypervolume it is expected to add to the front of the real evaluations,
estimated by Monte Carlo over the same standard-normal draws for every candidate (common random numbers: the
ranking is not noise), times its probability of being feasible. A batch is chosen greedily: after each pick the
front is extended by the pick at its predicted mean (the "believer" rule), so later picks go where the front is
still thin, and candidates within `min_distance` genes of a pick wait until nothing else adds anything, so the
batch is spread in the space as well as along the front. All costs are normalised by the real front's ideal and
nadir, with the reference point at 1.1, as the reports compute hypervolume.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import norm

REFERENCE = 1.1
SAMPLES = 32


def nondominated(points: np.ndarray) -> np.ndarray:
    """The rows of `points` (minimised) that no other row dominates (duplicates kept once)."""
    from nasengine.reporting.fronts import pareto_mask  # reporting builds on searching: imported when used

    points = np.unique(np.asarray(points, dtype=float), axis=0)
    return points[pareto_mask(points)]


def hypervolume_gain_2d(points: np.ndarray, front: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Exact hypervolume each of `points` (n, 2) would add to `front` (k, 2) below `reference`, vectorised: the
    area between the point's corner and the front's staircase, summed over the staircase's steps."""
    points = np.asarray(points, dtype=float)
    front = nondominated(front) if len(front) else np.zeros((0, 2))
    front = front[np.argsort(front[:, 0])]
    starts = np.concatenate([[-np.inf], front[:, 0]])  # step j spans [starts[j], starts[j+1]) at height heights[j]
    ends = np.concatenate([front[:, 0], [np.inf]])
    heights = np.concatenate([[reference[1]], front[:, 1]])
    left = np.maximum(starts[None, :], points[:, :1])
    right = np.minimum(ends[None, :], reference[0])
    width = np.clip(right - left, 0.0, None)
    height = np.clip(np.minimum(heights[None, :], reference[1]) - points[:, 1:2], 0.0, None)
    return (width * height).sum(axis=1)


def hypervolume_gain(points: np.ndarray, front: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Hypervolume each of `points` would add to `front` below `reference` (exact; any number of objectives)."""
    points = np.asarray(points, dtype=float)
    if points.shape[1] == 2:
        return hypervolume_gain_2d(points, front, reference)
    from pymoo.indicators.hv import HV

    indicator = HV(ref_point=np.asarray(reference, dtype=float))
    base = float(indicator(front)) if len(front) else 0.0
    return np.array([float(indicator(np.vstack([front, p[None, :]]))) - base if np.all(p < reference) else 0.0
                     for p in points])


@dataclass(frozen=True)
class Candidates:
    """Predicted costs of the candidates (n, m; minimised), their spread (n, m), their probability of meeting the
    constraints (n,), and their encodings (n, d) for telling close candidates apart (one-hot: distance in genes)."""

    mean: np.ndarray
    std: np.ndarray
    feasible: np.ndarray
    encodings: np.ndarray


def probability_feasible(violation_mean: np.ndarray, violation_std: np.ndarray) -> np.ndarray:
    """P(every violation <= 0) under independent normal predictions (n, c); a zero spread is a sure answer."""
    if violation_mean.shape[1] == 0:
        return np.ones(len(violation_mean))
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(violation_std > 0, -violation_mean / np.where(violation_std > 0, violation_std, 1.0),
                     np.where(violation_mean <= 0, np.inf, -np.inf))
    return norm.cdf(z).prod(axis=1)


class ExpectedImprovement:
    """Scores and picks candidates by expected hypervolume improvement over a real front (see the module)."""

    def __init__(self, front: np.ndarray, samples: int = SAMPLES, seed: int = 0, min_distance: float = 2.0):
        front = np.asarray(front, dtype=float)
        self.ideal = front.min(axis=0)
        span = front.max(axis=0) - self.ideal
        self.scale = np.where(span > 0, span, np.maximum(np.abs(self.ideal), 1.0) * 0.1)
        self.front = nondominated(self.normalise(front))
        self.reference = np.full(front.shape[1], REFERENCE)
        self.draws = np.random.default_rng(seed).standard_normal((samples, front.shape[1]))
        self.min_distance = min_distance

    def normalise(self, costs: np.ndarray) -> np.ndarray:
        return (np.asarray(costs, dtype=float) - self.ideal) / self.scale

    def expected_gain(self, candidates: Candidates, front: np.ndarray) -> np.ndarray:
        """Monte Carlo expected hypervolume improvement of each candidate over `front` (normalised units)."""
        mean, std = self.normalise(candidates.mean), candidates.std / self.scale
        n, m = mean.shape
        draws = (mean[:, None, :] + std[:, None, :] * self.draws[None, :, :]).reshape(-1, m)
        gains = hypervolume_gain(draws, front, self.reference).reshape(n, len(self.draws))
        return gains.mean(axis=1) * candidates.feasible

    def pick(self, candidates: Candidates, n: int) -> list[int]:
        """Up to `n` candidates in the order chosen (greedy, believer rule, spread in the encoding); only those
        expected to add hypervolume, so fewer than `n` when the predictions promise nothing more."""
        front = self.front
        chosen: list[int] = []
        distance = np.full(len(candidates.mean), np.inf)  # genes apart from the nearest pick
        for _ in range(min(n, len(candidates.mean))):
            gain = self.expected_gain(candidates, front)
            gain[chosen] = 0.0
            far = distance >= self.min_distance
            pool = np.flatnonzero(far & (gain > 0))
            if not len(pool):
                pool = np.flatnonzero(gain > 0)
            if not len(pool):
                break
            best = int(pool[np.argmax(gain[pool])])
            chosen.append(best)
            front = nondominated(np.vstack([front, self.normalise(candidates.mean[best])[None, :]]))
            apart = np.abs(candidates.encodings - candidates.encodings[best]).sum(axis=1) / 2.0
            distance = np.minimum(distance, apart)
        return chosen
