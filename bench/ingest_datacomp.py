"""The DataComp-style case of ``bench/ingest.py``: metadata shards with the ViT-L/14 ``.npz``
beside each (``l14_img``, ``l14_txt``: 768-d float16), generated, then ingested.

Baseline, measured in the same run on the same files: plain pyarrow + numpy loading them
(``pq.read_table`` of each parquet, every npz array read into memory), one process, no checks
and no store. Peak RSS is sampled every 20 ms over this process and its workers (summed, so
pages they share are counted twice: an upper bound).
"""

from __future__ import annotations

import os
import resource
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

DIM = 768


def generate(folder: Path, rows: int, shards: int, seed: int = 0) -> None:
    """``shards`` DataComp shards of ``rows // shards`` rows: parquet + npz (l14 img/txt)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    per = rows // shards
    hosts = [f"img{i}.host{i % 977}.com" for i in range(5000)]
    for s in range(shards):
        lo = s * per
        ids = np.arange(lo, lo + per)
        faces = rng.choice(4, per, p=[0.7, 0.15, 0.1, 0.05])
        boxes = [[[0.1, 0.1, 0.2, 0.2]] * int(k) for k in faces]
        table = pa.table({
            "uid": [f"{i:032x}" for i in ids],
            "url": [f"https://{hosts[i % 5000]}/p/{i}.jpg" for i in ids],
            "text": [f"a photo of thing {i % 7919} number {i}" for i in ids],
            "original_width": rng.integers(64, 4000, per),
            "original_height": rng.integers(64, 4000, per),
            "clip_b32_similarity_score": rng.random(per, dtype=np.float32),
            "clip_l14_similarity_score": rng.random(per, dtype=np.float32),
            "face_bboxes": pa.array(boxes, pa.list_(pa.list_(pa.float64()))),
            "sha256": [f"{i:064x}" for i in ids],
        })  # fmt: skip
        pq.write_table(table, folder / f"{s:08d}.parquet")
        arrays = {}
        for key in ("l14_img", "l14_txt"):
            v = rng.standard_normal((per, DIM), dtype=np.float32)
            v /= np.linalg.norm(v, axis=1, keepdims=True)
            arrays[key] = v.astype(np.float16)
            del v
        np.savez(folder / f"{s:08d}.npz", **arrays)  # uncompressed, as np.savez writes
        del arrays


def baseline(folder: Path) -> tuple[int, float]:
    """Rows/s of pq.read_table + every npz array loaded, one process."""
    t0, n = time.perf_counter(), 0
    for p in sorted(folder.glob("*.parquet")):
        n += pq.read_table(p).num_rows
        with np.load(p.with_suffix(".npz")) as z:
            for k in z.files:
                _ = z[k]
    return n, time.perf_counter() - t0


def _cpu() -> float:
    """CPU seconds of this process (all its threads)."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    return me.ru_utime + me.ru_stime


