"""Embedding matches: eval images against the pool's image vectors, with the pool's own model.

Cosines between two models' vectors mean nothing, so the eval images are embedded with the
model that made the pool's vectors (the same checkpoint, checked by its sha256), and an eval
set that brings its own vectors is refused unless they come from that model. The pool's vector
index answers each eval image's few nearest pool rows (a threshold search needs no more: a
near-duplicate is among them), in big batches so FAISS spreads them over the cores, re-ranked
exactly with the stored vectors so the threshold meets true cosines; the work grows with the
eval set, not with eval x pool. Near-duplicates sit in the lists nearest to their eval image, so
an IVF index probes :data:`NEAR_NPROBE` lists, not the index's own nprobe (sized for recall@10
of ordinary queries), when the threshold is high (bench/contamination.py measures both). The
threshold comes with its *margin gallery*: the weakest matches above it and the closest misses
below it, for a person to judge.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from backend.contamination.evalset import Embedder, EvalSet, EvalSetError
from backend.contamination.matchers import EMBED_K, Found, embed_threshold, not_run

MARGIN_PAIRS = 8  # pairs each side of the threshold in the margin gallery
MARGIN_WIDTH = 0.3  # the gallery's pairs below the threshold come from this far below it
BATCH = 8192  # eval vectors a search call: FAISS runs one call's queries on all cores
NEAR_NPROBE = 16
"""IVF lists probed per eval image when the threshold is at least :data:`NEAR_MIN_COSINE`:
a near-duplicate sits in one of the few lists nearest its eval image, so probing the index's
own nprobe (sized for recall@10 of ordinary queries) scans several times more rows for nothing.
bench/contamination.py, 10^5 eval x 10^7 pool, 64-d, IVF8192 (index nprobe 68), cosine >= 0.9:
recall against exact top-10 on 200 eval 1.000 at 8 and 16 lists (4: 0.950, 1: 0.635), 1,974 of
2,000 planted copies found at 16; 63 s of CPU against 163 s at the index's 68 lists."""
NEAR_MIN_COSINE = 0.85  # below it (loose cut-offs, e.g. 0.60) the index's own nprobe is kept
RERANK = 2  # candidates per wanted neighbour re-ranked from the stored vectors (exact cosines)


def pool_image_model(name: str, root: Path | None = None) -> dict[str, Any] | None:
    """The embed record of the pool's image vectors (model, checkpoint …), or None."""
    from backend.embedding_sets import describe

    return describe(name, root).get("kinds", {}).get("img")


def pool_embedder(name: str, root: Path | None = None) -> tuple[Embedder | None, str | None]:
    """The pool's image encoder as a function of image bytes, or (None, why not)."""
    from backend.models import ModelUnavailable, checkpoint_changed
    from backend.search import encoder_for

    info = pool_image_model(name, root)
    if not info:
        return None, "the pool has no image vectors"
    if why := checkpoint_changed(name, info):
        return None, why
    try:
        enc = encoder_for(info["model"], info.get("checkpoint"))
    except ModelUnavailable as e:
        return None, f"the pool's image model {info['model']} cannot be loaded here ({e})"
    return enc.encode_images, None


def same_model(ev: EvalSet, pool_model: str | None) -> None:
    """Refuse eval vectors made by another model than the pool's, saying why."""
    from backend.embedding_sets import _model_name

    theirs = ev.vector_model or "unknown"
    if pool_model is None:
        raise EvalSetError(f"the eval set is vectors only ({theirs}) and the pool has no image "
                           "vectors to compare them with: embed the pool first")  # fmt: skip
    if theirs == "unknown" or _model_name(theirs) != _model_name(pool_model):
        raise EvalSetError(
            f"the eval vectors come from {theirs}, the pool's image vectors from {pool_model}: "
            "cosines between two models' vectors mean nothing, so they cannot be compared. "
            f"Give the eval images (folder, .tar or parquet) to embed them with {pool_model}, "
            "or eval vectors made by that model (say it in a .json beside img_emb/)"
        )


