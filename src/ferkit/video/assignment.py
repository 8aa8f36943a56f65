"""Optimal one-to-one matching of rows to columns (the Hungarian method), for face tracking.

Written here so that video needs no SciPy: a frame has a few faces, and the O(n^2 m) method on
plain lists takes microseconds for them.
"""

from __future__ import annotations

import math

import numpy as np


def max_weight_matching(weights: np.ndarray) -> list[tuple[int, int]]:
    """The (row, column) pairs, each row and each column used at most once and min(rows, columns)
    pairs in all, whose weights add up to the largest total (as SciPy's
    ``linear_sum_assignment(weights, maximize=True)``), sorted by row.

    Args:
        weights: a 2-D array of finite numbers (e.g. the overlap of tracks and faces).
    """
    table = np.asarray(weights, dtype=np.float64)
    if table.ndim != 2 or not np.isfinite(table).all():
        raise ValueError(f"weights must be a 2-D array of finite numbers, got shape {table.shape}")
    transposed = table.shape[0] > table.shape[1]
    cost = (-(table.T if transposed else table)).tolist()  # rows <= columns; largest weight = least cost
    pairs = [(row, column) for column, row in enumerate(_least_cost_rows(cost)) if row >= 0]
    if transposed:
        pairs = [(column, row) for row, column in pairs]
    return sorted(pairs)


def _least_cost_rows(cost: list[list[float]]) -> list[int]:
    """For each column, the row assigned to it (-1: none) in a least-cost assignment of every row,
    with len(cost) <= len(cost[0]); the shortest-augmenting-path form with potentials u, v."""
    n = len(cost)
    m = len(cost[0]) if n else 0
    u, v = [0.0] * (n + 1), [0.0] * (m + 1)
    row_of = [0] * (m + 1)  # 1-based row matched to column j (index 0: the row being added); 0: none
    way = [0] * (m + 1)
    for i in range(1, n + 1):
        row_of[0], j0 = i, 0
        least = [math.inf] * (m + 1)
        used = [False] * (m + 1)
        while True:
            used[j0] = True
            i0, delta, j1 = row_of[j0], math.inf, 0
            for j in range(1, m + 1):
                if not used[j]:
                    reduced = cost[i0 - 1][j - 1] - u[i0] - v[j]
                    if reduced < least[j]:
                        least[j], way[j] = reduced, j0
                    if least[j] < delta:
                        delta, j1 = least[j], j
            for j in range(m + 1):
                if used[j]:
                    u[row_of[j]] += delta
                    v[j] -= delta
                else:
                    least[j] -= delta
            j0 = j1
            if row_of[j0] == 0:
                break
        while j0:  # flip the augmenting path
            j1 = way[j0]
            row_of[j0] = row_of[j1]
            j0 = j1
    return [row - 1 for row in row_of[1:]]
