"""Vector search: the index ``backend.index.choose`` picks vs exact Flat, on clustered vectors.

    .venv/bin/python bench/search.py [--n 1000000] [--d 512] [--queries 1000] [--dir DIR]
    .venv/bin/python bench/search.py --modality-gap [--n 600000] [--scenes 2000]

``--modality-gap``: text→image queries of the demo CLIP against its image index (see
``bench/modality_gap.py``); everything below is about the synthetic vectors.

Data: a seeded Gaussian mixture written in chunks to a float16 memmap (as the embed step writes
it): ~n/250 clusters (1,000-10,000) with log-normal sizes, centres sharing a common direction and
topic structure (random pairs have cosine ≈ 0.3, like CLIP embeddings), each cluster spread over its
own 24-dim subspace with a decaying spectrum plus isotropic noise; queries are fresh draws from
the same mixture, not database rows. Ground truth is exact top-10 (Flat, in blocks of rows).

Baseline, in the same run: exact Flat search (``IndexFlatIP``) when its float32 copy fits in
memory; otherwise Flat over the first rows that fit, its times and sizes scaled linearly to n
(the output says so). Ratios
are chosen ÷ Flat for sizes and times, Flat ÷ chosen for speed-ups.
"""

from __future__ import annotations

import os
import sys

# The script's folder comes first on sys.path, and bench/keyword.py would shadow the standard
# library's ``keyword`` (imported by collections): put the repo root there instead.
sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

import argparse  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import faiss  # noqa: E402
import numpy as np  # noqa: E402

from backend import index as vindex  # noqa: E402
from backend import index_search  # noqa: E402
from backend.search import hits  # noqa: E402
from backend.synth_vectors import RANK, Mixture  # noqa: E402, F401 (bench/map.py imports it)

K = 10
CHUNK = 250_000


def meminfo(key: str) -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    return 0


def rss_anon() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) * 1024
    return 0


def mapped_rss(path: Path) -> int:
    """Resident bytes of this process's mappings of ``path`` (mmap-loaded index pages)."""
    total, mine, target = 0, False, str(path.resolve())
    for line in Path("/proc/self/smaps").read_text().splitlines():
        head = line.split(maxsplit=1)[0] if line.strip() else ""
        if "-" in head and not head.endswith(":"):  # a mapping's header line
            mine = line.rstrip().endswith(target)
        elif mine and line.startswith("Rss:"):
            total += int(line.split()[1]) * 1024
    return total


def generate(path: Path, n: int, d: int, clusters: int, nq: int) -> tuple[np.ndarray, np.ndarray]:
    """The database as a float16 .npy memmap (reused when already there) and the queries."""
    mix = Mixture(d, clusters)
    stamp = path.with_suffix(".json")
    want = {"n": n, "d": d, "clusters": clusters, "rank": RANK, "version": 1}
    if not (path.is_file() and stamp.is_file() and json.loads(stamp.read_text()) == want):
        t0 = time.perf_counter()
        out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float16, shape=(n, d))
        for i, s in enumerate(range(0, n, CHUNK)):
            e = min(n, s + CHUNK)
            out[s:e] = mix.sample(e - s, seed=1000 + i)
        out.flush()
        del out
        stamp.write_text(json.dumps(want))
        print(f"generated {n:,} × {d} float16 ({n * d * 2 / 1e9:.1f} GB) in "
              f"{time.perf_counter() - t0:.0f} s")
    return np.load(path, mmap_mode="r"), mix.sample(nq, seed=7)


def rows32(x: np.ndarray, s: int, e: int) -> np.ndarray:
    c = np.ascontiguousarray(x[s:e], dtype=np.float32)
    faiss.normalize_L2(c)
    return c


def ground_truth(x, q, filters: dict[str, np.ndarray]):
    """Exact top-K for q over all rows and over each allowed set, in blocks of rows."""
    names = ["all", *filters]
    heaps = {name: faiss.ResultHeap(len(q), K, keep_max=True) for name in names}
    block = 100_000
    for s in range(0, len(x), block):
        e = min(len(x), s + block)
        c = rows32(x, s, e)
        for name in names:
            if name == "all":
                ids = np.arange(s, e)
            else:
                a = filters[name]
                ids = a[np.searchsorted(a, s):np.searchsorted(a, e)]
                if not ids.size:
                    continue
            sub = c if name == "all" else c[ids - s]
            flat = faiss.IndexFlatIP(c.shape[1])
            flat.add(sub)
            dist, pos = flat.search(q, min(K, len(sub)))
            if dist.shape[1] < K:
                dist = np.pad(dist, ((0, 0), (0, K - dist.shape[1])), constant_values=-np.inf)
                pos = np.pad(pos, ((0, 0), (0, K - pos.shape[1])), constant_values=-1)
            heaps[name].add_result(dist, np.where(pos >= 0, ids[np.maximum(pos, 0)], -1))
    out = {}
    for name in names:
        heaps[name].finalize()
        out[name] = heaps[name].I.copy()
    return out


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    hits = [len(set(a[a >= 0]) & set(b)) for a, b in zip(found, truth, strict=True)]
    return float(np.mean(hits)) / K


