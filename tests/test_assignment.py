"""The tracker's matching: the largest total weight, checked against every possible matching."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from ferkit.video.assignment import max_weight_matching


def _best_total(weights: np.ndarray) -> float:
    rows, columns = weights.shape
    if rows > columns:
        return _best_total(weights.T)
    return max((sum(weights[r, c] for r, c in zip(range(rows), chosen)) for chosen in
                itertools.permutations(range(columns), rows)), default=0.0)


@pytest.mark.parametrize("seed", range(4))
def test_the_matching_has_the_largest_total_on_every_shape(seed: int):
    rng = np.random.default_rng(seed)
    for rows, columns in itertools.product(range(6), repeat=2):
        weights = rng.random((rows, columns)) if seed % 2 else rng.integers(0, 3, (rows, columns)).astype(float)
        pairs = max_weight_matching(weights)
        assert len(pairs) == min(rows, columns)
        assert len({r for r, _ in pairs}) == len({c for _, c in pairs}) == len(pairs)  # each used once
        assert pairs == sorted(pairs)
        assert sum(weights[r, c] for r, c in pairs) == pytest.approx(_best_total(weights), abs=1e-12)


def test_greedy_is_not_enough():
    # Greedy would take the 0.9 pair and leave 0.1: the best matching gives up the largest overlap.
    weights = np.array([[0.9, 0.8], [0.7, 0.1]])
    assert max_weight_matching(weights) == [(0, 1), (1, 0)]
    assert max_weight_matching(weights.T) == [(0, 1), (1, 0)]
    assert max_weight_matching(np.array([[0.2, 0.6, 0.5]])) == [(0, 1)]


def test_bad_weights_are_refused():
    with pytest.raises(ValueError, match="2-D array of finite numbers"):
        max_weight_matching(np.array([1.0, 2.0]))
    with pytest.raises(ValueError, match="finite"):
        max_weight_matching(np.array([[np.nan, 1.0]]))