def _tree_rss(cpu: dict[int, float] | None = None) -> int:
    """Resident bytes of this process and every descendant (from /proc); ``cpu`` gets each
    descendant's CPU seconds so far (pool workers are grandchildren, via the forkserver)."""
    me = os.getpid()
    parent: dict[int, int] = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    parent[int(d)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except OSError:
                pass
    tree, todo = {me}, [me]
    while todo:
        p = todo.pop()
        kids = [c for c, pp in parent.items() if pp == p and c not in tree]
        tree.update(kids)
        todo += kids
    total = 0
    tick = os.sysconf("SC_CLK_TCK")
    for p in tree:
        if cpu is not None and p != me:
            try:
                with open(f"/proc/{p}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                cpu[p] = (int(fields[11]) + int(fields[12])) / tick
            except OSError:
                pass
        try:
            with open(f"/proc/{p}/status") as f:
                total += next(int(x.split()[1]) for x in f if x.startswith("VmRSS:")) * 1024
        except (OSError, StopIteration):
            pass
    return total


class PeakRSS:
    """Samples :func:`_tree_rss` in a thread while the ``with`` block runs."""

    def __enter__(self) -> PeakRSS:
        self.peak, self._stop, self.cpu = 0, threading.Event(), {}
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, _tree_rss(self.cpu))
            self._stop.wait(0.02)

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._t.join()


def run(rows: int, shards: int, work: Path, workers: list[int], keep: bool = False) -> None:
    from backend.ingest import build

    src = work / f"datacomp-{rows}"
    if not (src / f"{shards - 1:08d}.npz").is_file():
        shutil.rmtree(src, ignore_errors=True)
        t0 = time.perf_counter()
        generate(src, rows, shards)
        size = sum(p.stat().st_size for p in src.iterdir()) / 2**30
        print(f"{rows:>8} {'(generate DataComp source)':<34} {time.perf_counter() - t0:>8.1f}"
              f"   {size:.2f} GiB in {shards} shards")  # fmt: skip
    n, secs = baseline(src)
    base = n / secs
    print(f"{rows:>8} {'baseline: pyarrow + numpy load':<34} {secs:>8.2f} {base:>9.0f} "
          f"{1.0:>10.2f}x")  # fmt: skip
    for w in workers:
        cpu0 = _cpu()
        with PeakRSS() as rss:
            res = build(f"dc{rows}w{w}", src, root=work / "ws", workers=w)
        cpu = _cpu() - cpu0 + sum(rss.cpu.values())  # this process + its workers (sampled)
        rate = (res.rows + res.rejects) / res.seconds
        verdict = "ok" if rate >= 100_000 and rss.peak <= 2 * 2**30 else "MISSES TARGET"
        print(f"{rows:>8} {f'tailscope ingest, {w} worker(s)':<34} {res.seconds:>8.2f} "
              f"{rate:>9.0f} {rate / base:>10.2f}x  peak RSS {rss.peak / 2**20:,.0f} MiB "
              f"(target >= 100k rows/s, <= 2048 MiB: {verdict})")  # fmt: skip
        print(f"{'':>8} CPU {cpu:.1f} s (this process and its workers): "
              f"at best {rows / (cpu / min(w, os.cpu_count() or 1)):,.0f} rows/s on {w} idle "
              f"core(s) (rows / (CPU s / {w})); load average {os.getloadavg()[0]:.1f} on "
              f"{os.cpu_count()} cores")  # fmt: skip
        emb = work / "ws" / f"dc{rows}w{w}" / "embeddings"
        stored = np.load(emb / "img.npy", mmap_mode="r")
        print(f"{'':>8} stored {stored.shape[0]:,} x {stored.shape[1]} {stored.dtype} image "
              f"vectors; rejects {res.rejects}")  # fmt: skip
        shutil.rmtree(work / "ws" / f"dc{rows}w{w}", ignore_errors=True)
    if not keep:
        shutil.rmtree(src, ignore_errors=True)


def precision(rows: int = 100_000, queries: int = 200, k: int = 10, seed: int = 0) -> None:
    """Recall@k of exact search over float16-stored vectors against the float32 originals:
    the cost of storing a float32 source as float16. Clustered unit vectors (768-d, 1,000
    clusters); queries are fresh draws from the clusters, so each top-k is a close race among
    ~100 members of a cluster."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((1000, DIM), dtype=np.float32)

    def draw(n: int) -> np.ndarray:
        x = centres[rng.integers(0, 1000, n)] + 0.6 * rng.standard_normal((n, DIM), np.float32)
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    x, q = draw(rows), draw(queries)
    half = x.astype(np.float16).astype(np.float32)
    exact, approx = q @ x.T, q @ half.T
    top, top_half = np.argsort(-exact, axis=1)[:, :k], np.argsort(-approx, axis=1)[:, :k]
    recall = np.mean([len(set(a) & set(b)) / k for a, b in zip(top, top_half, strict=True)])
    gap = np.abs(np.diff(np.sort(exact, axis=1)[:, ::-1][:, : k + 1], axis=1)).mean()
    print(f"float16 storage of float32 vectors: recall@{k} {recall:.4f} over {queries} queries "
          f"on {rows:,} x {DIM} clustered unit vectors; max |component error| "
          f"{np.abs(half - x).max():.1e}, mean |cosine error| {np.abs(approx - exact).mean():.1e} "
          f"(mean gap between neighbouring top-{k} scores {gap:.1e})")  # fmt: skip
