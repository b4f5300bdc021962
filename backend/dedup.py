"""Duplicate detection: exact, perceptual (pHash), semantic (embeddings) and caption duplicates.

Each kind gives groups with a representative, the group's lowest row id, written as columns
``dup_exact_group``, ``dup_phash_group``, ``dup_semantic_group``, ``dup_caption_group`` (group
id = the representative's row id; NULL for a row with no duplicate) and ``is_dup_rep``: FALSE
for a row that is a non-representative member of an exact, pHash or semantic group, so
``WHERE is_dup_rep`` keeps one image per duplicate group. (Caption duplicates do not count
there: different pictures often share a caption such as "product image".)

- exact: equal sha256 of the image bytes (an ingest column);
- caption: equal caption after NFKC, lower-casing and collapsing punctuation and space;
- pHash: Hamming distance ≤ ``phash_threshold`` (default :data:`PHASH_THRESHOLD`) between
  64-bit pHashes, found by banding (:func:`backend.phash_pairs.near_pairs`), never all pairs;
- semantic: cosine ≥ ``semantic_threshold`` (default :data:`SEMANTIC_THRESHOLD`) between image
  embeddings, among each row's :data:`SEMANTIC_K` nearest neighbours in the FAISS index.

Near and semantic groups are formed greedily in row-id order ("leader" clustering): a row not
yet in a group leads a group of its unassigned neighbours, so every member is within the
threshold of its representative and groups do not chain across the whole dataset.
"""

from __future__ import annotations

import time
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from backend import paths
from backend.columns import add_columns
from backend.dup_groups import equal_groups, leader_groups
from backend.manifest import now, step_record, update_manifest
from backend.phash_pairs import PHASH_THRESHOLD, phash_groups
from backend.store import connect

SEMANTIC_THRESHOLD = 0.95
"""Cosine between image embeddings (a common CLIP near-duplicate cut-off)."""
SEMANTIC_K = 16

Progress = Callable[[str, int, int], None]


# Semantic pairs ----------------------------------------------------------------------------


def _image_model(name: str, root: Path | None) -> str | None:
    """The model of the dataset's image vectors, or None when there are none to read."""
    from backend.embed import embeddings_dir
    from backend.embedding_sets import describe

    if not (embeddings_dir(name, root) / "img.npy").is_file():
        return None
    return describe(name, root).get("kinds", {}).get("img", {}).get("model")


def semantic_pairs(
    name: str,
    threshold: float = SEMANTIC_THRESHOLD,
    k: int = SEMANTIC_K,
    root: Path | None = None,
    progress: Progress | None = None,
    batch: int = 4096,
) -> tuple[np.ndarray, np.ndarray, str]:
    """Pairs of rows whose image embeddings have cosine ≥ ``threshold`` among each row's ``k``
    nearest neighbours (the dataset's FAISS index, re-ranked exactly with the vectors)."""
    from backend import index as vindex
    from backend import index_search
    from backend.embed import load_vectors
    from backend.embedding_sets import describe
    from backend.search import index_path

    vectors = load_vectors(name, "img", root)
    model = describe(name, root).get("kinds", {}).get("img", {}).get("model", "?")
    idx, _ = vindex.load(index_path(name, "img", root), name=name)
    n = len(vectors)
    ii, jj = [], []
    for lo in range(0, n, batch):
        q = np.asarray(vectors[lo : lo + batch], dtype=np.float32)
        scores, ids = index_search.search(idx, q, min(k + 1, n), vectors=vectors)
        rows = np.repeat(np.arange(lo, lo + len(q)), ids.shape[1]).reshape(ids.shape)
        ok = (ids >= 0) & (ids != rows) & (scores >= threshold)
        ok &= np.linalg.norm(q, axis=1)[:, None] > 0.5  # rows without an image have 0-vectors
        ii.append(rows[ok])
        jj.append(ids[ok])
        if progress:
            progress("semantic", min(n, lo + batch), n)
    return np.concatenate(ii), np.concatenate(jj), str(model)


