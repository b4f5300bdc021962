"""Contamination audit at scale: 10^5 eval images against a 10^7-row pool, each kind of match.

    .venv/bin/python bench/contamination.py [--pool 10000000] [--eval 100000] [--planted 2000]
        [--baseline 200] [--embed-pool 1000000] [--dim 64] [--caption-pool 1000000] [--skip ...]
        [--old-sample 10000] [--cache DIR]

Synthetic data (hashes, vectors, captions; no images), planted truth, the audit's own code:

1. pHash: ``--pool`` uniform 64-bit hashes; ``--eval`` eval hashes of which ``--planted`` are
   pool hashes moved 0..8 random bits. :class:`backend.contamination.hashindex.HashIndex`
   (multi-index hashing) is timed building and answering all eval hashes; the all-pairs
   baseline runs on ``--baseline`` eval hashes against the whole pool, must give exactly the
   same pairs, and its time is scaled to the whole eval set (linear in eval images: labelled).
2. sha256: the pool's sha256 as a DuckDB column, ``--eval`` eval hashes (``--planted`` of them
   in the pool) joined as the audit joins them.
3. Embeddings: ``--embed-pool`` clustered unit vectors of ``--dim`` dims (float16 memmap) in the
   index the project's chooser picks (``backend.index``; the pool's own index, built once, so
   its build is timed apart and ``--cache DIR`` keeps pool and index for the next run);
   ``--eval`` eval vectors of which ``--planted`` are noisy copies (cosine ~0.97), searched by
   the audit's own ``embedmatch.neighbours`` (top 10, threshold 0.9, NEAR_NPROBE lists, exact
   re-rank). Baselines in the same run: exact top-10 over every pool vector on ``--baseline``
   eval vectors (recall, and the time scaled linearly), recall there at other probe counts, and
   the search as it was before (index nprobe, 1024 a call, SQ8 scores) on ``--old-sample`` eval
   vectors, scaled. Wall and CPU seconds both: CPU says more on shared cores.
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
    block = max(1, (1 << 26) // a.pool)  # eval hashes a step: ~0.5 GB of XORs (256: 20 GB)
    bq, brow, bd = brute_force(q[: a.baseline], pool, rows, PHASH_THRESHOLD, block)
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


def embed_pool(n: int, d: int, cache: str | None) -> tuple[np.ndarray, np.ndarray]:
    """``n`` clustered unit vectors (256 centres, float16, made 10^6 at a time into a memmap)
    and the centres; kept in ``cache`` (``pool-{n}x{d}.npy``) for the next run."""
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((256, d)).astype(np.float32)
    path = os.path.join(cache, f"pool-{n}x{d}.npy") if cache else None
    if path and os.path.exists(path):
        return np.load(path, mmap_mode="r"), centres
    tmp = (path or os.path.join("/tmp", f"tailscope-bench-pool-{os.getpid()}.npy")) + ".tmp"
    pool = np.lib.format.open_memmap(tmp, "w+", np.float16, (n, d))
    for lo in range(0, n, 1_000_000):
        m = min(n, lo + 1_000_000) - lo
        x = centres[rng.integers(0, 256, m)] + 0.8 * rng.standard_normal((m, d), dtype=np.float32)
        pool[lo : lo + m] = x / np.linalg.norm(x, axis=1, keepdims=True)
    pool.flush()
    del pool
    final = path or tmp[:-4]
    os.replace(tmp, final)
    out = np.load(final, mmap_mode="r")
    if not path:
        os.unlink(final)  # the open memmap keeps the data until the process ends
    return out, centres


def embed_index(pool: np.ndarray, cache: str | None):
    """The project's chosen index for the pool (``backend.index``), built or read from cache."""
    import faiss

    from backend import index as vindex
    from backend import index_search

    n, d = pool.shape
    plan = vindex.choose(n, d)
    path = os.path.join(cache, f"index-{n}x{d}-{plan.factory}.faiss") if cache else None
    t0, c0 = time.perf_counter(), time.process_time()
    if path and os.path.exists(path):
        idx = faiss.read_index(path)
        index_search._apply_params(idx, plan.params)  # noqa: SLF001 -- what vindex.load does
        how = f"read from {path}"
    else:
        idx = vindex.build(pool, plan)
        how = "built"
        if path:
            faiss.write_index(idx, path)
    how += f" in {time.perf_counter() - t0:.0f} s ({time.process_time() - c0:.0f} s CPU)"
    return idx, plan, how


