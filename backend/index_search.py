"""Search a FAISS index under row-id filters (exact on small allowed sets, IVF probing widened for
sparse filters and cross-modal queries, exact re-rank from the original vectors), and the small
helpers on faiss index proxies that building and loading share (:mod:`backend.index`).

Scores are inner products of L2-normalised vectors (cosine similarity, higher is closer). Missing
result slots are id -1 with score -inf: callers must drop them.
"""

from __future__ import annotations

import math
from typing import Any

import faiss
import numpy as np

CROSS_MODAL_PROBE = 4  # IVF lists probed for a text query on image vectors, × nprobe (bench)
EXACT_FILTER_MAX = 20_000  # allowed rows scored exactly: ~1 µs a row from vectors, ~2 µs decoded


def _rows(vectors: np.ndarray, which: slice | np.ndarray) -> np.ndarray:
    """Rows as a fresh, L2-normalised float32 array (only these rows are converted)."""
    x = np.ascontiguousarray(vectors[which], dtype=np.float32)
    if x.base is not None or x is vectors:  # never normalise the caller's array in place
        x = x.copy()
    faiss.normalize_L2(x)
    return x


def _ivf(index: faiss.Index) -> faiss.IndexIVF | None:
    ivf = faiss.try_extract_index_ivf(index)
    return faiss.downcast_index(ivf) if ivf is not None else None


def _apply_params(index: faiss.Index, params: dict[str, Any]) -> None:
    """Set nprobe / quantizer efSearch on the index and remember k_factor beside it."""
    ivf = _ivf(index)
    if ivf is not None:
        ivf.nprobe = int(params.get("nprobe") or ivf.nprobe)
        quantizer = faiss.downcast_index(ivf.quantizer)
        if isinstance(quantizer, faiss.IndexHNSW) and params.get("ef_search"):
            quantizer.hnsw.efSearch = int(params["ef_search"])
    _attach(index, params={**_attached(index).get("params", {}), **params})


def _attach(index: faiss.Index, **info: Any) -> None:
    """Keep build/search facts on the Python proxy (faiss blocks plain attribute assignment)."""
    object.__setattr__(index, "_tailscope", {**_attached(index), **info})


def _attached(index: faiss.Index) -> dict[str, Any]:
    return dict(getattr(index, "_tailscope", {}))