def embedding(name: str, ev: EvalSet, threshold: float | None = None,
              root: Path | None = None) -> Found:  # fmt: skip
    """Pool rows whose image vector has cosine >= ``threshold`` with an eval image's, among
    each eval image's :data:`EMBED_K` nearest pool rows; plus the margin gallery in ``info``."""
    from backend.search import Searcher

    info = pool_image_model(name, root)
    if not info:
        return not_run("embedding", "the pool has no image vectors",
                       f"python -m backend embed {name}")
    if ev.vectors is None:
        return not_run("embedding", ev.vector_source or "the eval images were not embedded",
                       f"python -m backend embed {name}")  # fmt: skip
    default, why = embed_threshold(info["model"])
    threshold = default if threshold is None else threshold
    idx, vectors = Searcher(name, root)._index("img")  # the search path's loader: mmap, shards
    ok = np.flatnonzero(np.isfinite(ev.vectors).all(axis=1) & (np.abs(ev.vectors).sum(1) > 0))
    k = min(EMBED_K, len(vectors))
    probe = probes(idx, threshold)
    e, r, s, near = neighbours(idx, vectors, ev.vectors, ok, k, threshold, probe)
    rec = {"status": "run", "threshold": threshold, "threshold_source": why,
           "model": info["model"], "vectors": "img (the pool's default image set)",
           "eval_vectors": ev.vector_source, "k": k, "score": "cosine (exact, re-ranked)",
           "method": method(idx, k, probe), "margin": margin(near, threshold)}
    return Found("embedding", e, r, s, rec)


def probes(index: Any, threshold: float) -> int:
    """IVF lists to probe for matches at ``threshold`` (0: the index's own, or not IVF)."""
    import faiss

    ivf = faiss.try_extract_index_ivf(index)
    if ivf is None or threshold < NEAR_MIN_COSINE:
        return 0
    return min(ivf.nprobe, NEAR_NPROBE)


def method(index: Any, k: int, probe: int) -> str:
    """How the neighbours were found, for the report."""
    import faiss

    ivf = faiss.try_extract_index_ivf(index)
    if ivf is None:
        return f"exact search of every pool vector, top {k} per eval image"
    lists = probe or ivf.nprobe
    why = "near-duplicate threshold" if probe else "the index's own"
    return (f"IVF index ({ivf.nlist:,} lists), {lists} probed per eval image ({why}), top {k}, "
            f"{RERANK * k} candidates re-ranked exactly")


def neighbours(index: Any, vectors: np.ndarray, queries: np.ndarray, ok: np.ndarray, k: int,
               threshold: float, nprobe: int = 0, batch: int = BATCH,
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """(eval index, row id, cosine) of the pairs >= ``threshold`` among each of the ``ok`` eval
    vectors' ``k`` nearest pool rows, ordered by eval index then score; and the (eval, row,
    cosine) pairs within :data:`MARGIN_WIDTH` of the threshold, for :func:`margin`."""
    from backend import index_search

    es, rs, ss, best = [], [], [], []
    for lo in range(0, len(ok), batch):
        part = ok[lo : lo + batch]
        scores, ids = index_search.search(index, queries[part], k, vectors=vectors,
                                          k_factor=RERANK, nprobe=nprobe)  # fmt: skip
        which = np.repeat(part, k).reshape(ids.shape)
        near = (ids >= 0) & (scores >= threshold - MARGIN_WIDTH)
        best.append(np.c_[which[near], ids[near], scores[near]])
        hit = (ids >= 0) & (scores >= threshold)
        es.append(which[hit])
        rs.append(ids[hit])
        ss.append(scores[hit].astype(np.float64))
    e = np.concatenate(es).astype(np.int64) if es else np.zeros(0, np.int64)
    r = np.concatenate(rs).astype(np.int64) if rs else np.zeros(0, np.int64)
    s = np.concatenate(ss) if ss else np.zeros(0)
    order = np.lexsort((r, -s, e))
    near = np.concatenate(best) if best else np.zeros((0, 3))
    return e[order], r[order], s[order], near


def margin(near: np.ndarray, threshold: float, n: int = MARGIN_PAIRS) -> dict[str, list]:
    """Of the (eval, row, cosine) neighbour pairs ``near`` the threshold, the ``n`` weakest
    above it and the ``n`` closest below it: what a person looks at to trust (or move) it."""
    def pairs(rows: np.ndarray) -> list[dict[str, Any]]:
        return [{"eval_idx": int(a), "row_id": int(b), "score": round(float(c), 4)}
                for a, b, c in rows]  # fmt: skip

    above, below = near[near[:, 2] >= threshold], near[near[:, 2] < threshold]
    return {"above": pairs(above[np.argsort(above[:, 2])][:n]),
            "below": pairs(below[np.argsort(-below[:, 2])][:n])}  # fmt: skip
