"""Contamination audit at scale: 10^5 eval images against a 10^7-row pool, each kind of match.

    .venv/bin/python bench/contamination.py [--pool 10000000] [--eval 100000] [--planted 2000]
        [--baseline 200] [--embed-pool 1000000] [--dim 64] [--caption-pool 1000000] [--skip ...]

Synthetic data (hashes, vectors, captions; no images), planted truth, the audit's own code:

1. pHash: ``--pool`` uniform 64-bit hashes; ``--eval`` eval hashes of which ``--planted`` are
   pool hashes moved 0..8 random bits. :class:`backend.contamination.hashindex.HashIndex`
   (multi-index hashing) is timed building and answering all eval hashes; the all-pairs
   baseline runs on ``--baseline`` eval hashes against the whole pool, must give exactly the
   same pairs, and its time is scaled to the whole eval set (linear in eval images: labelled).
2. sha256: the pool's sha256 as a DuckDB column, ``--eval`` eval hashes (``--planted`` of them
   in the pool) joined as the audit joins them.
3. Embeddings: ``--embed-pool`` clustered unit vectors of ``--dim`` dims indexed by the
   project's index chooser (``backend.index``), ``--eval`` eval vectors of which ``--planted``
   are noisy copies (cosine ~0.97); every eval vector's 10 neighbours, re-ranked exactly. The
   exact baseline (all pool vectors, matmul) runs on ``--baseline`` eval vectors: recall of the
   index's matches against it, and the ratio of times per eval vector. 10^7 x 768-d vectors do
   not fit this machine's memory (15 GB at float16): the time is given per pool row, to scale.
4. Captions: ``--caption-pool`` captions scanned for ``--eval`` eval captions (Aho–Corasick),
   with ``--planted`` captions holding one; rate in captions/s, scaled to ``--pool``.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import argparse  # noqa: E402
import hashlib  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from backend.contamination.hashindex import HashIndex, brute_force  # noqa: E402
from backend.contamination.matchers import PHASH_THRESHOLD  # noqa: E402


def flip(h: np.ndarray, rng: np.random.Generator, most: int) -> np.ndarray:
    """Each hash with 0..``most`` random bits flipped."""
    out = h.view(np.uint64).copy()
    for i in range(len(out)):
        for b in rng.choice(64, rng.integers(0, most + 1), replace=False):
            out[i] ^= np.uint64(1) << np.uint64(int(b))
    return out.view(np.int64)


def bench_phash(a: argparse.Namespace, rng: np.random.Generator) -> dict:
    pool = rng.integers(-(2**63), 2**63 - 1, size=a.pool, dtype=np.int64)
    rows = np.arange(a.pool, dtype=np.int64)
    q = rng.integers(-(2**63), 2**63 - 1, size=a.eval, dtype=np.int64)
    src = rng.choice(a.pool, a.planted, replace=False)
    q[: a.planted] = flip(pool[src], rng, PHASH_THRESHOLD)
    t0 = time.perf_counter()
    index = HashIndex(pool, rows, PHASH_THRESHOLD)
    t_build = time.perf_counter() - t0
    t0 = time.perf_counter()
    qi, row, _ = index.query(q)
    t_query = time.perf_counter() - t0
    found = set(zip(qi.tolist(), row.tolist(), strict=True))
    recall = np.mean([(i, int(r)) in found for i, r in enumerate(src)])
    t0 = time.perf_counter()
    bq, brow, bd = brute_force(q[: a.baseline], pool, rows, PHASH_THRESHOLD)
    t_base = time.perf_counter() - t0
    sub = qi < a.baseline
    same = np.array_equal(qi[sub], bq) and np.array_equal(row[sub], brow)
    base_all = t_base * a.eval / a.baseline
    print(f"pHash: {a.eval:,} eval vs {a.pool:,} pool hashes, threshold {PHASH_THRESHOLD} bits")
    print(f"  {index.method}")
    print(f"  build {t_build:.1f} s, query {t_query:.1f} s ({a.eval / t_query:,.0f} eval/s); "
          f"{len(qi):,} pairs; planted recall {recall:.4f}")
    print(f"  all pairs on {a.baseline} eval hashes: {t_base:.1f} s, same pairs: {same}; scaled "
          f"to {a.eval:,}: {base_all:,.0f} s (linear, extrapolated) -> "
          f"{base_all / (t_build + t_query):,.0f}x")
    return {"seconds": t_build + t_query}


def bench_sha(a: argparse.Namespace, rng: np.random.Generator) -> dict:
    import duckdb
    import pyarrow as pa

    con = duckdb.connect()
    t0 = time.perf_counter()
    con.execute(f"CREATE TABLE samples AS SELECT range AS row_id, sha256(range::VARCHAR) AS sha256 "
                f"FROM range({a.pool})")  # fmt: skip
    t_make = time.perf_counter() - t0
    inside = rng.choice(a.pool, a.planted, replace=False)
    keys = [f"x{i}" for i in range(a.eval - a.planted)] + [str(i) for i in inside]
    sha = [hashlib.sha256(k.encode()).hexdigest() for k in keys]
    table = pa.table({"i": np.arange(a.eval), "sha": sha})
    con.register("eval_sha", table)
    t0 = time.perf_counter()
    got = con.execute("SELECT e.i, s.row_id FROM samples s JOIN eval_sha e ON s.sha256 = e.sha "
                      "ORDER BY e.i, s.row_id").fetchnumpy()  # fmt: skip
    t_join = time.perf_counter() - t0
    ok = sorted(got["row_id"].tolist()) == sorted(inside.tolist())
    print(f"sha256: {a.eval:,} eval vs {a.pool:,} pool rows (column made in {t_make:.1f} s): "
          f"join {t_join:.2f} s, {len(got['i']):,} matches, exactly the planted: {ok}")
    return {"seconds": t_join}


def bench_embed(a: argparse.Namespace, rng: np.random.Generator) -> dict:
    from backend import index as vindex

    n, d = a.embed_pool, a.dim
    centres = rng.standard_normal((256, d)).astype(np.float32)
    pool = centres[rng.integers(0, 256, n)] + 0.8 * rng.standard_normal((n, d)).astype(np.float32)
    pool /= np.linalg.norm(pool, axis=1, keepdims=True)
    pool = pool.astype(np.float16)
    q = centres[rng.integers(0, 256, a.eval)] + 0.8 * rng.standard_normal((a.eval, d))
    src = rng.choice(n, a.planted, replace=False)
    q[: a.planted] = pool[src] + 0.25 / np.sqrt(d) * rng.standard_normal((a.planted, d))
    q = (q / np.linalg.norm(q, axis=1, keepdims=True)).astype(np.float32)
    t0 = time.perf_counter()
    plan = vindex.choose(n, d)
    idx = vindex.build(pool, plan)
    t_build = time.perf_counter() - t0
    thr = 0.9
    t0 = time.perf_counter()
    hits = set()
    for lo in range(0, a.eval, 1024):
        s, ids = vindex.search(idx, q[lo : lo + 1024], 10, vectors=pool)
        i, j = np.nonzero((s >= thr) & (ids >= 0))
        hits |= set(zip((i + lo).tolist(), ids[i, j].tolist(), strict=True))
    t_query = time.perf_counter() - t0
    t0 = time.perf_counter()
    sims = q[: a.baseline] @ pool.astype(np.float32).T
    bi, bj = np.nonzero(sims >= thr)
    t_base = time.perf_counter() - t0
    truth = set(zip(bi.tolist(), bj.tolist(), strict=True))
    got = {h for h in hits if h[0] < a.baseline}
    recall = len(got & truth) / max(len(truth), 1)
    per_q_idx, per_q_base = t_query / a.eval, t_base / a.baseline
    print(f"embeddings: {a.eval:,} eval vs {n:,} pool vectors of {d} dims ({plan.factory}), "
          f"cosine >= {thr}")
    print(f"  index build {t_build:.1f} s, search {t_query:.1f} s ({per_q_idx * 1e3:.2f} ms/eval)"
          f"; {len(hits):,} matches; recall vs exact on {a.baseline}: {recall:.3f} "
          f"({len(truth)} true pairs)")
    print(f"  exact baseline {per_q_base * 1e3:.1f} ms/eval -> {per_q_base / per_q_idx:,.0f}x; "
          f"search time per eval image per 10^6 pool rows: {per_q_idx * 1e6 / n * 1e3:.2f} ms")
    return {"seconds": t_query}


def bench_caption(a: argparse.Namespace, rng: np.random.Generator) -> dict:
    from backend.concepts.match import match_captions, matcher
    from backend.concepts.vocab import Vocabulary

    words = [f"w{i}" for i in range(5000)]
    evals = [" ".join(words[j] for j in r) for r in rng.integers(0, 5000, (a.eval, 8)).tolist()]
    caps = [" ".join(words[j] for j in r)
            for r in rng.integers(0, 5000, (a.caption_pool, 12)).tolist()]
    planted = rng.choice(a.caption_pool, a.planted, replace=False)
    for k, r in enumerate(planted):
        caps[r] = "photo " + evals[k] + " sale"
    t0 = time.perf_counter()
    m = matcher(Vocabulary("eval", evals, [[e] for e in evals]), plurals=False)
    t_build = time.perf_counter() - t0
    t0 = time.perf_counter()
    rows = []
    for lo in range(0, a.caption_pool, 200_000):
        ci, _ = match_captions(m, caps[lo : lo + 200_000])
        rows.extend((ci + lo).tolist())
    t_scan = time.perf_counter() - t0
    ok = set(planted.tolist()) <= set(rows)
    rate = a.caption_pool / t_scan
    print(f"captions: {a.eval:,} eval captions, automaton {t_build:.1f} s; scanned "
          f"{a.caption_pool:,} pool captions in {t_scan:.1f} s ({rate:,.0f}/s), planted found: "
          f"{ok}; scaled to {a.pool:,}: {a.pool / rate:,.0f} s (extrapolated)")
    return {"seconds": t_build + a.pool / rate}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--pool", type=int, default=10_000_000)
    p.add_argument("--eval", type=int, default=100_000)
    p.add_argument("--planted", type=int, default=2000)
    p.add_argument("--baseline", type=int, default=200)
    p.add_argument("--embed-pool", type=int, default=1_000_000)
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--caption-pool", type=int, default=1_000_000)
    p.add_argument("--skip", nargs="*", default=[], choices=("phash", "sha", "embed", "caption"))
    a = p.parse_args()
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores")
    rng = np.random.default_rng(0)
    total = 0.0
    for part, fn in (("phash", bench_phash), ("sha", bench_sha), ("embed", bench_embed),
                     ("caption", bench_caption)):  # fmt: skip
        if part in a.skip:
            print(f"{part}: not run (--skip)")
            continue
        total += fn(a, rng)["seconds"]
    print(f"matching total (embeddings at {a.embed_pool:,} rows; captions scaled): {total:,.0f} s"
          " — eval images' own hashing and embedding not included")


if __name__ == "__main__":
    main()
