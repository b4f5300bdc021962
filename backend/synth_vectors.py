"""Synthetic image vectors for a synthetic dataset (``backend.synth``), so that the Search page's
Meaning query runs on it at 10^7 rows: bench only, never embeddings of any image.

    python -m backend synth-vectors NAME [--root DIR] [--seed 0] [--clusters K] [--index]

Writes the embed step's per-shard layout (``embeddings/shards/img/<first row>.npy``, float16,
row order) and its manifest record, marked ``synthetic`` with a note; ``--index`` then runs the
index step (``backend.search.build_indexes``: shard-by-shard IVF with on-disk lists), so the
query measures what a user gets. The vectors live in the demo CLIP's space (its dimension; the
query's text is encoded by it, offline), and every search result says they are synthetic.

The mixture (moved here from ``bench/search.py``, which still uses it): clusters whose centres
share a common direction and topic structure (random pairs have cosine ≈ 0.3, like CLIP
embeddings), each spread over its own ``RANK``-dim subspace with a decaying spectrum plus
isotropic noise. The vectors are not embeddings of any image.
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from backend import paths
from backend.manifest import read_manifest

RANK = 24


class Mixture:
    """A seeded Gaussian mixture on the unit sphere (see the module docstring)."""

    def __init__(self, d: int, clusters: int, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        unit = lambda a: a / np.linalg.norm(a, axis=-1, keepdims=True)  # noqa: E731
        mean = unit(rng.standard_normal(d, dtype=np.float32))
        topics = unit(rng.standard_normal((max(8, clusters // 20), d), dtype=np.float32))
        own = unit(rng.standard_normal((clusters, d), dtype=np.float32))
        of = rng.integers(0, len(topics), clusters)
        self.centres = unit(0.6 * mean + 0.55 * topics[of] + 0.75 * own).astype(np.float32)
        self.spread = np.exp(rng.normal(0, 0.25, clusters)).astype(np.float32) * 0.9
        self.bases = rng.standard_normal((clusters, RANK, d), dtype=np.float32) / np.sqrt(d)
        lam = 1.0 / np.arange(1, RANK + 1) ** 0.7
        self.lam = (lam / np.sqrt((lam**2).sum())).astype(np.float32)
        w = np.exp(rng.normal(0, 1.0, clusters))
        self.weights = w / w.sum()
        self.d, self.k = d, clusters

    def sample(self, n: int, seed: int | list[int]) -> np.ndarray:
        rng = np.random.default_rng(seed)
        label = rng.choice(self.k, size=n, p=self.weights)
        z = rng.standard_normal((n, RANK), dtype=np.float32) * self.lam
        out = rng.standard_normal((n, self.d), dtype=np.float32)
        out *= 0.25 / np.sqrt(self.d)
        order = np.argsort(label, kind="stable")
        cuts = np.flatnonzero(np.diff(label[order])) + 1
        for rows in np.split(order, cuts):
            c = label[rows[0]]
            out[rows] += self.centres[c] + self.spread[c] * (z[rows] @ self.bases[c])
        out /= np.linalg.norm(out, axis=1, keepdims=True)
        return out


CHUNK = 250_000  # rows drawn at a time (bench/search.py's chunk)
KIND = "img"
SOURCE = "synthetic (backend.synth_vectors)"
Progress = Callable[[int, int], None]  # (rows written, rows total)


def clusters_for(n: int) -> int:
    """bench/search.py's cluster count: ~n/250, between 1,000 and 10,000."""
    return int(min(10_000, max(1_000, n // 250)))


def shard_ranges(name: str, root: Path | None = None) -> list[tuple[int, int]]:
    """``[lo, hi)`` row ranges, one per source shard (in row order): one vector file each."""
    from backend.embed import unit_ranges
    from backend.store import connect

    con = connect(name, root)
    try:
        return unit_ranges(con, max_rows=1 << 62)
    finally:
        con.close()


def write_shard(mix: Mixture, seed: int, lo: int, hi: int, dest: Path) -> None:
    """Rows ``lo``..``hi`` as float16 into ``dest`` (via a partial file and a rename: a killed
    run leaves no short file). Chunk ``s`` is drawn with seed ``(seed, s)``: the vectors of a
    row range do not depend on the order shards are written in."""
    tmp = dest.with_name(f".{dest.name}.partial")
    out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float16, shape=(hi - lo, mix.d))
    for s in range(lo, hi, CHUNK):
        e = min(hi, s + CHUNK)
        out[s - lo : e - lo] = mix.sample(e - s, seed=[seed, s])
    out.flush()
    del out
    os.replace(tmp, dest)


def write_vectors(
    name: str,
    root: Path | None = None,
    seed: int = 0,
    clusters: int | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Give synthetic dataset ``name`` seeded image vectors in the embed step's per-shard layout
    (``embeddings/shards/img/<first row>.npy``) and the embed step's record, marked synthetic.

    Their dimension is the demo CLIP's (the query's text encoder: the Meaning query runs
    offline); they are draws from :class:`Mixture`, not embeddings of any image, and the
    record, the index and every search result say so (``backend.provenance.SYNTHETIC_NOTE``).
    Resumable: shard files already written with the same parameters are kept."""
    from backend.democlip import CHECKPOINT, load_demo_clip
    from backend.embed import embeddings_dir, sharded_dir
    from backend.manifest import now, step_record, update_manifest, write_json_atomic
    from backend.models import checkpoint_sha256
    from backend.provenance import SYNTHETIC_NOTE, synthetic_models

    t0, started = time.perf_counter(), now()
    enc = load_demo_clip(device="cpu")
    ranges = shard_ranges(name, root)
    n = ranges[-1][1] if ranges else 0
    params = {"seed": seed, "clusters": clusters or clusters_for(n), "dim": enc.dim, "rank": RANK,
              "rows": n, "shards": len(ranges), "chunk": CHUNK}  # fmt: skip
    folder = sharded_dir(embeddings_dir(name, root), KIND)
    stamp = folder / ".synthetic.json"
    if read_manifest(stamp) != params:  # other parameters: none of the old files is kept
        shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
    write_json_atomic(stamp, params)
    mix = Mixture(enc.dim, params["clusters"], seed)
    for lo, hi in ranges:
        dest = folder / f"{lo:012d}.npy"
        if not dest.is_file():
            write_shard(mix, seed, lo, hi, dest)
        if progress:
            progress(hi, n)
    info = {"model": enc.name, "dim": enc.dim, "rows": n, "missing": 0, "layout": "shards",
            "units": len(ranges), "dtype": "float16", "source": SOURCE, "synthetic": True,
            "note": SYNTHETIC_NOTE, "checkpoint": str(CHECKPOINT.resolve()),
            "checkpoint_sha256": checkpoint_sha256(CHECKPOINT)}  # fmt: skip
    record = step_record(params, started, time.perf_counter() - t0, kinds={KIND: info},
                         cross_modal=False, clip_unavailable=None, synthetic=True)  # fmt: skip
    update_manifest(paths.manifest_path(name, root), "embed", record, synthetic_models(enc.name))
    return record


def main(argv: list[str] | None = None) -> int:
    """``python -m backend synth-vectors NAME [--root DIR] [--seed 0] [--clusters K] [--index]
    [--workers W]``"""
    p = argparse.ArgumentParser(
        prog="python -m backend synth-vectors",
        description="give a synthetic dataset (python -m backend synth) seeded synthetic image "
        "vectors in the demo CLIP's space (bench only: not embeddings of any image), then "
        "optionally build its index with the index step",
    )
    p.add_argument("name")
    p.add_argument("--root", type=Path, help="the workspace (default: TAILSCOPE_HOME)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--clusters", type=int, help="mixture clusters (default: rows/250, 1k-10k)")
    p.add_argument("--index", action="store_true", help="then run the index step")
    p.add_argument("--workers", type=int, default=None, help="index: processes (default: cores)")
    a = p.parse_args(argv)
    if not paths.store_path(a.name, a.root).is_file():
        print(f"error: no dataset {a.name!r} in {paths.workspace() if a.root is None else a.root}")
        return 2
    if not read_manifest(paths.manifest_path(a.name, a.root)).get("synthetic"):
        print(f"error: {a.name!r} is not a synthetic dataset (python -m backend synth): its "
              "vectors, if any, are left as they are")  # fmt: skip
        return 2
    t0 = time.perf_counter()

    def show(done: int, total: int) -> None:
        print(f"vectors: {done:,}/{total:,} rows at {time.perf_counter() - t0:.0f} s", flush=True)

    rec = write_vectors(a.name, a.root, a.seed, a.clusters, show)
    print(f"vectors written in {rec['seconds']:.0f} s: {rec['kinds'][KIND]['note']}", flush=True)
    if a.index:
        from backend.executor import Executor
        from backend.search import build_indexes

        def step(kind: str, done: int, total: int) -> None:
            print(f"index {kind}: {done}/{total} at {time.perf_counter() - t0:.0f} s", flush=True)

        built = build_indexes(a.name, a.root, step, Executor("local", a.workers))
        print(f"index built in {built['seconds']:.0f} s", flush=True)
    return 0
