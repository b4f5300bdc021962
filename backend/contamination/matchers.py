"""The four ways an eval image can be in the pool, each a function of the pool and the eval set.

Every matcher returns :class:`Found`: (eval index, pool row id, score) triples and a record of
how it ran (model, vectors, threshold, method) or why it did not ("not run", with the command
that makes it possible), never an empty result standing in for a step that could not run.

Scores: ``exact`` 1.0 (equal sha256 of the bytes); ``phash`` the Hamming distance in bits (0 is
identical; lower is closer); ``embedding`` the cosine of the two image vectors; ``caption`` the
share of the pool caption's tokens that the eval caption covers (1.0: the same caption).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from backend.contamination.evalset import EvalSet
from backend.contamination.hashindex import HashIndex
from backend.store import connect

PHASH_THRESHOLD = 8
"""Bits of 64, as :data:`backend.phash_pairs.PHASH_THRESHOLD`. Measured on the test's real photos
(tests/test_contamination.py): resizes and re-encodes 0-2 bits, a caption bar over the bottom
sixth 4-8 bits for 4 of 12 photos and more for the rest, a 90% centre crop 6-8 for 3 of 12 and
up to 18 for the rest: pHash alone finds 32 of the 49 planted copies; the embeddings find the
crops and overlays."""
EMBED_THRESHOLDS = {
    "efficientnet-lite0": 0.60,
}
"""Cosine per image model. EfficientNet-Lite0, measured on the test's pool: resized, 90%-cropped,
re-encoded (JPEG q30) and caption-barred copies of the eval photos at 0.71-1.0, unrelated photos
at most 0.53. (A diagonal stock-photo watermark tiled over the whole image, the demo's, drags a
copy of the Hubble photo to 0.48: not found.) Other models use :data:`EMBED_DEFAULT`, not
calibrated here: check the margin gallery and pass ``--embed-threshold``."""
EMBED_DEFAULT = 0.90  # a common CLIP near-duplicate cut-off, a little looser for crops
EMBED_K = 10  # pool neighbours looked at per eval image
MIN_CAPTION_WORDS = 4  # shorter eval captions ("a dog") would match a large share of any pool
CAPTION_CHUNK = 200_000
PHASH_CHUNK = 1_000_000


@dataclass
class Found:
    kind: str
    eval_idx: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    row_id: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    score: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float64))
    info: dict[str, Any] = field(default_factory=dict)  # status, threshold, model, method ...


def not_run(kind: str, why: str, command: str) -> Found:
    return Found(kind, info={"status": "not run", "why": why, "command": command})


def pool_columns(name: str, root: Path | None) -> set[str]:
    con = connect(name, root)
    try:
        return {r[0] for r in con.execute("DESCRIBE samples").fetchall()}
    finally:
        con.close()


def exact(name: str, ev: EvalSet, root: Path | None = None) -> Found:
    """Pool rows whose image bytes have an eval image's sha256 (one hash join)."""
    idx = [i for i, s in enumerate(ev.sha256) if s]
    if not idx:
        return not_run("exact", "the eval set has no image bytes (vectors only)",
                       "give the eval images: a folder, .tar shards or parquet with bytes")
    if "sha256" not in pool_columns(name, root):
        return not_run("exact", "the pool has no image bytes to hash (url-only rows)",
                       f"download the images and rebuild {name}")  # fmt: skip
    table = pa.table({"i": pa.array(idx, pa.int64()), "sha": [ev.sha256[i] for i in idx]})
    con = connect(name, root)
    try:
        con.register("eval_sha", table)
        got = con.execute("SELECT e.i, s.row_id FROM samples s JOIN eval_sha e ON s.sha256 = e.sha "
                          "ORDER BY e.i, s.row_id").fetchnumpy()  # fmt: skip
    finally:
        con.close()
    n = len(got["i"])
    return Found("exact", got["i"].astype(np.int64), got["row_id"].astype(np.int64),
                 np.ones(n), {"status": "run", "method": "equal sha256 of the image bytes"})


def _pool_phashes(name: str, root: Path | None) -> tuple[np.ndarray, np.ndarray]:
    con = connect(name, root)
    rid, ph = [], []
    try:
        n = con.execute("SELECT max(row_id) + 1 FROM samples").fetchone()[0] or 0
        for lo in range(0, n, PHASH_CHUNK):
            got = con.execute("SELECT row_id, phash FROM samples WHERE row_id >= ? AND row_id < ? "
                              "AND phash IS NOT NULL", [lo, lo + PHASH_CHUNK]).fetchnumpy()
            rid.append(got["row_id"].astype(np.int64))
            ph.append(got["phash"].astype(np.int64))
    finally:
        con.close()
    if not rid:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(rid), np.concatenate(ph)