# Exact and caption keys --------------------------------------------------------------------


def normalise_caption(text: str | None) -> str:
    """Caption text for duplicate matching: NFKC, case-folded, punctuation and runs of space
    collapsed to one space."""
    if not text:
        return ""
    t = unicodedata.normalize("NFKC", text).casefold()
    t = "".join(ch if ch.isalnum() else " " for ch in t)
    return " ".join(t.split())


def _column_codes(con, sql: str, n: int, transform=None, chunk: int = 200_000) -> np.ndarray:
    """Codes of one text expression over all rows, read in row-id order chunk by chunk."""
    table: dict[Any, int] = {}
    out = np.full(n, -1, dtype=np.int64)
    for lo in range(0, n, chunk):
        got = con.execute(
            f"SELECT row_id, {sql} FROM samples WHERE row_id >= ? AND row_id < ?", [lo, lo + chunk]
        ).fetchall()
        for rid, v in got:
            v = transform(v) if transform else v
            if v:
                out[rid] = table.setdefault(v, len(table))
    return out


# The step ----------------------------------------------------------------------------------


def _arrow_group(g: np.ndarray) -> pa.Array:
    return pa.array(g, pa.int64(), mask=g < 0)


def _store_keys(
    name: str, root: Path | None
) -> tuple[int, np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray] | None]:
    """Row count, exact and caption groups, and (row ids, pHashes) when the store has pHashes."""
    con = connect(name, root)
    try:
        n = con.execute("SELECT count(*) FROM samples").fetchone()[0]
        exact = equal_groups(_column_codes(con, "sha256", n))
        caption = equal_groups(_column_codes(con, "caption", n, normalise_caption))
        cols = {r[0] for r in con.execute("DESCRIBE samples").fetchall()}
        if "phash" in cols:
            rid, ph = [], []
            for lo in range(0, n, 500_000):
                got = con.execute(
                    "SELECT row_id, phash FROM samples WHERE row_id >= ? AND row_id < ? AND "
                    "phash IS NOT NULL", [lo, lo + 500_000]
                ).fetchnumpy()
                rid.append(got["row_id"])
                ph.append(got["phash"])
    finally:
        con.close()
    if "phash" not in cols:
        return n, exact, caption, None
    return n, exact, caption, (np.concatenate(rid).astype(np.int64),
                               np.concatenate(ph).astype(np.int64))  # fmt: skip


def _semantic_groups(
    name: str, root: Path | None, n: int, threshold: float | None, progress: Progress | None,
    notes: list[str], skipped: dict[str, dict[str, str]],
) -> tuple[np.ndarray, str | None, float | None]:  # fmt: skip
    """Semantic groups, the model of the vectors used and the threshold used (None: the
    default); when the vectors cannot be trusted or read, no groups and the reason in ``notes``
    and ``skipped``."""
    semantic = np.full(n, -1, dtype=np.int64)
    sem_model = None
    img_model = _image_model(name, root)
    from backend.democlip import SEMANTIC_THRESHOLD as DEMO_THRESHOLD
    from backend.democlip import is_demo_clip

    if threshold is None and is_demo_clip(img_model):  # calibrated for that model
        threshold = DEMO_THRESHOLD
        notes.append(f"semantic threshold {DEMO_THRESHOLD}: calibrated for the demo CLIP, whose "
                     "distinct scenes of one shape and colour reach cosine 0.99")  # fmt: skip
    if threshold is None and img_model and not img_model.startswith("open_clip"):
        # Measured on the demo: with the packaged ImageNet model, unrelated generated scenes
        # reach cosine 0.99, so no default threshold separates duplicates from look-alikes.
        why = (f"the image vectors come from {img_model}, whose cosines are not calibrated "
               "for duplicates")  # fmt: skip
        notes.append(f"semantic duplicates skipped: {why}; embed with CLIP, or pass "
                     "--semantic-threshold to use these vectors anyway")  # fmt: skip
        skipped["semantic"] = {
            "why": why,
            "command": f"python -m backend embed {name} --model clip --rebuild "
            f"--clip-checkpoint PATH && python -m backend dedup {name}",
        }
    else:
        try:
            si, sj, sem_model = semantic_pairs(
                name, threshold or SEMANTIC_THRESHOLD, root=root, progress=progress
            )
            semantic = leader_groups(n, si, sj)
        except Exception as e:  # no embeddings or no index yet: the other kinds still run
            notes.append(f"semantic duplicates skipped: {e}")
            skipped["semantic"] = {"why": str(e), "command": f"python -m backend embed {name} "
                                   f"&& python -m backend dedup {name}"}  # fmt: skip
    return semantic, sem_model, threshold


