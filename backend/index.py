"""The vector index: pick a FAISS index for a dataset's size and memory budget, build it from the
float16 embeddings memmap, save and load it (memory-mapped), and search it under row-id filters.

Row ids: vectors are added in row-id order without explicit ids, so index position i *is* row_id i
(row ids are 0..n-1, contiguous). No ``IndexIDMap2``: it would cost 8 bytes a row plus a hash
lookup per result for a mapping that is the identity.

Scores are inner products of L2-normalised vectors (cosine similarity, higher is closer). Missing
result slots (fewer than k rows exist or pass the filter) are id -1 with score -inf: callers must
drop them.

Chosen by measurement on a 2-core CPU over clustered 512-d vectors (``bench/search.py``):

* up to 65,536 rows at d=512 (n·d ≤ 2^25): exact ``Flat``; one query (one thread, memory-bound)
  takes 7 ms at 50k rows, 10.5 ms at 75k, 13.5 ms at 100k.
* beyond: ``IVF{nlist}_HNSW32,SQ8``, nlist ≈ 2·√n (power of two), nprobe ≈ 0.75·√nlist: recall@10
  0.991 at 10^6 rows (one query p50/p95 4.9/6.1 ms memory-mapped, 3.0/3.7 ms read into RAM;
  27 s build), 0.987 at 10^7 (15.8/19.8 ms; 323 s build); d+16 bytes a row (10^7 × 512: 5.3 GB).
* smaller memory budgets fall back to SQ4 and 4-bit fast-scan PQ, which only reach recall@10 ≥ 0.95
  when ``search`` gets the original vectors to re-rank ``k·k_factor`` candidates exactly.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from backend import paths
from backend.index_plan import BATCH, IndexPlan, _plans
from backend.index_search import _apply_params, _attach, _attached, _ivf, _rows
from backend.manifest import write_json_atomic

TWO_LEVEL_MIN_NLIST = 16_384  # from here coarse k-means runs in two levels (√nlist × √nlist):
# ~10× faster but lists 1.8× less balanced (slower queries), so only where flat k-means (cost
# sample × nlist × d × 10) would take many minutes
SEED = 1234
FORMAT = 1

Progress = Callable[[int, int], None]  # (rows added, rows total)


class VectorIndexError(Exception):
    """The vector index cannot be used; the message says which command fixes it."""


class IndexMissing(VectorIndexError):
    """No index file where one was expected."""


class IndexCorrupt(VectorIndexError):
    """The index file or its sidecar is unreadable, truncated or inconsistent."""


class IndexModelMismatch(VectorIndexError):
    """The index was built from another embedding model than the one queries come from."""


class BudgetTooSmall(VectorIndexError, ValueError):
    """No index type fits the memory budget."""


def choose(n: int, d: int, memory_budget_bytes: int | None = None,
           kind: str | None = None) -> IndexPlan:
    """The best index for ``n`` rows of dimension ``d`` whose RAM fits the budget.

    ``memory_budget_bytes`` bounds the resident size of the index when searching (``ram_bytes``);
    building needs ``build_ram_bytes`` more. ``kind`` forces one type (e.g. ``"ivf-sq8"`` for a
    small n in tests). Raises ``BudgetTooSmall`` when nothing fits.
    """
    if n <= 0 or d <= 0:
        raise ValueError(f"need at least one row and one dimension, got n={n}, d={d}")
    plans = _plans(n, d, everything=kind is not None)
    if kind is not None:
        plans = [p for p in plans if p.kind == kind]
        if not plans:
            kinds = [p.kind for p in _plans(n, 64, everything=True)]
            raise ValueError(f"unknown index kind {kind!r} for n={n}: use one of {kinds}")
    budget = memory_budget_bytes
    fitting = [p for p in plans if budget is None or p.ram_bytes <= budget]
    if not fitting:
        small = min(plans, key=lambda p: p.ram_bytes)
        raise BudgetTooSmall(
            f"no vector index for {n:,} × {d} fits in {budget / 2**20:,.0f} MiB: the "
            f"smallest ({small.factory}) needs {small.ram_bytes / 2**20:,.0f} MiB; raise the "
            "budget or index fewer rows"
        )
    return fitting[0]


def _gpu(use_gpu: bool | None) -> bool:
    """Whether to build on a GPU: only when this faiss has GPU support and sees a device."""
    available = hasattr(faiss, "index_cpu_to_gpu") and faiss.get_num_gpus() > 0
    if use_gpu and not available:
        raise ValueError("use_gpu=True but this faiss build has no GPU support or sees no GPU")
    return available if use_gpu is None else bool(use_gpu)


def _train(index: faiss.Index, x: np.ndarray, on_gpu: bool) -> None:
    """Train on the sample. Coarse k-means assigns with exact BLAS search (faiss would otherwise
    rebuild and query the HNSW quantizer every iteration: 4× slower at 4096 lists); from
    ``TWO_LEVEL_MIN_NLIST`` lists it runs in two levels."""
    ivf = _ivf(index)
    if ivf is None or on_gpu:
        index.train(x)
        return
    ivf.cp.min_points_per_centroid = 8  # we sample 16-32 rows a list on purpose
    if ivf.nlist >= TWO_LEVEL_MIN_NLIST:
        from faiss.contrib.clustering import two_level_clustering

        centroids, _ = two_level_clustering(
            x, int(math.sqrt(ivf.nlist)), ivf.nlist, clustering_niter=10, spherical=True,
            seed=SEED, min_points_per_centroid=8,
        )
        ivf.quantizer.add(np.ascontiguousarray(centroids, dtype=np.float32))
        index.train(x)  # the quantizer is trained and full: this trains the codec only
        return
    assign = faiss.IndexFlatIP(ivf.d)  # referenced here while faiss holds a raw pointer
    ivf.clustering_index = assign
    try:
        index.train(x)
    finally:
        ivf.clustering_index = None


def _coarse_torch(coarse: str | None, index: faiss.Index) -> bool:
    """Whether torch trains the coarse centroids and assigns the rows (``"torch"``/``"faiss"``;
    by default torch when it sees a GPU): :func:`backend.kmeans_torch.wanted`."""
    from backend import kmeans_torch

    return kmeans_torch.wanted(coarse, _ivf(index))


def _torch_train(index: faiss.Index, x: np.ndarray) -> np.ndarray:
    from backend import kmeans_torch

    return kmeans_torch.train_ivf(index, _ivf(index), x, SEED)


def _add(index: faiss.Index, x: np.ndarray, centroids: np.ndarray | None) -> None:
    """Add rows; with ``centroids`` (the torch path) torch assigns their lists."""
    if centroids is None:
        index.add(x)
        return
    from backend import kmeans_torch

    kmeans_torch.add_assigned(index, _ivf(index), x, centroids)


def build(
    vectors: np.ndarray,
    plan: IndexPlan | None = None,
    progress: Progress | None = None,
    use_gpu: bool | None = None,
    coarse: str | None = None,
) -> faiss.Index:
    """Train on a seeded sample and add all rows in order (position i = row_id i).

    ``vectors`` (n × d, float16 or float32, typically a memmap) is read ``BATCH`` rows at a time,
    so a float16 file is never converted to float32 whole. On a GPU (when faiss has one) the same
    steps run on ``index_cpu_to_gpu`` and the result comes back with ``index_gpu_to_cpu``; the GPU
    copy of an IVF index uses a flat coarse quantizer, so that is what comes back. ``coarse``:
    who trains the coarse centroids and assigns the rows, see :func:`_coarse_torch`.
    """
    n, d = vectors.shape
    plan = plan or choose(n, d)
    if (plan.n, plan.d) != (n, d):
        raise ValueError(f"plan is for {plan.n} × {plan.d} vectors, got {n} × {d}")
    t0 = time.perf_counter()
    index = faiss.index_factory(d, plan.factory, faiss.METRIC_INNER_PRODUCT)
    work, resources = index, None
    if _gpu(use_gpu):
        resources = faiss.StandardGpuResources()
        try:
            work = faiss.index_cpu_to_gpu(resources, 0, index)
        except RuntimeError:  # no GPU version of this type (e.g. fast-scan PQ): build on CPU
            work = index
    centroids = None
    with_torch = work is index and _coarse_torch(coarse, index)
    if plan.train_size:
        rng = np.random.default_rng(SEED)
        sample = np.sort(rng.choice(n, plan.train_size, replace=False))
        if with_torch:
            centroids = _torch_train(work, _rows(vectors, sample))
        else:
            _train(work, _rows(vectors, sample), on_gpu=work is not index)
    for start in range(0, n, BATCH):
        end = min(n, start + BATCH)
        _add(work, _rows(vectors, slice(start, end)), centroids)
        if progress:
            progress(end, n)
    on_gpu = work is not index
    if on_gpu:
        index = faiss.index_gpu_to_cpu(work)
    del work, resources
    ivf = _ivf(index)
    if ivf is not None and not isinstance(ivf, faiss.IndexIVFFastScan):
        ivf.make_direct_map()  # row id → list offset, so filters can reconstruct rows
    _attach(index, plan=asdict(plan), build_seconds=round(time.perf_counter() - t0, 3),
            built_on="gpu" if on_gpu else "cpu",
            coarse=f"torch ({kmeans_device()})" if centroids is not None else "faiss")
    _apply_params(index, plan.params)
    return index


def kmeans_device() -> str:
    from backend import kmeans_torch

    return kmeans_torch.device().type


def _rebuild_hint(path: Path, name: str | None) -> str:
    if not name:
        try:
            name = path.resolve().relative_to(paths.workspace()).parts[0]
        except (ValueError, IndexError):
            name = "NAME"
    return f"rebuild it with `python -m backend index {name}`"


def save(index: faiss.Index, path: Path, meta: dict[str, Any]) -> dict[str, Any]:
    """Write the index atomically and its sidecar JSON (``path.with_suffix('.json')``).

    ``meta`` must name the embedding ``model``; any other keys (e.g. ``dataset``) are kept.
    Returns the sidecar.
    """
    if not meta.get("model"):
        raise ValueError("meta must name the embedding model ('model') the vectors came from")
    path = Path(path)
    ivf = _ivf(index)
    if ivf is not None and isinstance(
        faiss.downcast_InvertedLists(ivf.invlists), faiss.OnDiskInvertedLists
    ):  # faiss would write a reference to the mapped file, not the lists
        raise ValueError("an IVF index loaded with mmap=True cannot be saved: load(mmap=False)")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        faiss.write_index(index, str(tmp))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    info = _attached(index)
    plan = info.get("plan", {})
    params = {"nprobe": ivf.nprobe if ivf is not None else 0, "ef_search": 0, "k_factor": 1,
              **info.get("params", {})}
    sidecar = {
        **meta,
        "format": FORMAT,
        "factory": plan.get("factory") or meta.get("factory") or type(index).__name__,
        "kind": plan.get("kind") or meta.get("kind"),
        "n": int(index.ntotal),
        "d": int(index.d),
        "metric": "inner_product",
        "row_ids": "position",
        "params": params,
        "build_seconds": info.get("build_seconds", meta.get("build_seconds")),
        "built_on": info.get("built_on", meta.get("built_on", "cpu")),
        "coarse": info.get("coarse", meta.get("coarse", "faiss")),  # who trained/assigned lists
        "ram_bytes": plan.get("ram_bytes"),
        "faiss_version": faiss.__version__,
        "file_bytes": path.stat().st_size,
        "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    write_json_atomic(path.with_suffix(".json"), sidecar)
    return sidecar


_FLAT_CODES = (b"IxFI", b"IxF2", b"IxFl", b"IxSQ")  # IndexFlatCodes family: mmap via MMAP_IFC


def _read(path: Path, mmap: bool) -> faiss.Index:
    """Read memory-mapped where the type allows (flat codes or IVF lists), else fully."""
    if mmap:
        with open(path, "rb") as f:
            head = f.read(4)
        flags = faiss.IO_FLAG_MMAP_IFC if head in _FLAT_CODES else (
            faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY)
        try:
            return faiss.read_index(str(path), flags)
        except RuntimeError:
            pass  # this type cannot be mapped (or the file is bad: the plain read will say)
    return faiss.read_index(str(path))


def load(
    path: Path, mmap: bool = True, expect_model: str | None = None, name: str | None = None
) -> tuple[faiss.Index, dict[str, Any]]:
    """The index at ``path`` with its saved search params applied, and its sidecar.

    ``expect_model``: the model the query embeddings come from; a different build model raises
    ``IndexModelMismatch``. ``name`` (the dataset) only makes error messages exact.
    """
    path = Path(path)
    side = path.with_suffix(".json")
    if not path.is_file():
        raise IndexMissing(f"no vector index at {path}: {_rebuild_hint(path, name)}")
    try:
        meta = json.loads(side.read_text(encoding="utf-8"))
        if not isinstance(meta, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError) as e:
        raise IndexCorrupt(
            f"vector index sidecar {side} is missing or unreadable ({e}): "
            f"{_rebuild_hint(path, name)}"
        ) from e
    hint = _rebuild_hint(path, name or meta.get("dataset"))
    if expect_model is not None and meta.get("model") != expect_model:
        raise IndexModelMismatch(
            f"index was built from model {meta.get('model')!r}, embeddings are model "
            f"{expect_model!r}; {hint}"
        )
    size = path.stat().st_size
    if meta.get("file_bytes") not in (None, size):
        raise IndexCorrupt(
            f"vector index {path} is {size:,} bytes but was saved as {meta['file_bytes']:,} "
            f"(truncated or replaced): {hint}"
        )
    try:
        index = _read(path, mmap)
    except RuntimeError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else "unreadable"
        raise IndexCorrupt(f"vector index {path} is unreadable ({first[:200]}): {hint}") from e
    if (index.ntotal, index.d) != (meta.get("n"), meta.get("d")):
        raise IndexCorrupt(
            f"vector index {path} holds {index.ntotal} × {index.d} vectors but its sidecar says "
            f"{meta.get('n')} × {meta.get('d')}: {hint}"
        )
    _apply_params(index, meta.get("params", {}))
    return index, meta