def latencies(fn, q: np.ndarray) -> np.ndarray:
    out = np.empty(len(q))
    for i in range(len(q)):
        t0 = time.perf_counter()
        fn(q[i:i + 1])
        out[i] = time.perf_counter() - t0
    return out * 1e3


def raw_two_threads(index):
    """End-to-end single query like ``search`` but on all OpenMP threads (for comparison)."""
    def run(q1: np.ndarray):
        q1 = np.array(q1, dtype=np.float32)
        faiss.normalize_L2(q1)
        return index.search(q1, K)
    return run


def synthetic_store(root: Path, n: int) -> str:
    """A store-shaped DuckDB file of ``n`` rows with ~70-char captions, for end-to-end timings."""
    import duckdb

    name = "bench"
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "store-bench.duckdb"
    if not path.is_file():
        con = duckdb.connect(str(path))
        con.execute(f"""
            CREATE TABLE samples AS SELECT range AS row_id, printf('%09d', range) AS key,
              'a photo of item ' || range || ' on a table, cluster ' || (range % 997) || ' lorem'
                AS caption,
              'https://example.com/' || range || '.jpg' AS url, 256 AS width, 256 AS height,
              printf('%05d.tar', range // 10000) AS shard, 'tar' AS storage, NULL::VARCHAR AS path,
              range * 9000 AS byte_offset, 9000 AS byte_size, NULL::BIGINT AS src_row,
              'JPEG' AS format, 9000 AS file_size
            FROM range({n}) ORDER BY row_id""")
        con.close()
    link = folder / "store.duckdb"
    if not link.exists():
        link.symlink_to(path.name)
    return name


def row(what, build_s, file_mb, ram_mb, rec, lat, qps):
    p50, p95 = (np.percentile(lat, 50), np.percentile(lat, 95)) if lat is not None else (None,) * 2
    def cell(v, f):
        return format(v, f) if v is not None else format("-", ">" + f.split(".")[0])

    print(f"{what:<36} {cell(build_s, '8.1f')} {cell(file_mb, '8.0f')} {cell(ram_mb, '8.0f')} "
          f"{cell(rec, '9.4f')} {cell(p50, '8.2f')} {cell(p95, '8.2f')} {cell(qps, '8.0f')}")
    return {"build_s": build_s, "file_mb": file_mb, "ram_mb": ram_mb, "recall": rec,
            "p50": p50, "p95": p95, "qps": qps}