def exact_top(q: np.ndarray, pool: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Brute force: every pool vector scored (matmul, 500k rows at a time), top ``k`` each."""
    best_s, best_i = [], []
    for lo in range(0, len(pool), 500_000):
        s = q @ np.asarray(pool[lo : lo + 500_000], dtype=np.float32).T
        part = np.argpartition(-s, k - 1, axis=1)[:, :k]
        best_s.append(np.take_along_axis(s, part, 1))
        best_i.append(part + lo)
    s, i = np.concatenate(best_s, 1), np.concatenate(best_i, 1)
    order = np.argsort(-s, axis=1)[:, :k]
    return np.take_along_axis(s, order, 1), np.take_along_axis(i, order, 1)


def timed(fn, *args, **kw):
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn(*args, **kw)
    return out, time.perf_counter() - t0, time.process_time() - c0


def search_before(idx, pool: np.ndarray, q: np.ndarray, k: int, thr: float) -> set:
    """The audit's search as it was before: 1024 eval vectors a call, the index's own nprobe,
    SQ8 scores (no re-rank). Pairs >= ``thr``."""
    from backend import index_search

    pairs = set()
    for lo in range(0, len(q), 1024):
        s, ids = index_search.search(idx, q[lo : lo + 1024], k, vectors=pool)
        i, j = np.nonzero((s >= thr) & (ids >= 0))
        pairs |= set(zip((i + lo).tolist(), ids[i, j].tolist(), strict=True))
    return pairs


def bench_embed(a: argparse.Namespace, rng: np.random.Generator) -> dict:
    """The audit's own neighbour search (``embedmatch.neighbours``) against the exact top-k on
    a sample, and against the search as it ran before (index nprobe, batches of 1024, no
    re-rank) on part of the eval set, scaled."""
    import resource

    from backend.contamination import embedmatch as em
    from backend.contamination.matchers import EMBED_DEFAULT, EMBED_K

    (pool, centres), t_make, _ = timed(embed_pool, a.embed_pool, a.dim, a.cache)
    n, d = pool.shape
    r = np.random.default_rng(1)
    q = centres[r.integers(0, 256, a.eval)] + 0.8 * r.standard_normal((a.eval, d))
    src = np.sort(r.choice(n, a.planted, replace=False))
    q[: a.planted] = pool[src] + 0.25 / np.sqrt(d) * r.standard_normal((a.planted, d))
    q = (q / np.linalg.norm(q, axis=1, keepdims=True)).astype(np.float32)
    idx, plan, how = embed_index(pool, a.cache)
    thr, k, ok = EMBED_DEFAULT, EMBED_K, np.arange(a.eval)
    probe = em.probes(idx, thr)
    (e, row, sc, _), t_q, c_q = timed(em.neighbours, idx, pool, q, ok, k, thr, probe)
    (ts, ti), t_base, _ = timed(exact_top, q[: a.baseline], pool, k)
    truth = {(int(i), int(ti[i, j])) for i, j in zip(*np.nonzero(ts >= thr), strict=True)}
    got = set(zip(e.tolist(), row.tolist(), strict=True))
    recall = len(got & truth) / max(len(truth), 1)
    planted = len(got & set(enumerate(src.tolist()))) / max(a.planted, 1)
    sweep = []  # recall on the exact sample at other probe counts: what NEAR_NPROBE rests on
    for lists in sorted({1, 4, 8, 16, 32, plan.nprobe} - {probe} if probe else ()):
        se, sr, _, _ = em.neighbours(idx, pool, q, ok[: a.baseline], k, thr, lists)
        hit = set(zip(se.tolist(), sr.tolist(), strict=True))
        sweep.append(f"{lists}: {len(hit & truth) / max(len(truth), 1):.3f}")
    old_n = min(a.eval, a.old_sample)
    old, t_old, c_old = timed(search_before, idx, pool, q[:old_n], k, thr)
    new_part = {p for p in got if p[0] < old_n}
    old_all, old_cpu = t_old * a.eval / old_n, c_old * a.eval / old_n
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"embeddings: {a.eval:,} eval vs {n:,} pool vectors of {d} dims, cosine >= {thr}, "
          f"top {k} (pool made/read in {t_make:.0f} s)")
    print(f"  index {plan.factory} (index nprobe {plan.nprobe}), {how}; the pool's own index, "
          "built once by `python -m backend index`, not part of the audit")
    print(f"  {em.method(idx, k, probe)}")
    print(f"  search {t_q:.1f} s ({c_q:.0f} s CPU; {a.eval / t_q:,.0f} eval/s); {len(e):,} "
          f"matches; planted found {planted:.4f}; recall vs exact top-{k} >= {thr} on "
          f"{a.baseline} eval: {recall:.4f} ({len(truth)} true pairs)")
    if sweep:
        print(f"  recall on the same {a.baseline} eval at other lists probed: {', '.join(sweep)}")
    print(f"  exact baseline {t_base:.1f} s for {a.baseline} -> {t_base / a.baseline * a.eval:,.0f}"
          f" s for {a.eval:,} (linear, extrapolated): {t_base / a.baseline * a.eval / t_q:,.0f}x")
    print(f"  as before (index nprobe {plan.nprobe}, 1024 a batch, SQ8 scores) on {old_n:,} "
          f"eval: {t_old:.1f} s ({c_old:.0f} s CPU) -> {old_all:,.0f} s ({old_cpu:,.0f} s CPU) "
          f"for {a.eval:,} (linear, extrapolated): {old_all / t_q:.1f}x the time now; pairs "
          f"{len(old):,} then, {len(new_part):,} now, {len(old & new_part):,} in both")
    print(f"  process peak RSS so far {peak:.2f} GiB (pool memmap {pool.nbytes / 2**30:.2f} GiB,"
          f" index ~{plan.ram_bytes / 2**30:.2f} GiB)")
    return {"seconds": t_q}


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
    p.add_argument("--old-sample", type=int, default=10_000,
                   help="eval vectors searched the old way (index nprobe), scaled")
    p.add_argument("--cache", default=None,
                   help="folder keeping the embedding pool and its index between runs")
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
