"""Hamming range search of many query pHashes against a large pool: multi-index hashing.

Self-duplicates (:func:`backend.phash_pairs.near_pairs`) use probabilistic banding; a contamination
audit needs every pool hash within ``threshold`` bits of each eval hash, exactly, without
comparing all pairs. Multi-index hashing (Norouzi, Punjani & Fleet, 2012) gives that: split the
64 bits into ``m`` bands; two hashes within ``t`` bits differ in at most ``t // m`` bits in some
band (pigeonhole), so probing each band's table with every value within ``t // m`` bits of the
query's band finds every true neighbour, and each candidate is verified by its full distance.
``m`` is chosen by a cost model (probes x expected bucket size), so small pools use exact band
lookups and 10^7-row pools use wide bands with radius-2 probes (``bench/contamination.py``).
"""

from __future__ import annotations

from itertools import combinations

import numpy as np

from backend.phash_pairs import hamming

CANDIDATE_CHUNK = 8_000_000  # candidate pairs verified at a time (~200 MB of work arrays)


def band_layout(m: int) -> list[tuple[int, int]]:
    """(bit offset, width) of ``m`` near-equal bands covering 64 bits."""
    widths = [64 // m + (1 if i < 64 % m else 0) for i in range(m)]
    offsets = np.cumsum([0, *widths[:-1]]).tolist()
    return list(zip(offsets, widths, strict=True))


def flip_masks(width: int, radius: int) -> np.ndarray:
    """Every ``width``-bit mask with at most ``radius`` bits set (0 first)."""
    masks = [0]
    for r in range(1, radius + 1):
        masks.extend(sum(1 << b for b in bits) for bits in combinations(range(width), r))
    return np.array(masks, dtype=np.uint64)


def choose_bands(n: int, threshold: int) -> int:
    """The band count with the least expected work per query: probes x (1 + bucket). Bands are
    at most 22 bits wide, so each band's table of offsets (2^width entries) stays <= 32 MB."""
    best, best_cost = 1, float("inf")
    for m in range(max(3, threshold // 4), max(3, min(threshold + 1, 16)) + 1):  # <= 22 bits
        r = threshold // m
        probes = sum(len(flip_masks(w, r)) for _, w in band_layout(m))
        if probes > 50_000:
            continue
        bucket = n / 2.0 ** min(w for _, w in band_layout(m))
        cost = probes * (1 + bucket)
        if cost < best_cost:
            best, best_cost = m, cost
    return best


class HashIndex:
    """The pool's distinct pHashes, one sorted table per band; :meth:`query` finds every
    (query, pool row) pair within ``threshold`` bits."""

    def __init__(self, hashes: np.ndarray, row_ids: np.ndarray, threshold: int) -> None:
        if not 0 <= threshold <= 32:
            raise ValueError(f"pHash threshold must be 0..32 bits, got {threshold}")
        h = np.ascontiguousarray(hashes, dtype=np.int64).view(np.uint64)
        self.uniq, inverse = np.unique(h, return_inverse=True)
        order = np.argsort(inverse, kind="stable")
        self.rows = np.asarray(row_ids, dtype=np.int64)[order]  # rows grouped by distinct hash
        self.bounds = np.searchsorted(inverse[order], np.arange(len(self.uniq) + 1))
        self.threshold = threshold
        self.m = choose_bands(len(self.uniq), threshold)
        self.bands = []
        for off, width in band_layout(self.m):
            key = (self.uniq >> np.uint64(off)) & np.uint64((1 << width) - 1)
            srt = np.argsort(key, kind="stable")
            masks = flip_masks(width, threshold // self.m)
            # a band value's rows are srt[starts[v]:starts[v + 1]]: one lookup per probe
            starts = np.zeros((1 << width) + 1, dtype=np.int64)
            np.cumsum(np.bincount(key.astype(np.int64), minlength=1 << width), out=starts[1:])
            self.bands.append((off, width, starts, srt.astype(np.int64), masks))

    @property
    def method(self) -> str:
        r = self.threshold // self.m
        return (f"multi-index hashing: {self.m} bands of {64 // self.m}-{-(-64 // self.m)} bits, "
                f"probes within {r} bit{'s' if r != 1 else ''} per band (exact)")  # fmt: skip

    def _band_pairs(self, band, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(query index, distinct-hash index) candidates sharing a probed band value, verified."""
        off, width, starts, srt, masks = band
        qkey = (q >> np.uint64(off)) & np.uint64((1 << width) - 1)
        out_q, out_u = [], []
        step = max(1, 2_000_000 // len(masks))  # probes per slice, bounded
        for lo in range(0, len(q), step):
            probes = (qkey[lo : lo + step, None] ^ masks[None, :]).ravel().astype(np.int64)
            left = starts[probes]
            count = starts[probes + 1] - left
            qi = np.repeat(np.arange(lo, lo + len(qkey[lo : lo + step])), len(masks))
            hit = count > 0
            left, count, qi = left[hit], count[hit], qi[hit]
            for a, b in _slices(count, CANDIDATE_CHUNK):
                c = count[a:b]
                start = np.repeat(left[a:b] - np.cumsum(c) + c, c) + np.arange(int(c.sum()))
                cand_u, cand_q = srt[start], np.repeat(qi[a:b], c)
                keep = hamming(q[cand_q], self.uniq[cand_u]) <= self.threshold
                out_q.append(cand_q[keep])
                out_u.append(cand_u[keep])
        if not out_q:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        return np.concatenate(out_q), np.concatenate(out_u)

    def query(self, hashes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(query index, pool row id, Hamming distance) of every pair within the threshold,
        sorted by query then distance then row."""
        q = np.ascontiguousarray(hashes, dtype=np.int64).view(np.uint64)
        qs, us = [], []
        for band in self.bands:
            a, b = self._band_pairs(band, q)
            qs.append(a)
            us.append(b)
        qi, ui = np.concatenate(qs), np.concatenate(us)
        code = np.unique(qi * np.int64(len(self.uniq)) + ui)  # a pair found by several bands
        qi, ui = code // len(self.uniq), code % len(self.uniq)
        sizes = self.bounds[ui + 1] - self.bounds[ui]
        starts = np.repeat(self.bounds[ui] - np.cumsum(sizes) + sizes, sizes)
        rows = self.rows[starts + np.arange(int(sizes.sum()))]
        qi, ui = np.repeat(qi, sizes), np.repeat(ui, sizes)
        dist = hamming(q[qi], self.uniq[ui]).astype(np.int64)
        order = np.lexsort((rows, dist, qi))
        return qi[order], rows[order], dist[order]


def _slices(count: np.ndarray, budget: int) -> list[tuple[int, int]]:
    """Consecutive [a, b) ranges of ``count`` whose sums stay near ``budget`` (one range
    always holds at least one entry, however large)."""
    if len(count) == 0:
        return []
    cum = np.cumsum(count)
    out, a = [], 0
    while a < len(count):
        base = cum[a - 1] if a else 0
        b = int(np.searchsorted(cum, base + budget, "right"))
        b = max(b, a + 1)
        out.append((a, b))
        a = b
    return out


def brute_force(queries: np.ndarray, hashes: np.ndarray, row_ids: np.ndarray, threshold: int,
                block: int = 256) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """Every pair within ``threshold`` by comparing all of them: the baseline (bench, tests)."""
    q = np.ascontiguousarray(queries, dtype=np.int64).view(np.uint64)
    h = np.ascontiguousarray(hashes, dtype=np.int64).view(np.uint64)
    qs, rs, ds = [], [], []
    for lo in range(0, len(q), block):
        d = hamming(q[lo : lo + block, None], h[None, :])
        i, j = np.nonzero(d <= threshold)
        qs.append(i + lo)
        rs.append(np.asarray(row_ids)[j])
        ds.append(d[i, j].astype(np.int64))
    if not qs:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64)
    qi, rows, dist = np.concatenate(qs), np.concatenate(rs), np.concatenate(ds)
    order = np.lexsort((rows, dist, qi))
    return qi[order], rows[order], dist[order]