def modality_gap(args: argparse.Namespace) -> None:
    """The modality-gap case on the demo CLIP (its own module: bench/modality_gap.py)."""
    import hashlib

    from backend.democlip import CHECKPOINT, load_demo_clip
    from backend.models import ModelUnavailable
    from bench.modality_gap import run

    try:
        enc = load_demo_clip()
    except ModelUnavailable as e:
        sys.exit(f"the demo CLIP is needed: {e}")
    sha = hashlib.sha256(CHECKPOINT.read_bytes()).hexdigest()[:16]
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, faiss {faiss.__version__}; "
          f"model {enc.name} ({enc.dim}-d, checkpoint sha256 {sha}…)")
    t0 = time.perf_counter()
    run(enc, args.n or 600_000, args.scenes, min(args.queries, 300))
    print(f"\ntotal {time.perf_counter() - t0:.0f} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=None, help="rows (1,000,000; 600,000 with "
                    "--modality-gap)")
    ap.add_argument("--modality-gap", action="store_true",
                    help="demo CLIP text queries on its image vectors (bench/modality_gap.py)")
    ap.add_argument("--scenes", type=int, default=2000, help="--modality-gap: real scenes")
    ap.add_argument("--d", type=int, default=512)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--flat-queries", type=int, default=100, help="single-query Flat timings")
    ap.add_argument("--clusters", type=int, default=None, help="default n/250, 1,000-10,000")
    ap.add_argument("--budget-gb", type=float, default=None, help="memory budget for choose()")
    ap.add_argument("--dir", type=Path, default=None, help="keep vectors and indexes here")
    args = ap.parse_args()
    if args.modality_gap:
        modality_gap(args)
        return
    n, d = args.n or 1_000_000, args.d
    clusters = args.clusters or int(min(10_000, max(1_000, n // 250)))
    work = args.dir or Path(tempfile.mkdtemp(prefix="tailscope-search-"))
    work.mkdir(parents=True, exist_ok=True)
    budget = int(args.budget_gb * 2**30) if args.budget_gb else None
    plan = vindex.choose(n, d, budget)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, "
          f"{meminfo('MemTotal') / 2**30:.0f} GiB RAM ({meminfo('MemAvailable') / 2**30:.1f} "
          f"available), faiss {faiss.__version__}, omp threads {faiss.omp_get_max_threads()}")
    print(f"data: {n:,} × {d}, {clusters:,} clusters, {args.queries} queries, k={K}, in {work}")
    print(f"plan: {plan.factory} nprobe={plan.nprobe} efSearch={plan.ef_search} "
          f"k_factor={plan.k_factor} train={plan.train_size:,} est. RAM "
          f"{plan.ram_bytes / 1e6:,.0f} MB (build +{plan.build_ram_bytes / 1e6:,.0f} MB)")
    vec_path = work / f"vectors-{n}x{d}.npy"
    need_disk = n * d * 2 * (0 if vec_path.is_file() else 1) + plan.ram_bytes + 2**30
    free = shutil.disk_usage(work).free
    if need_disk > free:
        sys.exit(f"not enough disk in {work}: need {need_disk / 1e9:.1f} GB, "
                 f"{free / 1e9:.1f} GB free (use --dir elsewhere or a smaller --n)")
    if plan.build_ram_bytes > meminfo("MemAvailable"):
        sys.exit(f"not enough memory to build {plan.factory}: needs ~"
                 f"{plan.build_ram_bytes / 1e9:.1f} GB, {meminfo('MemAvailable') / 1e9:.1f} "
                 "GB available (pass --budget-gb for a smaller index)")

    x, q = generate(vec_path, n, d, clusters, args.queries)
    rng = np.random.default_rng(3)
    filters = {f: np.sort(rng.choice(n, max(K, int(n * f / 100)), replace=False))
               for f in (10, 0.1)}
    t0 = time.perf_counter()
    truth = ground_truth(x, q, {f"{f}%": a for f, a in filters.items()})
    gt_s = time.perf_counter() - t0
    print(f"ground truth (exact, blocked over the float16 file): {gt_s:.0f} s, "
          f"{len(q) * n / gt_s / 1e6:.0f} M query-rows/s")

    print(f"\n{'':<36} {'build s':>8} {'file MB':>8} {'RAM MB':>8} {'recall@10':>9} "
          f"{'p50 ms':>8} {'p95 ms':>8} {'QPS':>8}")
    res = {}
    # --- chosen index: build, save, reload memory-mapped (as the app does), measure.
    anon0 = rss_anon()
    t0 = time.perf_counter()
    built = vindex.build(x, plan)
    build_s = time.perf_counter() - t0
    build_anon = rss_anon() - anon0
    path = work / "chosen.faiss"
    vindex.save(built, path, {"model": "synthetic", "dataset": "bench"})
    del built
    gc.collect()
    anon0 = rss_anon()
    index, _ = vindex.load(path, mmap=True, expect_model="synthetic")
    _, ids = index_search.search(index, q, K)  # warm: touch the lists queries use
    lat1 = latencies(lambda q1: index_search.search(index, q1, K), q)
    lat2 = latencies(raw_two_threads(index), q)
    faiss.omp_set_num_threads(os.cpu_count() or 1)
    t0 = time.perf_counter()
    _, ids = index_search.search(index, q, K)
    qps = len(q) / (time.perf_counter() - t0)
    ram = rss_anon() - anon0 + mapped_rss(path)
    file_mb = path.stat().st_size / 1e6
    res["chosen"] = row(plan.factory, build_s, file_mb, ram / 1e6, recall(ids, truth["all"]),
                        lat1, qps)
    row("  same, 1 query on 2 threads", None, None, None, None, lat2, None)
    store = synthetic_store(work, n)

    def end_to_end(q1: np.ndarray) -> list[dict]:
        scores, found = index_search.search(index, q1, K)
        return hits(store, [int(i) for i in found[0]], [float(v) for v in scores[0]], work)

    assert len(end_to_end(q[:1])) == K
    res["e2e"] = row("  end to end: query → rows w/ captions", None, None, None, None,
                     latencies(end_to_end, q), None)
    print(f"{'':<36} (build RSS anon +{build_anon / 1e6:,.0f} MB; RAM = anon delta after load "
          f"+ resident pages of the mmap-ed file)")
    if plan.k_factor > 1:
        _, ids_v = index_search.search(index, q, K, vectors=x)
        lat_v = latencies(lambda q1: index_search.search(index, q1, K, vectors=x), q)
        row("  + re-rank from vectors", None, None, None, recall(ids_v, truth["all"]), lat_v, None)
    for f, allowed in filters.items():
        name = f"{f}%"
        _, ids = index_search.search(index, q, K, allowed=allowed)
        ok = bool(np.isin(ids, allowed).all() and (ids >= 0).all())
        lat = latencies(lambda q1, a=allowed: index_search.search(index, q1, K, allowed=a), q)
        res[f"filter {name}"] = row(f"  filter {name} ({allowed.size:,} rows){'' if ok else ' !'}",
                                    None, None, None, recall(ids, truth[name]), lat, None)
        if allowed.size <= index_search.EXACT_FILTER_MAX:
            _, ids = index_search.search(index, q, K, allowed=allowed, vectors=x)
            lat = latencies(
                lambda q1, a=allowed: index_search.search(index, q1, K, a, vectors=x), q
            )
            row(f"  filter {name}, exact from vectors", None, None, None,
                recall(ids, truth[name]), lat, None)
    index = None
    gc.collect()
    if plan.ram_bytes < 0.5 * meminfo("MemAvailable"):  # the same index read fully into RAM
        index, _ = vindex.load(path, mmap=False)
        index_search.search(index, q, K)
        lat = latencies(lambda q1: index_search.search(index, q1, K), q)
        t0 = time.perf_counter()
        index_search.search(index, q, K)
        row("  same, load(mmap=False)", None, None, None, None, lat,
            len(q) / (time.perf_counter() - t0))
        index = None  # release it before the baseline
        gc.collect()

    # --- baseline: exact Flat in RAM when it fits, else the blocked scan over the file.
    flat_bytes = n * d * 4
    avail = meminfo("MemAvailable")
    nf = min(args.flat_queries, len(q))
    if flat_bytes < 0.6 * avail:
        anon0 = rss_anon()
        t0 = time.perf_counter()
        flat = vindex.build(x, vindex.choose(n, d, kind="flat"))
        fb = time.perf_counter() - t0
        fram = rss_anon() - anon0
        flat_lat = latencies(lambda q1: index_search.search(flat, q1, K), q[:nf])
        t0 = time.perf_counter()
        _, fids = index_search.search(flat, q, K)
        fqps = len(q) / (time.perf_counter() - t0)
        res["flat"] = row(f"Flat (baseline, {nf} single queries)", fb, flat_bytes / 1e6,
                          fram / 1e6, recall(fids, truth["all"]), flat_lat, fqps)
        del flat
    else:  # Flat time and size are linear in n: measure it on the rows that fit, scale up
        sub = int(min(n, 0.3 * avail / (4 * d)))
        scale = n / sub
        print(f"Flat would need {flat_bytes / 1e9:.1f} GB RAM, {avail / 1e9:.1f} GB available: "
              f"measured on the first {sub:,} rows and scaled ×{scale:.2f} (linear in n)")
        t0 = time.perf_counter()
        flat = vindex.build(x[:sub], vindex.choose(sub, d, kind="flat"))
        fb = time.perf_counter() - t0
        flat_lat = latencies(lambda q1: index_search.search(flat, q1, K), q[:nf])
        t0 = time.perf_counter()
        index_search.search(flat, q, K)
        fqps = len(q) / (time.perf_counter() - t0)
        res["flat"] = row(f"Flat, scaled from {sub / 1e6:.1f}M rows", fb * scale,
                          flat_bytes / 1e6, flat_bytes / 1e6, 1.0, flat_lat * scale, fqps / scale)
        del flat

    c, f = res["chosen"], res["flat"]
    ratio = lambda a, b: f"{a / b:.3g}×" if a and b else "-"  # noqa: E731
    print("\nchosen vs Flat: build time " + ratio(c["build_s"], f["build_s"])
          + ", file " + ratio(c["file_mb"], f["file_mb"])
          + ", RAM " + ratio(c["ram_mb"], f["ram_mb"])
          + f", recall@10 {c['recall']:.4f} vs {f['recall']:.4f}"
          + ", p50 speed-up " + ratio(f["p50"], c["p50"])
          + ", p95 speed-up " + ratio(f["p95"], c["p95"])
          + ", batch QPS " + ratio(c["qps"], f["qps"]))
    if args.dir is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