def _check_thresholds(phash_threshold: int, semantic_threshold: float | None) -> None:
    if not 0 <= phash_threshold <= 64:
        raise ValueError(f"--phash-threshold must be 0..64 bits, got {phash_threshold}")
    if semantic_threshold is not None and not -1 <= semantic_threshold <= 1:
        raise ValueError(
            f"--semantic-threshold must be a cosine in -1..1, got {semantic_threshold}"
        )


def _summary(g: np.ndarray, rows: np.ndarray) -> dict[str, int]:
    inside = g >= 0
    return {"groups": int(len(np.unique(g[inside]))), "rows": int(inside.sum()),
            "removable": int((inside & (g != rows)).sum())}  # fmt: skip


def dedup(
    name: str,
    root: Path | None = None,
    phash_threshold: int = PHASH_THRESHOLD,
    semantic_threshold: float | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Find the four kinds of duplicates in dataset ``name``, join the group columns into its
    store, record the step; return the record (group and row counts per kind, notes)."""
    from backend.safety.run import score

    _check_thresholds(phash_threshold, semantic_threshold)
    t0, started = time.perf_counter(), now()
    notes: list[str] = []
    skipped: dict[str, dict[str, str]] = {}  # kind -> {"why", "command"}: "not run", not "0"
    phash_rec = score(name, ["phash"], root=root, progress=progress)
    if phash_rec.get("skipped"):
        notes.extend(phash_rec["skipped"].values())
        skipped["phash"] = {"why": "; ".join(phash_rec["skipped"].values()),
                            "command": f"python -m backend dedup {name}"}  # fmt: skip
    n, exact, caption, hashes = _store_keys(name, root)
    phash = np.full(n, -1, dtype=np.int64)
    method = None
    if hashes is not None:
        phash, method = phash_groups(n, *hashes, phash_threshold)
    semantic, sem_model, semantic_threshold = _semantic_groups(
        name, root, n, semantic_threshold, progress, notes, skipped
    )
    rows = np.arange(n)
    member = np.zeros(n, dtype=bool)
    for g in (exact, phash, semantic):
        member |= (g >= 0) & (g != rows)
    table = pa.table({
        "row_id": pa.array(rows, pa.int64()),
        "dup_exact_group": _arrow_group(exact),
        "dup_phash_group": _arrow_group(phash),
        "dup_semantic_group": _arrow_group(semantic),
        "dup_caption_group": _arrow_group(caption),
        "is_dup_rep": pa.array(~member),
    })  # fmt: skip
    add_columns(name, table, root)
    record = step_record(
        {"phash_threshold": phash_threshold,
         "semantic_threshold": semantic_threshold or SEMANTIC_THRESHOLD,
         "semantic_k": SEMANTIC_K},  # fmt: skip
        started,
        time.perf_counter() - t0,
        rows=n,
        exact=_summary(exact, rows),
        phash={**_summary(phash, rows), "method": method},
        semantic={**_summary(semantic, rows), "model": sem_model},
        caption=_summary(caption, rows),
        kept=int((~member).sum()),
        notes=notes,
        skipped=skipped,
    )
    update_manifest(paths.manifest_path(name, root), "dedup", record)
    return record
