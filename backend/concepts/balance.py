"""MetaCLIP balancing: cap every entry's count at ``t`` by sampling rows.

Rule (Xu et al., "Demystifying CLIP Data", Alg. 1): an entry matched by ``count > t`` rows keeps
each of its rows with probability ``t / count`` (independent draws per row and entry); a row is
kept when any of its entries keeps it; rows that match no entry are dropped. So an entry whose
rows match it alone ends with ``min(count, t)`` rows in expectation, and one that shares rows
with other entries ends at or above that.
"""

from __future__ import annotations

import numpy as np


def keep_prob(counts: np.ndarray, t: float) -> np.ndarray:
    """Per entry, the chance that it keeps one of its rows: ``min(1, t / count)``."""
    c = np.asarray(counts, dtype=float)
    with np.errstate(divide="ignore"):
        return np.where(c > t, t / np.maximum(c, 1), 1.0)


def balance(rows: np.ndarray, ids: np.ndarray, counts: np.ndarray, t: float,
            seed: int = 0) -> np.ndarray:  # fmt: skip
    """Sorted row ids kept by MetaCLIP's rule; the same hits, ``t`` and ``seed`` give the same
    rows (the draws follow the hits in (row, entry) order, whatever order they came in)."""
    if t <= 0:
        raise ValueError("t must be positive")
    rows = np.asarray(rows, dtype=np.int64)
    ids = np.asarray(ids, dtype=np.int64)
    order = np.lexsort((ids, rows))
    rows, ids = rows[order], ids[order]
    u = np.random.default_rng(seed).random(len(rows))
    kept = u < keep_prob(counts, t)[ids]
    return np.unique(rows[kept])


def expected_counts(rows: np.ndarray, ids: np.ndarray, counts: np.ndarray, t: float) -> dict:
    """Exact expected outcome of :func:`balance`, without sampling: per entry its expected
    count, and the expected number of rows kept. A row is kept with probability
    ``1 - prod(1 - p_e)`` over its entries ``e``."""
    rows = np.asarray(rows, dtype=np.int64)
    ids = np.asarray(ids, dtype=np.int64)
    p = keep_prob(counts, t)
    if not len(rows):
        return {"entry": np.zeros(len(counts)), "rows": 0.0}
    uniq, inv = np.unique(rows, return_inverse=True)
    with np.errstate(divide="ignore"):
        log_drop = np.bincount(inv, weights=np.log1p(-np.minimum(p[ids], 1 - 1e-300)),
                               minlength=len(uniq))  # fmt: skip
    p_row = 1 - np.exp(log_drop)
    p_row[np.bincount(inv, weights=(p[ids] >= 1), minlength=len(uniq)) > 0] = 1.0
    entry = np.bincount(ids, weights=p_row[inv], minlength=len(counts))
    return {"entry": entry, "rows": float(p_row.sum())}
