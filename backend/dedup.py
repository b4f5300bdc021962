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
  64-bit pHashes, found by banding (:func:`near_pairs`), never all pairs;
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
from backend.manifest import now, step_record, update_manifest
from backend.store import connect

PHASH_THRESHOLD = 8
"""Hamming distance (of 64 bits). Measured on the demo: planted re-encodes, resizes and
brightness changes are 0-2 bits from their original, a text watermark 4, a 90% centre crop 8;
unrelated pairs are ≥ 10 bits apart except for 0.1% of them. 8 is also a common pHash cut-off."""
SEMANTIC_THRESHOLD = 0.95
"""Cosine between image embeddings (a common CLIP near-duplicate cut-off)."""
SEMANTIC_K = 16
BANDS = 4  # 16-bit bands per table
PAIR_BUDGET = 200_000_000  # expected candidate pairs (uniform hashes) that decides the tables
EXACT_MAX = 20_000  # below this, all pairs are cheaper than banding and exact

Progress = Callable[[str, int, int], None]


# Groups ------------------------------------------------------------------------------------


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


# pHash near pairs --------------------------------------------------------------------------


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


# Semantic pairs ----------------------------------------------------------------------------


def _image_model(name: str, root: Path | None) -> str | None:
    """The model of the dataset's image vectors, or None when there are none to read."""
    from backend.embed import describe, embeddings_dir

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
    from backend.embed import describe, load_vectors
    from backend.search import index_path

    vectors = load_vectors(name, "img", root)
    model = describe(name, root).get("kinds", {}).get("img", {}).get("model", "?")
    idx, _ = vindex.load(index_path(name, "img", root), name=name)
    n = len(vectors)
    ii, jj = [], []
    for lo in range(0, n, batch):
        q = np.asarray(vectors[lo : lo + batch], dtype=np.float32)
        scores, ids = vindex.search(idx, q, min(k + 1, n), vectors=vectors)
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

    if not 0 <= phash_threshold <= 64:
        raise ValueError(f"--phash-threshold must be 0..64 bits, got {phash_threshold}")
    if semantic_threshold is not None and not -1 <= semantic_threshold <= 1:
        raise ValueError(
            f"--semantic-threshold must be a cosine in -1..1, got {semantic_threshold}"
        )
    t0, started = time.perf_counter(), now()
    notes: list[str] = []
    skipped: dict[str, dict[str, str]] = {}  # kind -> {"why", "command"}: "not run", not "0"
    phash_rec = score(name, ["phash"], root=root, progress=progress)
    if phash_rec.get("skipped"):
        notes.extend(phash_rec["skipped"].values())
        skipped["phash"] = {"why": "; ".join(phash_rec["skipped"].values()),
                            "command": f"python -m backend dedup {name}"}  # fmt: skip
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
    phash = np.full(n, -1, dtype=np.int64)
    method = None
    if "phash" in cols:
        rid, hashes = np.concatenate(rid).astype(np.int64), np.concatenate(ph).astype(np.int64)
        phash, method = phash_groups(n, rid, hashes, phash_threshold)
    semantic = np.full(n, -1, dtype=np.int64)
    sem_model = None
    img_model = _image_model(name, root)
    from backend.democlip import SEMANTIC_THRESHOLD as DEMO_THRESHOLD
    from backend.democlip import is_demo_clip

    if semantic_threshold is None and is_demo_clip(img_model):  # calibrated for that model
        semantic_threshold = DEMO_THRESHOLD
        notes.append(f"semantic threshold {DEMO_THRESHOLD}: calibrated for the demo CLIP, whose "
                     "distinct scenes of one shape and colour reach cosine 0.99")  # fmt: skip
    if semantic_threshold is None and img_model and not img_model.startswith("open_clip"):
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
                name, semantic_threshold or SEMANTIC_THRESHOLD, root=root, progress=progress
            )
            semantic = leader_groups(n, si, sj)
        except Exception as e:  # no embeddings or no index yet: the other kinds still run
            notes.append(f"semantic duplicates skipped: {e}")
            skipped["semantic"] = {"why": str(e), "command": f"python -m backend embed {name} "
                                   f"&& python -m backend dedup {name}"}  # fmt: skip
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

    def summary(g: np.ndarray) -> dict[str, int]:
        inside = g >= 0
        return {"groups": int(len(np.unique(g[inside]))), "rows": int(inside.sum()),
                "removable": int((inside & (g != rows)).sum())}  # fmt: skip

    record = step_record(
        {"phash_threshold": phash_threshold,
         "semantic_threshold": semantic_threshold or SEMANTIC_THRESHOLD,
         "semantic_k": SEMANTIC_K},  # fmt: skip
        started,
        time.perf_counter() - t0,
        rows=n,
        exact=summary(exact),
        phash={**summary(phash), "method": method},
        semantic={**summary(semantic), "model": sem_model},
        caption=summary(caption),
        kept=int((~member).sum()),
        notes=notes,
        skipped=skipped,
    )
    update_manifest(paths.manifest_path(name, root), "dedup", record)
    return record
