"""Expected hypervolume improvement: exact 2-D gains, the Monte Carlo estimate, feasibility and batch spread."""

from __future__ import annotations

import numpy as np
import pytest

from nasengine.searching.acquisition import (Candidates, ExpectedImprovement, hypervolume_gain, hypervolume_gain_2d,
                                             nondominated, probability_feasible)
from nasengine.searching.hypervolume import normalised_hypervolume


def _hv(points: np.ndarray, reference: float) -> float:
    """Hypervolume of already-normalised points with the report's own code (ideal 0, nadir 1)."""
    return normalised_hypervolume(points, [0.0, 0.0], [1.0, 1.0], reference=reference) if len(points) else 0.0


def test_2d_gain_equals_the_difference_of_hypervolumes() -> None:
    rng = np.random.default_rng(0)
    front = nondominated(rng.random((12, 2)))
    points = rng.random((200, 2)) * 1.2 - 0.1
    gains = hypervolume_gain_2d(points, front, np.array([1.1, 1.1]))
    want = [_hv(np.vstack([front, p]), 1.1) - _hv(front, 1.1) for p in points]
    np.testing.assert_allclose(gains, want, atol=1e-12)
    assert (gains[np.array([np.any(np.all(front <= p, axis=1)) for p in points])] == 0).all()  # dominated: nothing


def test_3d_gain_matches_pymoo_and_is_zero_outside_the_reference() -> None:
    from pymoo.indicators.hv import HV

    rng = np.random.default_rng(1)
    front = nondominated(rng.random((8, 3)))
    points = np.vstack([rng.random((20, 3)), [[1.2, 0.0, 0.0]]])
    gains = hypervolume_gain(points, front, np.full(3, 1.1))
    hv = HV(ref_point=np.full(3, 1.1))
    np.testing.assert_allclose(gains[:-1], [hv(np.vstack([front, p])) - hv(front) for p in points[:-1]], atol=1e-12)
    assert gains[-1] == 0.0


def test_expected_gain_rewards_uncertainty_only_where_it_can_pay() -> None:
    front = np.array([[0.0, 1.0], [0.5, 0.5], [1.0, 0.0]])
    acquisition = ExpectedImprovement(front, samples=256, seed=0)
    behind = np.array([[0.8, 0.8], [0.8, 0.8]])  # dominated by the middle point at its mean
    candidates = Candidates(behind, np.array([[0.0, 0.0], [0.3, 0.3]]), np.ones(2), np.eye(2))
    gain = acquisition.expected_gain(candidates, acquisition.front)
    assert gain[0] == 0.0 and gain[1] > 0.0  # a sure loser adds nothing; an unsure one might


def test_feasibility_scales_the_gain() -> None:
    p = probability_feasible(np.array([[-1.0], [0.0], [1.0], [-0.5]]), np.array([[1.0], [1.0], [1e-9], [0.0]]))
    np.testing.assert_allclose(p, [0.8413447, 0.5, 0.0, 1.0], atol=1e-6)
    assert probability_feasible(np.zeros((3, 0)), np.zeros((3, 0))).tolist() == [1.0, 1.0, 1.0]


def test_batch_spreads_along_the_front_and_in_the_encoding() -> None:
    front = np.array([[0.0, 1.0], [1.0, 0.0]])
    acquisition = ExpectedImprovement(front, seed=0)
    # two near-identical candidates in the best place, one elsewhere on the front's gap
    mean = np.array([[0.30, 0.30], [0.31, 0.31], [0.7, 0.1]])
    onehot = np.array([[1, 0, 1, 0], [1, 0, 1, 0], [0, 1, 0, 1]], dtype=float)
    picked = acquisition.pick(Candidates(mean, np.zeros_like(mean), np.ones(3), onehot), 2)
    assert picked == [0, 2]  # the twin of the first pick waits
    assert acquisition.pick(Candidates(mean, np.zeros_like(mean), np.zeros(3), onehot), 2) == []  # all infeasible


@pytest.mark.parametrize("n", [1, 3])
def test_pick_stops_when_nothing_improves(n: int) -> None:
    acquisition = ExpectedImprovement(np.array([[0.0, 0.0]]), seed=0)  # a single ideal point dominates all
    mean = np.array([[0.1, 0.1], [0.5, 0.2]])
    assert acquisition.pick(Candidates(mean, np.zeros_like(mean), np.ones(2), np.eye(2)), n) == []
