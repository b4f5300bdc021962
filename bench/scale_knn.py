"""kNN at 10^7 × 512 with the sharded IVF index whose inverted lists stay on disk
(``backend.index_shards``), against the same index with its lists in RAM.

    flock /tmp/bigrun.lock .venv/bin/python bench/scale_knn.py [--n 10000000] [--shards 10]
        [--d 512] [--dir /work/scale/knn] [--executor local --workers 2] [--queries 1000]
        [--nprobe 34,68,136] [--keep-shards] [--json out.json]

Data: ``bench/search.py``'s seeded mixture (its ``Mixture``, cluster count and chunk seeds; the
shards concatenated equal the file ``bench/search.py`` writes for the same n when a shard's rows
are a multiple of 250,000) as ``--shards`` float16 ``.npy`` files under ``--dir`` (kept and
reused); queries are fresh draws. Ground truth: exact top-10 by scanning the shards in blocks
(``bench/search.py``'s ``ground_truth``), cached beside the vectors.

Build, timed in parts: train ``backend.index.choose``'s factory on its seeded sample; one
``add_shard`` unit per shard on the executor (one OpenMP thread a worker); merge into
``merged.ivfdata`` + ``populated.index``. The shard indexes are deleted after the merge
unless ``--keep-shards``.

Queries run in a fresh process per index, one query at a time (``backend.index_search.search``, one
thread), 1,000 per nprobe. Measured: RSS of that process (anon and file-backed) after open and
after the queries, recall@10, p50/p95 latency per nprobe. The on-disk index first answers the
queries with its lists evicted from the page cache (``posix_fadvise(DONTNEED)``: cold), then
warm. Baseline, in the same run: the same merged index with its lists copied into RAM
(``open_index(in_ram=True)``, an ordinary ``ArrayInvertedLists`` IVF). Ratios are on-disk ÷
in-RAM.
"""

from __future__ import annotations

import os
import sys

sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # repo root first

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import faiss  # noqa: E402
import numpy as np  # noqa: E402

from backend import index as vindex  # noqa: E402
from backend import index_plan, index_search  # noqa: E402
from backend import index_shards as shards  # noqa: E402
from backend.executor import Executor  # noqa: E402
from bench.search import (  # noqa: E402
    CHUNK,
    RANK,
    K,
    Mixture,
    ground_truth,
    mapped_rss,
    meminfo,
    recall,
)


class Concat:
    """Row slices and row picks over the shard files as if they were one array."""

    def __init__(self, paths: list[Path]) -> None:
        self.parts = [np.load(p, mmap_mode="r") for p in paths]
        self.starts = np.concatenate([[0], np.cumsum([len(p) for p in self.parts])])
        self.shape = (int(self.starts[-1]), self.parts[0].shape[1])

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, which: slice) -> np.ndarray:
        s, e, _ = which.indices(len(self))
        return self.take(np.arange(s, e))

    def take(self, rows: np.ndarray) -> np.ndarray:
        """Rows (sorted ids) gathered shard by shard."""
        out = []
        for k, part in enumerate(self.parts):
            lo, hi = np.searchsorted(rows, self.starts[k : k + 2])
            if hi > lo:
                out.append(part[rows[lo:hi] - self.starts[k]])
        return np.concatenate(out) if out else np.zeros((0, self.shape[1]), np.float16)


