"""The map step at scale: projection time, sample+transform vs full UMAP, lasso → count.

    .venv/bin/python bench/map.py [--n 100000] [--d 512] [--compare-n 100000]
                                  [--compare-sample 20000] [--lasso-n 1000000] [--dir DIR]

Data: the seeded Gaussian mixture of ``bench/search.py`` (unit vectors with topic structure and
per-cluster subspaces) as the embed step writes it (float16 memmap), behind a store-shaped
DuckDB file; the map step runs end to end on it (``backend.map.build_map``: PCA, UMAP, k-means,
labels, columns joined into the store).

1. Projection: ``build_map`` over ``--n`` rows with the default ``sample`` (200,000): per-phase
   seconds and rows/s. Target on 2 cores: 10^6 rows ≤ 20 min.
2. Sample+transform vs full UMAP at ``--compare-n`` (baseline: full UMAP, same PCA-50 input):
   time ratio, and on a 3,000-row subsample trustworthiness (sklearn, 10 neighbours) and 10-NN
   preservation against the 512-d vectors, for both.
3. Lasso → count over ``--lasso-n`` map points in DuckDB: a 64- and a 256-vertex lasso compiled
   by ``backend.selection`` (bounding box + even-odd ray test), vs the bounding-box count alone
   as the baseline. Target: ≤ 1 s over 10^6 rows.

numba compiles UMAP's kernels on first use; a warm-up fit runs first and is reported apart.
"""

from __future__ import annotations

import os
import sys

sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # repo root first

import argparse  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import duckdb  # noqa: E402
import numpy as np  # noqa: E402

from backend import map as bmap  # noqa: E402
from backend import map_umap  # noqa: E402
from backend.manifest import update_manifest  # noqa: E402
from backend.selection import Selection  # noqa: E402
from bench.search import Mixture, generate, synthetic_store  # noqa: E402


def dataset(root: Path, n: int, d: int, clusters: int) -> str:
    """A store-shaped dataset of ``n`` rows with mixture vectors as its text embeddings."""
    name = synthetic_store(root, n)
    con = duckdb.connect(str(root / name / "store.duckdb"))
    con.execute("CREATE TABLE IF NOT EXISTS rejects (src VARCHAR, reason VARCHAR)")
    con.execute("CREATE TABLE IF NOT EXISTS build_manifest (k VARCHAR, v VARCHAR)")
    con.close()
    emb = root / name / "embeddings"
    emb.mkdir(exist_ok=True)
    generate(emb / "text.npy", n, d, clusters, 1)
    update_manifest(
        root / name / "manifest.json",
        "embed",
        {"status": "done", "kinds": {"text": {"model": "mixture", "dim": d, "rows": n}}},
    )
    return name


def warm_up() -> float:
    """Compile UMAP's and NN-descent's numba kernels (cached on disk after the first run)."""
    t0 = time.perf_counter()
    x = Mixture(50, 20).sample(6000, seed=3)
    map_umap._umap(x, 5000, 0, None)  # sample+transform: NN-descent, fit, transform
    map_umap._umap(x[:2000], 5000, 0, None)  # exact-neighbour path
    return time.perf_counter() - t0


