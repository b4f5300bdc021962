"""Reciprocal-rank fusion of keyword and semantic hits (the Search page's *Both* mode)."""

from __future__ import annotations

RRF_K = 60
Hits = list[tuple[int, float]]


def hybrid(keyword_hits: Hits, semantic_hits: Hits, k: int) -> Hits:
    """Merge keyword and semantic results by reciprocal-rank fusion; top ``k`` (row_id, score).

    Each list must be best first; only ranks are used, since BM25 scores and cosine
    similarities are not comparable. A row scores ``sum(1 / (60 + rank))`` (rank from 1) over
    the lists it appears in, so rows found by both rise to the top; 60 is the constant of
    Cormack et al. (2009), which keeps one list's top rank from dominating. Ties go to the
    lower row_id so the order is stable.
    """
    fused: dict[int, float] = {}
    for hits in (keyword_hits, semantic_hits):
        seen: set[int] = set()
        for rank, (row_id, _score) in enumerate(hits, start=1):
            rid = int(row_id)
            if rid in seen:
                continue
            seen.add(rid)
            fused[rid] = fused.get(rid, 0.0) + 1.0 / (RRF_K + rank)
    return sorted(fused.items(), key=lambda x: (-x[1], x[0]))[: max(0, k)]
