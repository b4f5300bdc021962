"""Safety scorers' CPU throughput on demo images, and pHash near-duplicate search at scale.

    .venv/bin/python bench/safety.py [--rows 300] [--ocr-rows 30] [--hashes 1000000]
                                     [--baseline 20000] [--pairs 10000]

1. Scorers: a demo dataset of ``--rows`` rows (real photos, synthetic scenes, planted
   watermarks) is generated and ingested in a temp folder; its image bytes are read once, then
   each scorer's ``score_batch`` is timed over batches of 64 rows (OCR over ``--ocr-rows``
   only; it is slow). Rows/s exclude model loading and reading the bytes.
2. pHash search: uniform random 64-bit hashes with ``--pairs`` planted near duplicates (each
   0..8 random bit flips from another hash). The banded search (``backend.phash_pairs.near_pairs``)
   and the all-pairs baseline run on the same ``--baseline`` hashes: ratio of times, recall of
   banding against all pairs. At ``--hashes`` only banding runs (all pairs would take hours):
   its recall is against the planted pairs, and the all-pairs time is extrapolated from the
   baseline run (quadratic), labelled as such.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import argparse  # noqa: E402
import platform  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from backend.phash_pairs import PHASH_THRESHOLD, all_pairs, near_pairs, tables_for  # noqa: E402


def demo_rows(rows: int, workdir: Path) -> list[dict]:
    from backend.demo import generate
    from backend.ingest import build
    from backend.safety.rows import _attach_images, _fetch_rows
    from backend.store import connect

    generate(workdir / "demo" / "source", rows=rows, seed=0, shard_size=1000)
    build("demo", workdir / "demo" / "source", "webdataset", root=workdir, workers=1)
    con = connect("demo", workdir)
    n = con.execute("SELECT count(*) FROM samples").fetchone()[0]
    out = _fetch_rows(con, 0, n)
    _attach_images(out)
    return [r for r in out if r.get("image")]


def bench_scorers(rows: list[dict], ocr_rows: int) -> None:
    from backend.safety import Context, ScorerUnavailable, registry
    from backend.safety.rows import score_rows

    print(f"\n== scorers on {len(rows)} demo rows (CPU, {os.cpu_count()} cores) ==")
    print(f"{'scorer':<10} {'rows':>6} {'seconds':>8} {'rows/s':>8}  model")
    ctx = Context("demo", None, len(rows), {})
    for name, cls in registry().items():
        s = cls()
        try:
            s.load(ctx)
        except ScorerUnavailable as e:
            print(f"{name:<10} skipped: {str(e)[:110]}")
            continue
        if "embedding" in s.reads:
            print(f"{name:<10} skipped: reads stored embeddings (no scoring work to time)")
            continue
        todo = rows[:ocr_rows] if name == "ocr" else rows
        score_rows(s, todo[:4])  # warm-up
        t0 = time.perf_counter()
        errors = 0
        for lo in range(0, len(todo), 64):
            _, errs = score_rows(s, todo[lo : lo + 64])
            errors += sum(e is not None for e in errs)
        dt = time.perf_counter() - t0
        print(f"{name:<10} {len(todo):>6} {dt:>8.2f} {len(todo) / dt:>8.1f}  {s.model}"
              + (f"  ({errors} row errors)" if errors else ""))  # fmt: skip


def planted_hashes(n: int, pairs: int, seed: int = 0) -> tuple[np.ndarray, set]:
    rng = np.random.default_rng(seed)
    h = rng.integers(0, 2**64 - 1, size=n, dtype=np.uint64, endpoint=True)
    idx = rng.permutation(n)[: 2 * pairs]
    src, dst = idx[:pairs], idx[pairs:]
    for s, d in zip(src, dst, strict=True):
        flips = rng.choice(64, rng.integers(0, PHASH_THRESHOLD + 1), replace=False)
        h[d] = h[s] ^ np.bitwise_or.reduce(np.uint64(1) << flips.astype(np.uint64), initial=0)
    return h, {(min(s, d), max(s, d)) for s, d in zip(src.tolist(), dst.tolist(), strict=True)}


def faiss_all_pairs(h: np.ndarray) -> int:
    """All pairs within the threshold by FAISS's exhaustive binary range search (a fast
    all-pairs baseline); returns the pair count."""
    import faiss

    codes = np.ascontiguousarray(h).view(np.uint8).reshape(len(h), 8)
    index = faiss.IndexBinaryFlat(64)
    index.add(codes)
    lims, _, ids = index.range_search(codes, PHASH_THRESHOLD + 1)  # radius is exclusive
    rows = np.repeat(np.arange(len(h)), np.diff(lims).astype(np.int64))
    return int((ids > rows).sum())


def bench_phash(n_big: int, n_base: int, pairs: int) -> None:
    print(f"\n== pHash near duplicates, Hamming <= {PHASH_THRESHOLD} of 64 bits ==")
    h, planted = planted_hashes(n_base, max(1, pairs * n_base // n_big))
    t0 = time.perf_counter()
    base = set(zip(*all_pairs(h, PHASH_THRESHOLD), strict=True))
    t_all = time.perf_counter() - t0
    t0 = time.perf_counter()
    n_faiss = faiss_all_pairs(h)
    t_faiss = time.perf_counter() - t0
    t0 = time.perf_counter()
    band = set(zip(*near_pairs(h, PHASH_THRESHOLD), strict=True))
    t_band = time.perf_counter() - t0
    print(f"n={n_base:,}: all pairs {t_all:.2f} s ({len(base)} pairs), banding "
          f"{t_band:.2f} s ({tables_for(n_base)} tables, {len(band)} pairs): "
          f"{t_all / t_band:.1f}x faster, recall vs all pairs {len(band & base) / len(base):.3f}, "
          f"precision {len(band & base) / max(len(band), 1):.3f}")  # fmt: skip
    print(f"n={n_base:,}: all pairs in FAISS (IndexBinaryFlat range search, C++) {t_faiss:.2f} s "
          f"({n_faiss} pairs): banding {t_faiss / t_band:.1f}x faster")  # fmt: skip
    h, planted = planted_hashes(n_big, pairs)
    t0 = time.perf_counter()
    got = set(zip(*near_pairs(h, PHASH_THRESHOLD), strict=True))
    t_big = time.perf_counter() - t0
    est_all = min(t_all, t_faiss) * (n_big / n_base) ** 2
    print(f"n={n_big:,}: banding {t_big:.1f} s ({tables_for(n_big)} tables, {len(got)} pairs), "
          f"recall of {len(planted):,} planted pairs {len(got & planted) / len(planted):.3f}; "
          f"fastest all pairs extrapolated (n^2 from n={n_base:,}) {est_all:.0f} s = "
          f"{est_all / t_big:.0f}x slower")  # fmt: skip
    d = np.bitwise_count(h[[p[0] for p in planted]] ^ h[[p[1] for p in planted]])
    found = np.array([p in got for p in planted])
    print("recall by distance: " + ", ".join(
        f"{k}:{found[d == k].mean():.2f}" for k in range(PHASH_THRESHOLD + 1) if (d == k).any()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=300)
    ap.add_argument("--ocr-rows", type=int, default=30)
    ap.add_argument("--hashes", type=int, default=1_000_000)
    ap.add_argument("--baseline", type=int, default=20_000)
    ap.add_argument("--pairs", type=int, default=10_000)
    ap.add_argument("--skip-scorers", action="store_true")
    args = ap.parse_args()
    print(f"python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} cores")
    if not args.skip_scorers:
        with tempfile.TemporaryDirectory() as tmp:
            bench_scorers(demo_rows(args.rows, Path(tmp)), args.ocr_rows)
    bench_phash(args.hashes, args.baseline, args.pairs)


if __name__ == "__main__":
    main()