def _selector(allowed: np.ndarray, n: int) -> tuple[faiss.IDSelector, np.ndarray | None]:
    """A bitmap selector (O(1) test, n/8 bytes, ~ms to fill) unless n is huge and the set small,
    then a hash set (IDSelectorBatch costs ~0.27 µs an id to build). Keep the array alive."""
    if n // 8 <= max(allowed.size * 16, 1 << 24):
        bitmap = np.zeros((n + 7) // 8, dtype=np.uint8)
        byte = allowed >> 3
        starts = np.flatnonzero(np.r_[True, byte[1:] != byte[:-1]])
        bits = np.left_shift(1, allowed & 7).astype(np.uint8)
        bitmap[byte[starts]] = np.bitwise_or.reduceat(bits, starts)
        return faiss.IDSelectorBitmap(bitmap), bitmap
    return faiss.IDSelectorBatch(allowed), None


def _search_params(index: faiss.Index, sel: faiss.IDSelector, nprobe: int = 0):
    """Search params carrying the selector and, for IVF, how many lists to probe (probing all
    lists makes a filtered search complete: every allowed row is scored)."""
    ivf = _ivf(index)
    if ivf is None:
        return faiss.SearchParameters(sel=sel)
    nprobe = min(ivf.nlist, nprobe or ivf.nprobe)
    quantizer = faiss.downcast_index(ivf.quantizer)
    qp = None
    if isinstance(quantizer, faiss.IndexHNSW) and nprobe > quantizer.hnsw.efSearch:
        qp = faiss.SearchParametersHNSW(efSearch=nprobe)
    return faiss.SearchParametersIVF(sel=sel, nprobe=nprobe, quantizer_params=qp)


def _top_k(scores: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Best k per row of (scores, ids), descending, padded with (-inf, -1)."""
    scores = np.where(ids >= 0, scores, -np.inf).astype(np.float32)
    if scores.shape[1] < k:
        pad = k - scores.shape[1]
        scores = np.pad(scores, ((0, 0), (0, pad)), constant_values=-np.inf)
        ids = np.pad(ids, ((0, 0), (0, pad)), constant_values=-1)
    if scores.shape[1] > k:
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        scores, ids = np.take_along_axis(scores, part, 1), np.take_along_axis(ids, part, 1)
    order = np.argsort(-scores, axis=1, kind="stable")
    scores, ids = np.take_along_axis(scores, order, 1), np.take_along_axis(ids, order, 1)
    ids = np.where(np.isfinite(scores), ids, -1)
    return scores, ids.astype(np.int64)


def _rerank(q: np.ndarray, ids: np.ndarray, vectors: np.ndarray, k: int):
    """Exact scores for the candidate ids from the original vectors (sorted, deduplicated read)."""
    rows = np.unique(ids[ids >= 0])
    vecs = _rows(vectors, rows)
    pos = np.searchsorted(rows, np.where(ids >= 0, ids, rows[0] if rows.size else 0))
    scores = np.empty(ids.shape, np.float32)
    for s in range(0, len(q), 64):  # bounded temporaries: 64 × candidates × d
        scores[s:s + 64] = np.einsum("qcd,qd->qc", vecs[pos[s:s + 64]], q[s:s + 64])
    return _top_k(scores, ids, k)


def _ann(index, q, k, vectors, params=None, k_factor=None):
    kf = k_factor or int(_attached(index).get("params", {}).get("k_factor", 1))
    kf = kf if vectors is not None else 1
    fetch = min(max(k, k * kf), max(index.ntotal, 1))
    scores, ids = index.search(q, fetch, params=params)
    if kf > 1 and vectors is not None and (ids >= 0).any():
        return _rerank(q, ids, vectors, k)
    return _top_k(scores, ids, k)


def _exact_subset(index, q, k, allowed, vectors):
    """Exact top-k among few allowed rows: IVF probing could miss rows this sparse. float16
    vectors (unit-norm, as the embed step writes them) are scored as stored by faiss's fp16
    scanner, which skips numpy's slow float16 → float32 conversion (~2 ns a value)."""
    if vectors is None:
        vecs = np.ascontiguousarray(index.reconstruct_batch(allowed), dtype=np.float32)
        faiss.normalize_L2(vecs)
        scores = q @ vecs.T
        return _top_k(scores, np.broadcast_to(allowed, scores.shape), k)
    rows = np.ascontiguousarray(vectors[allowed])
    probe = rows[:64].astype(np.float32)
    if rows.dtype == np.float16 and np.allclose(np.linalg.norm(probe, axis=1), 1, atol=1e-2):
        flat = faiss.IndexScalarQuantizer(
            rows.shape[1], faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT)
        flat.add_sa_codes(rows.view(np.uint8))
    else:
        flat = faiss.IndexFlatIP(rows.shape[1])
        flat.add(_rows(rows, slice(None)))
    scores, pos = flat.search(q, min(k, len(allowed)))
    return _top_k(scores, np.where(pos >= 0, allowed[np.maximum(pos, 0)], -1), k)


def search(
    index: faiss.Index,
    queries: np.ndarray,
    k: int,
    allowed: np.ndarray | None = None,
    vectors: np.ndarray | None = None,
    k_factor: int | None = None,
    cross_modal: bool = False,
    nprobe: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-k rows per query: (scores q×k float32, ids q×k int64), best first.

    ``allowed``: sorted int64 row ids passing the user's filters; results come only from them,
    and each query gets k results whenever at least k allowed rows exist. ``vectors``: the
    original embeddings (memmap), used to re-rank ``k·k_factor`` candidates exactly and to score
    small allowed sets; without them compressed tiers (SQ4/PQ) lose recall. ``k_factor``
    overrides the index's (1 for SQ8: pass 2 with vectors for exact cosine scores, which SQ8
    otherwise approximates to ~±0.005). ``cross_modal``: the queries come from the other
    tower (text queries on image vectors): an IVF index probes :data:`CROSS_MODAL_PROBE` times
    more lists, and with ``vectors`` at least 2k candidates are re-ranked exactly. Measured in
    ``bench/search.py --modality-gap`` (demo CLIP, 600k rows): text→image recall@10 0.972 at
    nprobe, 1.000 with the re-rank (+0.01 ms); more lists matter where text sits farther from
    its images (tests/test_index.py: 0.94 → 0.98). ``nprobe``: IVF lists probed instead of the
    index's own (0: the index's; the contamination audit probes fewer for near-duplicates,
    :data:`backend.contamination.embedmatch.NEAR_NPROBE`). Missing slots are
    id -1, score -inf: drop them. Queries are L2-normalised here (on a copy). One query runs on
    one OpenMP thread (measured faster than two, and it leaves the other core free).
    """
    q = np.atleast_2d(np.array(queries, dtype=np.float32, order="C", copy=True))
    faiss.normalize_L2(q)
    if cross_modal and vectors is not None:
        k_factor = max(2, k_factor or int(_attached(index).get("params", {}).get("k_factor", 1)))
    if k <= 0:
        raise ValueError(f"k must be positive, got {k}")
    threads = faiss.omp_get_max_threads()
    if len(q) == 1:
        faiss.omp_set_num_threads(1)  # per calling thread in OpenMP; restored below
    try:
        ivf = _ivf(index)
        if allowed is None:
            params = None
            if (cross_modal or nprobe) and ivf is not None:
                params = _search_params(index, None, nprobe or CROSS_MODAL_PROBE * ivf.nprobe)
            return _ann(index, q, k, vectors, params, k_factor)
        allowed = np.asarray(allowed, dtype=np.int64)
        allowed = allowed[(allowed >= 0) & (allowed < index.ntotal)]
        if allowed.size == 0:
            return _top_k(np.zeros((len(q), 0), np.float32), np.zeros((len(q), 0), np.int64), k)
        fast_scan = isinstance(ivf, faiss.IndexIVFFastScan)  # its reconstruct crashes (1.15)
        if allowed.size <= EXACT_FILTER_MAX and (vectors is not None or not fast_scan):
            return _exact_subset(index, q, k, allowed, vectors)
        sel, _bitmap = _selector(allowed, index.ntotal)
        if ivf is None:  # exhaustive index: the selector search is complete
            return _ann(index, q, k, vectors, _search_params(index, sel), k_factor)
        base = (nprobe or ivf.nprobe) * (CROSS_MODAL_PROBE if cross_modal else 1)
        return _filtered_ivf(index, ivf, q, k, allowed, sel, vectors, k_factor, base)
    finally:
        faiss.omp_set_num_threads(threads)


def _filtered_ivf(index, ivf, q, k, allowed, sel, vectors, k_factor, base):
    """Top-k among the allowed rows of an IVF index probing from ``base`` lists up.

    Sparse filters push the best allowed rows further out: probe enough lists to expect
    ~64·k allowed rows if spread evenly (at most 8× nprobe; measured at 10^7 rows, 0.25%
    allowed: recall 0.95 at nprobe, 0.976 at 4×). When probed lists still hold fewer than
    k (filters often follow clusters) probe 4× more, up to every list. Fast-scan without
    vectors lands here for small sets: all lists."""
    probe = ivf.nlist if allowed.size <= EXACT_FILTER_MAX else max(
        base, min(8 * base, math.ceil(64 * k * ivf.nlist / allowed.size)))
    scores, ids = _ann(index, q, k, vectors, _search_params(index, sel, probe), k_factor)
    need = min(k, allowed.size)
    short = (ids >= 0).sum(axis=1) < need
    while short.any() and probe < ivf.nlist:
        probe = min(ivf.nlist, probe * 4)
        s2, i2 = _ann(index, q[short], k, vectors, _search_params(index, sel, probe), k_factor)
        scores[short], ids[short] = s2, i2
        short[short] = (i2 >= 0).sum(axis=1) < need
    return scores, ids