def phash(name: str, ev: EvalSet, threshold: int = PHASH_THRESHOLD,
          root: Path | None = None) -> Found:  # fmt: skip
    """Pool rows within ``threshold`` bits of an eval image's pHash (multi-index hashing)."""
    idx = np.array([i for i, h in enumerate(ev.phash) if h is not None], dtype=np.int64)
    if not idx.size:
        return not_run("phash", "the eval set has no image bytes (vectors only)",
                       "give the eval images: a folder, .tar shards or parquet with bytes")
    if "phash" not in pool_columns(name, root):
        return not_run("phash", "the pool's pHashes are not computed yet",
                       f"python -m backend dedup {name}")
    rows, hashes = _pool_phashes(name, root)
    index = HashIndex(hashes, rows, threshold)
    qi, row, dist = index.query(np.array([ev.phash[i] for i in idx], dtype=np.int64))
    info = {"status": "run", "threshold": threshold, "method": index.method,
            "model": "imagehash pHash 8x8 (64 bits)", "score": "Hamming distance in bits"}
    return Found("phash", idx[qi], row, dist.astype(np.float64), info)


def caption(name: str, ev: EvalSet, prompts: list[str] | None = None,
            root: Path | None = None) -> tuple[Found, list[str]]:  # fmt: skip
    """Pool captions containing an eval caption or a prompt on word edges (Aho–Corasick,
    :mod:`backend.concepts.match`), both normalised as duplicate captions are
    (:func:`backend.dedup.normalise_caption`): verbatim and near-verbatim. Returns the matches
    and the texts searched for; pairs of a prompt carry eval index ``len(ev) + p``."""
    from backend.concepts.match import match_captions, matcher
    from backend.concepts.vocab import Vocabulary
    from backend.dedup import normalise_caption as normalise

    texts = [c or "" for c in ev.captions] + list(prompts or [])
    norm = [normalise(t) for t in texts]  # NFKC, case-folded, punctuation and spacing dropped
    words = [len(t.split()) for t in norm]
    usable = [i for i, t in enumerate(norm) if words[i] >= MIN_CAPTION_WORDS]
    short = sum(1 for w in words if 0 < w < MIN_CAPTION_WORDS)
    if not usable:
        return not_run("caption", f"no eval caption or prompt of {MIN_CAPTION_WORDS} words or "
                       "more to look for", "give captions beside the eval images (.txt) or "
                       "--prompts FILE"), texts  # fmt: skip
    vocab = Vocabulary("eval", [norm[i] for i in usable], [[norm[i]] for i in usable])
    m = matcher(vocab, plurals=False)
    lengths = np.array([words[i] for i in usable], dtype=np.float64)
    out_e, out_r, out_s = [], [], []
    con = connect(name, root)
    try:
        n = con.execute("SELECT max(row_id) + 1 FROM samples").fetchone()[0] or 0
        for lo in range(0, n, CAPTION_CHUNK):
            got = con.execute("SELECT row_id, caption FROM samples WHERE row_id >= ? AND "
                              "row_id < ? ORDER BY row_id", [lo, lo + CAPTION_CHUNK]).fetchall()
            caps = [normalise(c) for _, c in got]
            ci, cid = match_captions(m, caps)
            if not len(ci):
                continue
            pool_len = np.array([len(caps[i].split()) for i in ci], dtype=np.float64)
            out_e.append(np.asarray(usable, dtype=np.int64)[cid])
            out_r.append(np.array([got[i][0] for i in ci], dtype=np.int64))
            out_s.append(np.minimum(1.0, lengths[cid] / np.maximum(pool_len, 1)))
    finally:
        con.close()
    info = {"status": "run", "method": "eval caption or prompt inside a pool caption, on word "
            "edges; case, punctuation, spacing and Unicode forms ignored (Aho–Corasick)",
            "score": "share of the pool caption's words the eval text covers",
            "searched": len(usable), "too_short": short, "min_words": MIN_CAPTION_WORDS}
    if not out_e:
        return Found("caption", info=info), texts
    e, r, s = np.concatenate(out_e), np.concatenate(out_r), np.concatenate(out_s)
    order = np.lexsort((r, e))
    return Found("caption", e[order], r[order], s[order], info), texts


def embed_threshold(model: str | None) -> tuple[float, str]:
    """The default cosine for ``model`` and where it comes from."""
    for prefix, t in EMBED_THRESHOLDS.items():
        if model and model.startswith(prefix):
            return t, f"measured for {prefix} on real photos: tests/test_contamination.py"
    return EMBED_DEFAULT, "not calibrated for this model: check the margin gallery"
