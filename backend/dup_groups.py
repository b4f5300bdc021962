"""Duplicate groups from similar pairs or equal keys: every member within the threshold of
its group's representative, which is the group's lowest row.

Leader clustering (a row not yet grouped leads its unassigned neighbours) keeps groups from
chaining across the whole dataset, as connected components would.
"""

from __future__ import annotations

import numpy as np


def leader_groups(
    n: int, i: np.ndarray, j: np.ndarray, order: np.ndarray | None = None
) -> np.ndarray:
    """Group id per row (-1 when unique) from similar pairs, by leader clustering: rows are
    taken in ``order`` (default: row order); one not yet grouped leads and takes its neighbours
    not yet grouped. Every member is similar to its leader (groups never chain); the id is the
    leader's row."""
    group = np.full(n, -1, dtype=np.int64)
    if len(i) == 0:
        return group
    rank = np.arange(n)
    if order is not None:
        rank[order] = np.arange(n)
    first = rank[i] <= rank[j]
    a, b = np.where(first, i, j), np.where(first, j, i)
    pairs = np.lexsort((rank[b], rank[a]))
    a, b = a[pairs], b[pairs]
    for x, y in zip(a.tolist(), b.tolist(), strict=True):
        if group[x] == -1:
            group[x] = x
        if group[x] == x and group[y] == -1:
            group[y] = x
    singles = np.bincount(group[group >= 0], minlength=n) == 1  # leaders whose partners left
    group[(group >= 0) & singles[np.maximum(group, 0)]] = -1
    return group


def equal_groups(keys: np.ndarray) -> np.ndarray:
    """Group id per row (-1 when unique) for rows with equal keys; the lowest row leads.
    ``keys``: integer codes, -1 for "no key" (never grouped)."""
    n = len(keys)
    group = np.full(n, -1, dtype=np.int64)
    ok = keys >= 0
    if not ok.any():
        return group
    rows = np.arange(n)[ok]
    _, first, inverse, counts = np.unique(
        keys[ok], return_index=True, return_inverse=True, return_counts=True
    )
    rep = rows[first][inverse]  # np.unique's first index is the lowest row of each key
    dup = counts[inverse] > 1
    group[rows[dup]] = rep[dup]
    return group