def generate(folder: Path, n: int, d: int, parts: int, nq: int) -> tuple[list[Path], np.ndarray]:
    """``parts`` float16 shards of the seeded mixture (reused when their stamp matches) and the
    queries."""
    clusters = int(min(10_000, max(1_000, n // 250)))  # as bench/search.py
    mix = Mixture(d, clusters)
    rows = [n // parts + (k < n % parts) for k in range(parts)]
    paths = [folder / f"emb-{k:03d}.npy" for k in range(parts)]
    stamp = folder / "vectors.json"
    want = {"n": n, "d": d, "parts": parts, "clusters": clusters, "rank": RANK, "version": 1}
    if not (stamp.is_file() and json.loads(stamp.read_text()) == want):
        stamp.unlink(missing_ok=True)
        for old in folder.glob("truth-*.npy"):
            old.unlink()
        t0, chunk = time.perf_counter(), 0
        for path, m in zip(paths, rows, strict=True):
            out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float16, shape=(m, d))
            for s in range(0, m, CHUNK):
                e = min(m, s + CHUNK)
                out[s:e] = mix.sample(e - s, seed=1000 + chunk)
                chunk += 1
            out.flush()
            del out
        stamp.write_text(json.dumps(want))
        print(
            f"generated {n:,} × {d} float16 in {parts} shards ({n * d * 2 / 1e9:.1f} GB) in "
            f"{time.perf_counter() - t0:.0f} s"
        )
    return paths, mix.sample(nq, seed=7)


def truth_for(folder: Path, paths: list[Path], q: np.ndarray) -> tuple[np.ndarray, float]:
    """Exact top-K of the queries over all shards (cached by query count)."""
    cache = folder / f"truth-{len(q)}.npy"
    if cache.is_file():
        return np.load(cache), 0.0
    t0 = time.perf_counter()
    ids = ground_truth(Concat(paths), q, {})["all"]
    np.save(cache, ids)
    return ids, time.perf_counter() - t0


def status(lists: Path | None = None) -> dict[str, int]:
    """This process's resident memory (bytes): total, anonymous, file-backed, and of that the
    pages of the mapped ``lists`` file."""
    out = {"lists": mapped_rss(lists) if lists else 0}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "RssAnon", "RssFile"):
            out[key] = int(value.split()[0]) * 1024
    return out


def evict(path: Path) -> None:
    """Drop ``path``'s clean pages from the page cache (no root needed)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def query_child(args: argparse.Namespace) -> None:
    """One query process: open the index, answer the queries at each nprobe, report RSS."""
    q = np.load(args.queries_file)
    lists = args.index / shards.IVFDATA
    out: dict = {"rss_start": status(lists)}
    if args.mode == "disk":
        evict(args.index / shards.IVFDATA)
    t0 = time.perf_counter()
    index, meta = shards.open_index(args.index, in_ram=args.mode == "ram")
    out["open_s"] = time.perf_counter() - t0
    out["rss_open"] = status(lists)
    ef = meta["params"]["ef_search"]
    passes = [("cold", args.nprobe[0])] if args.mode == "disk" else []
    passes += [("warm", p) for p in args.nprobe]
    ids = {}
    for name, nprobe in passes:
        index_search._apply_params(index, {"nprobe": nprobe, "ef_search": max(ef, nprobe)})
        lat = np.empty(len(q))
        found = np.empty((len(q), K), np.int64)
        for i in range(len(q)):
            t = time.perf_counter()
            found[i] = index_search.search(index, q[i : i + 1], K)[1][0]
            lat[i] = time.perf_counter() - t
        ids[f"{name}-{nprobe}"] = found
        out[f"{name}-{nprobe}"] = {
            "p50_ms": float(np.percentile(lat, 50) * 1e3),
            "p95_ms": float(np.percentile(lat, 95) * 1e3),
            "mean_ms": float(lat.mean() * 1e3),
        }
        if name == "cold":
            out["rss_cold"] = status(lists)
    out["rss_end"] = status(lists)
    np.savez(args.out.with_suffix(".npz"), **ids)
    args.out.write_text(json.dumps(out))


def run_child(mode: str, index_dir: Path, qfile: Path, nprobes: list[int]) -> tuple[dict, dict]:
    out = index_dir.parent / f"query-{mode}.json"
    cmd = [
        sys.executable,
        os.path.abspath(__file__),
        "--query-child",
        "--mode",
        mode,
        "--index",
        str(index_dir),
        "--queries-file",
        str(qfile),
        "--out",
        str(out),
        "--nprobe",
        ",".join(map(str, nprobes)),
    ]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)  # faiss prints file names
    res = json.loads(out.read_text())
    with np.load(out.with_suffix(".npz")) as f:
        ids = {k: f[k] for k in f.files}
    return res, ids


def build(args, paths: list[Path], work: Path, plan: index_plan.IndexPlan) -> tuple[Path, dict]:
    """Train, add shards on the executor, merge: the merged folder and the timed split."""
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    times: dict = {}
    t0 = time.perf_counter()
    rng = np.random.default_rng(vindex.SEED)
    sample = Concat(paths).take(np.sort(rng.choice(plan.n, plan.train_size, replace=False)))
    trained = work / "trained.index"
    shards.save_trained(shards.train(sample, plan.factory), trained, plan.factory)
    del sample
    times["train_s"] = time.perf_counter() - t0
    print(f"train: {plan.train_size:,} rows, {times['train_s']:.0f} s")
    t0 = time.perf_counter()
    ex = Executor(kind=args.executor, workers=args.workers)
    threads = max(1, (os.cpu_count() or 1) // (args.workers or os.cpu_count() or 1))

    def done(key: str, res: dict) -> None:
        print(
            f"  {key}: {res['rows']:,} rows in {res['seconds']:.0f} s "
            f"({time.perf_counter() - t0:.0f} s since start)",
            flush=True,
        )

    added = shards.add_shards(trained, paths, work / "shards", ex, done=done, threads=threads)
    times["add_s"] = time.perf_counter() - t0
    times["add_unit_s"] = [r["seconds"] for r in added["results"].values()]
    t0 = time.perf_counter()
    meta = shards.merge(trained, added["paths"], work / "merged", params=plan.params)
    times["merge_s"] = time.perf_counter() - t0
    times["shard_bytes"] = sum(p.stat().st_size for p in added["paths"])
    if not args.keep_shards:
        shutil.rmtree(work / "shards")
    print(
        f"add: {times['add_s']:.0f} s on {ex.kind} × {args.workers} workers "
        f"({threads} thread each); merge: {times['merge_s']:.0f} s"
    )
    return work / "merged", {**times, "meta": meta}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10_000_000)
    ap.add_argument("--d", type=int, default=512)
    ap.add_argument("--shards", type=int, default=10)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--dir", type=Path, default=Path("/work/scale/knn"))
    ap.add_argument("--executor", default="local", choices=("inline", "local", "ray"))
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--nprobe", default="", help="comma list; default ½×, 1×, 2× the plan's")
    ap.add_argument("--keep-shards", action="store_true")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--query-child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--mode", choices=("disk", "ram"), help=argparse.SUPPRESS)
    ap.add_argument("--index", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--queries-file", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.query_child:
        args.nprobe = [int(v) for v in args.nprobe.split(",")]
        return query_child(args)

    n, d = args.n, args.d
    plan = vindex.choose(n, d, kind="ivf-sq8")
    nprobes = (
        [int(v) for v in args.nprobe.split(",")]
        if args.nprobe
        else [max(1, plan.nprobe // 2), plan.nprobe, 2 * plan.nprobe]
    )
    data = args.dir / f"vectors-{n}x{d}-{args.shards}"
    data.mkdir(parents=True, exist_ok=True)
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, "
        f"{meminfo('MemTotal') / 2**30:.0f} GiB RAM ({meminfo('MemAvailable') / 2**30:.1f} "
        f"available), faiss {faiss.__version__}; CPU shared with other work"
    )
    print(
        f"data: {n:,} × {d} float16 in {args.shards} shards, {args.queries} queries, k={K}, "
        f"in {data}"
    )
    print(
        f"plan: {plan.factory}, train {plan.train_size:,}, nprobe {nprobes} "
        f"(plan {plan.nprobe}), efSearch ≥ {plan.ef_search}"
    )
    need = n * d * 2 * (0 if (data / "vectors.json").is_file() else 1) + 2.2 * n * (d + 8)
    if need > shutil.disk_usage(args.dir).free:
        sys.exit(f"not enough disk in {args.dir}: need ~{need / 1e9:.0f} GB")

    paths, q = generate(data, n, d, args.shards, args.queries)
    truth, gt_s = truth_for(data, paths, q)
    if gt_s:
        print(f"ground truth: exact top-{K} by a blocked scan of the shards, {gt_s:.0f} s")
    merged, built = build(args, paths, args.dir / f"build-{n}x{d}", plan)
    meta = built["meta"]
    qfile = merged.parent / "queries.npy"
    np.save(qfile, q)
    disk, disk_ids = run_child("disk", merged, qfile, nprobes)
    ram, ram_ids = run_child("ram", merged, qfile, nprobes)

    mb = 1e6
    size = meta["ivfdata_bytes"] + meta["populated_bytes"]
    build_s = built["train_s"] + built["add_s"] + built["merge_s"]
    print(
        f"\nbuild {build_s:.0f} s = train {built['train_s']:.0f} + add {built['add_s']:.0f} "
        f"+ merge {built['merge_s']:.0f}; on disk {size / mb:,.0f} MB (lists "
        f"{meta['ivfdata_bytes'] / mb:,.0f} MB, populated.index "
        f"{meta['populated_bytes'] / mb:,.0f} MB; shards before merge "
        f"{built['shard_bytes'] / mb:,.0f} MB)"
    )
    r = meta["ram"]
    print(
        f"RAM formula: resident {r['resident'] / mb:,.0f} MB + page cache "
        f"{r['per_query'] / mb:,.0f} MB a query at nprobe {plan.nprobe}, "
        f"{r['hot'] / mb:,.0f} MB when all lists are hot"
    )
    print(f"\n{'query process':<32} {'RSS MB':>8} {'anon MB':>8} {'file MB':>8} {'lists MB':>8}")
    for name, res in (("on disk", disk), ("in RAM", ram)):
        for when in ("open", "cold", "end"):
            if f"rss_{when}" in res:
                s = res[f"rss_{when}"]
                print(
                    f"{name + ', after ' + when:<32} {s['VmRSS'] / mb:8,.0f} "
                    f"{s['RssAnon'] / mb:8,.0f} {s['RssFile'] / mb:8,.0f} {s['lists'] / mb:8,.0f}"
                )
    print(
        f"\n{'index':<24} {'nprobe':>6} {'recall@10':>9} {'p50 ms':>8} {'p95 ms':>8} "
        f"{'p50 ×':>6} {'p95 ×':>6}"
    )
    rows = []

    def line(label: str, nprobe: int, t: dict, ids: np.ndarray) -> None:
        base = ram[f"warm-{nprobe}"]
        rec = recall(ids, truth)
        print(
            f"{label:<24} {nprobe:>6} {rec:9.4f} {t['p50_ms']:8.2f} {t['p95_ms']:8.2f} "
            f"{t['p50_ms'] / base['p50_ms']:6.2f} {t['p95_ms'] / base['p95_ms']:6.2f}"
        )
        rows.append({"index": label, "nprobe": nprobe, "recall": rec, **t})

    for key in disk_ids:
        name, nprobe = key.split("-")
        line(f"on disk, {name}", int(nprobe), disk[key], disk_ids[key])
        if name == "warm":
            line("in RAM (baseline)", int(nprobe), ram[key], ram_ids[key])
    end_ratio = disk["rss_end"]["VmRSS"] / ram["rss_end"]["VmRSS"]
    open_ratio = disk["rss_open"]["VmRSS"] / ram["rss_open"]["VmRSS"]
    print(
        f"\non disk ÷ in RAM: RSS after open {open_ratio:.3f}×, "
        f"after all queries {end_ratio:.3f}×; open {disk['open_s']:.1f} s vs {ram['open_s']:.1f} s"
    )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "n": n,
                    "d": d,
                    "shards": args.shards,
                    "factory": plan.factory,
                    "queries": len(q),
                    "build": {k: v for k, v in built.items() if k != "meta"},
                    "meta": meta,
                    "disk": disk,
                    "ram": ram,
                    "rows": rows,
                    "ground_truth_s": gt_s,
                    "executor": {"kind": args.executor, "workers": args.workers},
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