def projection(root: Path, n: int, d: int, sample: int) -> dict:
    name = dataset(root, n, d, max(20, n // 2500))
    done = {}

    def progress(phase: str, i: int, total: int) -> None:
        if phase == "umap" and i and done.get(phase) != i:
            print(f"    umap {i:,}/{total:,} at {time.perf_counter() - t0:.0f} s", flush=True)
        done[phase] = i

    t0 = time.perf_counter()
    rec = bmap.build_map(name, root, sample=sample, progress=progress)
    secs = time.perf_counter() - t0
    print(f"\n1. projection of {n:,} × {d} rows ({rec['method']}, fitted on {rec['sample']:,}, "
          f"k={rec['k']}): {secs:.1f} s = {secs / 60:.2f} min, {n / secs:,.0f} rows/s")  # fmt: skip
    print("   phases (s): " + ", ".join(f"{k} {v:.1f}" for k, v in rec["phases"].items()))
    if n >= 1_000_000:
        print(f"   target ≤ 20 min for 10^6 rows: {'met' if secs <= 1200 else 'MISSED'}")
    return rec


def knn_sets(x: np.ndarray, k: int) -> np.ndarray:
    d = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1) if x.shape[1] <= 2 else -x @ x.T
    np.fill_diagonal(d, np.inf)
    return np.argsort(d, axis=1)[:, :k]


def quality(high: np.ndarray, low: np.ndarray, k: int = 10) -> tuple[float, float]:
    """(trustworthiness, share of the k nearest neighbours in high-d kept in 2-D)."""
    from sklearn.manifold import trustworthiness

    tw = trustworthiness(high, low, n_neighbors=k)
    hi, lo = knn_sets(high, k), knn_sets(low, k)
    kept = np.mean([len(set(a) & set(b)) / k for a, b in zip(hi, lo, strict=True)])
    return float(tw), float(kept)


def compare(root: Path, n: int, d: int, sample: int) -> None:
    vec, _ = generate(root / f"compare-{n}.npy", n, d, max(20, n // 2500), 1)
    rows = np.arange(n)
    with map_umap._faiss_threads(n):
        x = bmap._pca(vec, rows, bmap.PCA_DIMS, np.random.default_rng(0), None)
    sub = np.sort(np.random.default_rng(5).choice(n, min(n, 3000), replace=False))
    high = bmap._normalised(vec[sub])
    out = {}
    for label, s in (("full UMAP (baseline)", n), (f"sample {sample:,} + transform", sample)):
        t0 = time.perf_counter()
        xy, method, _ = map_umap._umap(x, s, 0, None)
        secs = time.perf_counter() - t0
        tw, kept = quality(high, xy[sub])
        out[label] = (secs, tw, kept)
        print(f"   {label:<28} {method:<22} {secs:8.1f} s  trustworthiness {tw:.3f}  "
              f"10-NN kept {kept:.3f}", flush=True)  # fmt: skip
    (bt, btw, bk), (st, stw, sk) = out.values()
    print(f"   ratio sample÷full: time {st / bt:.2f}×, trustworthiness {stw / btw:.3f}, "
          f"10-NN kept {sk / bk:.3f}")  # fmt: skip


def lasso_points(n: int) -> np.ndarray:
    """Map-like 2-D points: 300 Gaussian blobs of uneven size."""
    rng = np.random.default_rng(11)
    centres = rng.uniform(-10, 10, (300, 2))
    which = rng.choice(300, n, p=(w := rng.pareto(1.5, 300) + 0.1) / w.sum())
    return centres[which] + rng.normal(0, 0.4, (n, 2))


def lasso_polygon(vertices: int, radius: float = 4.0) -> tuple[tuple[float, float], ...]:
    """A wobbly closed lasso path around (1, -2)."""
    t = np.linspace(0, 2 * math.pi, vertices, endpoint=False)
    r = radius * (1 + 0.25 * np.sin(5 * t))
    return tuple(zip((1 + r * np.cos(t)).tolist(), (-2 + r * np.sin(t)).tolist(), strict=True))


def timed(con, sql: str, params: list, reps: int = 7) -> tuple[float, int]:
    con.execute(sql, params).fetchall()  # warm
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        got = con.execute(sql, params).fetchone()[0]
        times.append(time.perf_counter() - t0)
    return float(np.median(times)), int(got)


def lasso(root: Path, n: int) -> None:
    path = root / f"lasso-{n}.duckdb"
    con = duckdb.connect(str(path))
    have = "samples" in {r[0] for r in con.execute("SHOW TABLES").fetchall()}
    if not have:
        import pyarrow as pa

        xy = lasso_points(n)
        con.register("t", pa.table({"row_id": np.arange(n), "map_x": xy[:, 0], "map_y": xy[:, 1]}))
        con.execute("CREATE TABLE samples AS SELECT * FROM t ORDER BY row_id")
        con.unregister("t")
        con.execute("CHECKPOINT")
    cols = {"map_x": "DOUBLE", "map_y": "DOUBLE", "row_id": "BIGINT"}
    threads = con.execute("SELECT current_setting('threads')").fetchone()[0]
    print(f"\n3. lasso → count over {n:,} map points (DuckDB, {threads} threads)")
    for vertices in (4, 64, 256):
        poly = lasso_polygon(vertices) if vertices > 4 else ((-3, -6), (5, -6), (5, 2), (-3, 2))
        where, params = Selection(polygon=poly).where(cols)
        lt, got = timed(con, f"SELECT count(*) FROM samples WHERE {where}", params)
        xs, ys = [p[0] for p in poly], [p[1] for p in poly]
        bbox = "map_x BETWEEN ? AND ? AND map_y BETWEEN ? AND ?"
        bt, bgot = timed(con, f"SELECT count(*) FROM samples WHERE {bbox}",
                         [min(xs), max(xs), min(ys), max(ys)])  # fmt: skip
        name = "box" if vertices == 4 else f"lasso {vertices} vertices"
        print(f"   {name:<22} {lt * 1000:8.1f} ms → {got:,} rows   bbox-only baseline "
              f"{bt * 1000:6.1f} ms → {bgot:,} rows   ratio {lt / bt:5.1f}×   "
              f"target ≤ 1 s: {'met' if lt <= 1 else 'MISSED'}")  # fmt: skip
    con.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=100_000, help="rows for the projection timing")
    ap.add_argument("--d", type=int, default=512)
    ap.add_argument("--sample", type=int, default=200_000, help="build_map's sample")
    ap.add_argument("--compare-n", type=int, default=100_000, help="0 skips the comparison")
    ap.add_argument("--compare-sample", type=int, default=20_000)
    ap.add_argument("--lasso-n", type=int, default=1_000_000, help="0 skips the lasso timing")
    ap.add_argument("--skip-projection", action="store_true")
    ap.add_argument("--dir", type=Path, default=None, help="keep data here between runs")
    args = ap.parse_args()
    root = args.dir or Path(tempfile.mkdtemp(prefix="bench-map-"))
    root.mkdir(parents=True, exist_ok=True)
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores; data in {root}")
    print(f"warm-up (numba compile, cached on disk after the first run): {warm_up():.1f} s")
    if not args.skip_projection:
        projection(root / f"n{args.n}", args.n, args.d, args.sample)
    if args.compare_n:
        print(f"\n2. sample+transform vs full UMAP at {args.compare_n:,} rows (PCA-50 input)")
        compare(root, args.compare_n, args.d, args.compare_sample)
    if args.lasso_n:
        lasso(root, args.lasso_n)


if __name__ == "__main__":
    main()
