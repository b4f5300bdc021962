"""pHash near-duplicate pairs: Hamming distance between 64-bit hashes, found by banding
(multi-index hashing) above a few thousand distinct hashes, by all pairs below.

Shared by the dedup step, the scorer evaluation and the contamination audit.
"""

from __future__ import annotations

import numpy as np

from backend.dup_groups import leader_groups

PHASH_THRESHOLD = 8
"""Hamming distance (of 64 bits). Measured on the demo: planted re-encodes, resizes and
brightness changes are 0-2 bits from their original, a text watermark 4, a 90% centre crop 8;
unrelated pairs are ≥ 10 bits apart except for 0.1% of them. 8 is also a common pHash cut-off."""
BANDS = 4  # 16-bit bands per table
PAIR_BUDGET = 200_000_000  # expected candidate pairs (uniform hashes) that decides the tables
EXACT_MAX = 20_000  # below this, all pairs are cheaper than banding and exact


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.bitwise_count(np.bitwise_xor(a.view(np.uint64), b.view(np.uint64)))


def _band_keys(h: np.ndarray, perm: np.ndarray | None) -> list[np.ndarray]:
    """The 16-bit band values of each hash (after permuting its bits by ``perm``)."""
    if perm is not None:
        out = np.zeros_like(h)
        for dst, src in enumerate(perm):
            out |= ((h >> np.uint64(src)) & np.uint64(1)) << np.uint64(dst)
        h = out
    return [((h >> np.uint64(16 * k)) & np.uint64(0xFFFF)).astype(np.int64) for k in range(BANDS)]


def _same_key_pairs(key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All (i, j) with equal ``key``, generated group by group (work ∝ pairs, not n²)."""
    order = np.argsort(key, kind="stable")
    sk = key[order]
    starts = np.flatnonzero(np.r_[True, sk[1:] != sk[:-1]])
    ends = np.r_[starts[1:], len(sk)]
    end = np.repeat(ends, ends - starts)
    pos = np.arange(len(sk))
    active = pos[end - pos > 1]
    ii, jj = [], []
    d = 1
    while active.size:
        ii.append(order[active])
        jj.append(order[active + d])
        d += 1
        active = active[end[active] - active > d]
    if not ii:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(ii), np.concatenate(jj)


def tables_for(n: int) -> int:
    """How many banding tables fit :data:`PAIR_BUDGET` (uniform hashes: n²/2/65536 pairs per
    band); more tables find more pairs that differ in more bits."""
    per_table = BANDS * n * n / 2 / 65536
    return int(np.clip(PAIR_BUDGET // max(per_table, 1), 1, 16))


def _unique_pairs(uniq: np.ndarray, threshold: int, tables: int, seed: int = 0):
    """Pairs (a < b) of indices into the distinct hashes ``uniq`` within ``threshold``."""
    rng = np.random.default_rng(seed)
    ai, bi = [], []
    for t in range(tables):
        perm = None if t == 0 else rng.permutation(64)
        for key in _band_keys(uniq, perm):
            i, j = _same_key_pairs(key)
            keep = hamming(uniq[i], uniq[j]) <= threshold
            ai.append(np.minimum(i[keep], j[keep]))
            bi.append(np.maximum(i[keep], j[keep]))
    if not ai:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    m = max(len(uniq), 1)
    code = np.unique(np.concatenate(ai).astype(np.int64) * m + np.concatenate(bi))
    return code // m, code % m


def near_pairs(
    hashes: np.ndarray, threshold: int = PHASH_THRESHOLD, tables: int | None = None, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (i < j) of 64-bit hashes at Hamming distance ≤ ``threshold``, by banding.

    Each table splits the (bit-permuted) hash into 4 bands of 16 bits; pairs sharing a band
    value are candidates, verified by their true distance. A pair within 3 bits always shares a
    band (pigeonhole); farther pairs are found with a probability that grows with ``tables``
    (default: :func:`tables_for` the number of distinct hashes). Identical hashes are collapsed
    first, so a hash repeated a thousand times is one entry. The bench measures recall against
    all pairs.
    """
    h = np.ascontiguousarray(hashes).view(np.uint64)
    uniq, inverse = np.unique(h, return_inverse=True)
    a, b = _unique_pairs(uniq, threshold, tables or tables_for(len(uniq)), seed)
    order = np.argsort(inverse, kind="stable")
    bounds = np.searchsorted(inverse[order], np.arange(len(uniq) + 1))
    rows_of = [order[bounds[u] : bounds[u + 1]] for u in range(len(uniq))] if a.size or (
        len(uniq) < len(h)) else []
    ii, jj = [], []
    for x, y in zip(a.tolist(), b.tolist(), strict=True):
        ii.append(np.repeat(rows_of[x], len(rows_of[y])))
        jj.append(np.tile(rows_of[y], len(rows_of[x])))
    for rows in rows_of:
        if len(rows) > 1:
            i, j = np.triu_indices(len(rows), 1)
            ii.append(rows[i])
            jj.append(rows[j])
    if not ii:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    i, j = np.concatenate(ii).astype(np.int64), np.concatenate(jj).astype(np.int64)
    return np.minimum(i, j), np.maximum(i, j)


def phash_groups(
    n: int, row_ids: np.ndarray, hashes: np.ndarray, threshold: int = PHASH_THRESHOLD
) -> tuple[np.ndarray, str]:
    """Group id per row (-1 when unique) from the rows' pHashes, and how pairs were found.

    Distinct hashes are clustered by leader clustering, the hash with the most neighbours
    leading first (ties: the lowest row): a re-upload's neighbours are its original's, so the
    original leads and a copy that lies near it but far from another copy is not left out, as it
    would be if the first copy in row order led. Every row then takes its hash's group (rows
    sharing a hash are always together); a group's id is its lowest row."""
    h = np.ascontiguousarray(hashes).view(np.uint64)
    uniq, inverse = np.unique(h, return_inverse=True)
    first_row = np.full(len(uniq), np.iinfo(np.int64).max)
    np.minimum.at(first_row, inverse, row_ids)
    order = np.argsort(first_row, kind="stable")  # relabel distinct hashes by lowest row
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    uniq, inverse, first_row = uniq[order], rank[inverse], first_row[order]
    if len(uniq) <= EXACT_MAX:
        a, b = all_pairs(uniq, threshold)
        method = "all pairs"
    else:
        tables = tables_for(len(uniq))
        a, b = _unique_pairs(uniq, threshold, tables)
        method = f"banding: {tables} tables x {BANDS} bands of 16 bits"
    degree = np.bincount(np.concatenate([a, b]), minlength=len(uniq))
    g_u = leader_groups(len(uniq), a, b, order=np.lexsort((first_row, -degree)))
    lead = np.where(g_u >= 0, g_u, np.arange(len(uniq)))  # each hash's leading distinct hash
    lowest = np.full(len(uniq), np.iinfo(np.int64).max)
    np.minimum.at(lowest, lead, first_row)
    rep = lowest[lead[inverse]]
    size = np.bincount(lead[inverse], minlength=len(uniq))
    group = np.full(n, -1, dtype=np.int64)
    dup = size[lead[inverse]] > 1
    group[row_ids[dup]] = rep[dup]
    return group, method


def all_pairs(hashes: np.ndarray, threshold: int = PHASH_THRESHOLD, block: int = 2048):
    """Every pair (i < j) within ``threshold``, comparing all pairs: the exact baseline."""
    h = np.ascontiguousarray(hashes).view(np.uint64)
    ii, jj = [], []
    for lo in range(0, len(h), block):
        d = hamming(h[lo : lo + block, None], h[None, :])
        i, j = np.nonzero(d <= threshold)
        i = i + lo
        keep = j > i
        ii.append(i[keep])
        jj.append(j[keep])
    if not ii:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(ii).astype(np.int64), np.concatenate(jj).astype(np.int64)
