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
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from backend import paths
from backend.manifest import write_json_atomic

FLAT_MAX_CELLS = 1 << 25  # n·d up to which one exact query takes ≤ ~10 ms (65,536 rows at d=512)
CROSS_MODAL_PROBE = 4  # IVF lists probed for a text query on image vectors, × nprobe (bench)
EXACT_FILTER_MAX = 20_000  # allowed rows scored exactly: ~1 µs a row from vectors, ~2 µs decoded
BATCH = 100_000  # rows converted to float32 and added at a time
TRAIN_PER_LIST = (16, 32, 131_072)  # k-means rows a list: at least 16, 32 while ≤ 131k in all
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


@dataclass(frozen=True)
class IndexPlan:
    """What to build, how to search it, and what it costs in RAM."""

    kind: str  # flat, sq8, sq4, ivf-sq8, ivf-sq4, ivf-pq, ivf-pq-small
    factory: str  # faiss.index_factory string (metric: inner product)
    n: int
    d: int
    train_size: int  # rows sampled (seeded) to train; 0 when nothing is trained
    nprobe: int = 0  # IVF lists probed per query (0: not IVF)
    ef_search: int = 0  # efSearch of the HNSW coarse quantizer (0: none)
    k_factor: int = 1  # candidates per wanted result re-ranked exactly when vectors are given
    ram_bytes: int = 0  # resident size of the whole index when searching
    build_ram_bytes: int = 0  # peak extra RAM while building (index + training sample + batch)
    reason: str = ""

    @property
    def params(self) -> dict[str, int]:
        return {"nprobe": self.nprobe, "ef_search": self.ef_search, "k_factor": self.k_factor}


def _nlist(n: int) -> int:
    """≈ 2·√n as a power of two: few lists keep k-means affordable on a few cores."""
    return int(min(65536, max(64, 2 ** round(math.log2(2 * math.sqrt(max(n, 1)))))))


def _plans(n: int, d: int, everything: bool = False) -> list[IndexPlan]:
    """Every index worth considering for n × d, most accurate and fastest first (``everything``:
    exhaustive ones too when n is past where they are fast enough)."""
    out: list[IndexPlan] = []
    batch = BATCH * d * 4
    if everything or n * d <= FLAT_MAX_CELLS:
        why = "exact search is under ~10 ms a query at this size"
        out.append(IndexPlan("flat", "Flat", n, d, 0, ram_bytes=n * d * 4,
                             build_ram_bytes=n * d * 4 + batch, reason=why))
        t = min(n, 65_536)
        for kind, code, kf in (("sq8", d, 1), ("sq4", d // 2, 5)):
            out.append(IndexPlan(kind, kind.upper(), n, d, t, k_factor=kf, ram_bytes=n * code,
                                 build_ram_bytes=n * code + t * d * 4 + batch,
                                 reason="exhaustive scalar-quantised codes, to fit the budget"))
    nlist = _nlist(n)
    nprobe = min(nlist, max(16, round(0.75 * math.sqrt(nlist))))
    ef = max(64, 2 * nprobe)
    lo, hi, cap = TRAIN_PER_LIST
    train = min(n, hi * nlist, max(lo * nlist, cap))
    coarse = nlist * (4 * d + 2 * 32 * 4 + 64)  # centroids + HNSW links + list headers
    tiers = [("ivf-sq8", "SQ8", d + 16, 1, "8-bit codes: recall@10 ≈ 0.99, no re-rank"),
             ("ivf-sq4", "SQ4", d // 2 + 16, 5, "4-bit codes: needs vectors to re-rank")]
    if d % 8 == 0:  # 4-bit fast-scan PQ: m sub-vectors of d/m dims, m/2 bytes a row
        tiers += [("ivf-pq", f"PQ{d // 4}x4fs", d // 8 + 8, 20, "PQ: needs vectors to re-rank"),
                  ("ivf-pq-small", f"PQ{d // 8}x4fs", d // 16 + 8, 40,
                   "smallest PQ: needs vectors to re-rank")]
    for kind, codec, per_row, kf, why in tiers:
        pad = nlist * 32 * (per_row - 8) if "pq" in kind else 0  # fast-scan pads lists to 32
        ram = n * per_row + coarse + pad
        out.append(IndexPlan(kind, f"IVF{nlist}_HNSW32,{codec}", n, d, train, nprobe, ef, kf,
                             ram_bytes=ram, build_ram_bytes=int(ram * 1.3) + train * d * 4 + batch,
                             reason=why))
    return out


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


def _rows(vectors: np.ndarray, which: slice | np.ndarray) -> np.ndarray:
    """Rows as a fresh, L2-normalised float32 array (only these rows are converted)."""
    x = np.ascontiguousarray(vectors[which], dtype=np.float32)
    if x.base is not None or x is vectors:  # never normalise the caller's array in place
        x = x.copy()
    faiss.normalize_L2(x)
    return x


def _ivf(index: faiss.Index) -> faiss.IndexIVF | None:
    ivf = faiss.try_extract_index_ivf(index)
    return faiss.downcast_index(ivf) if ivf is not None else None


def _apply_params(index: faiss.Index, params: dict[str, Any]) -> None:
    """Set nprobe / quantizer efSearch on the index and remember k_factor beside it."""
    ivf = _ivf(index)
    if ivf is not None:
        ivf.nprobe = int(params.get("nprobe") or ivf.nprobe)
        quantizer = faiss.downcast_index(ivf.quantizer)
        if isinstance(quantizer, faiss.IndexHNSW) and params.get("ef_search"):
            quantizer.hnsw.efSearch = int(params["ef_search"])
    _attach(index, params={**_attached(index).get("params", {}), **params})


def _attach(index: faiss.Index, **info: Any) -> None:
    """Keep build/search facts on the Python proxy (faiss blocks plain attribute assignment)."""
    object.__setattr__(index, "_tailscope", {**_attached(index), **info})


def _attached(index: faiss.Index) -> dict[str, Any]:
    return dict(getattr(index, "_tailscope", {}))


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


def _selector(allowed: np.ndarray, n: int) -> tuple[faiss.IDSelector, np.ndarray | None]:
    """A bitmap selector (O(1) test, n/8 bytes, ~ms to fill) unless n is huge and the set small,
    then a hash set (IDSelectorBatch costs ~0.27 µs an id to build). Keep the array alive."""
    if n // 8 <= max(allowed.size * 16, 1 << 24):
        bitmap = np.zeros((n + 7) // 8, dtype=np.uint8)
        byte = allowed >> 3
        starts = np.flatnonzero(np.r_[True, byte[1:] != byte[:-1]])
        bits = np.left_shift(1, allowed & 7).astype(np.uint8)
        bitmap[byte[starts]] = np.bitwise_or.reduceat(bits, starts)
        return faiss.IDSelectorBitmap(bitmap), bitmap
    return faiss.IDSelectorBatch(allowed), None


def _search_params(index: faiss.Index, sel: faiss.IDSelector, nprobe: int = 0):
    """Search params carrying the selector and, for IVF, how many lists to probe (probing all
    lists makes a filtered search complete: every allowed row is scored)."""
    ivf = _ivf(index)
    if ivf is None:
        return faiss.SearchParameters(sel=sel)
    nprobe = min(ivf.nlist, nprobe or ivf.nprobe)
    quantizer = faiss.downcast_index(ivf.quantizer)
    qp = None
    if isinstance(quantizer, faiss.IndexHNSW) and nprobe > quantizer.hnsw.efSearch:
        qp = faiss.SearchParametersHNSW(efSearch=nprobe)
    return faiss.SearchParametersIVF(sel=sel, nprobe=nprobe, quantizer_params=qp)


def _top_k(scores: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Best k per row of (scores, ids), descending, padded with (-inf, -1)."""
    scores = np.where(ids >= 0, scores, -np.inf).astype(np.float32)
    if scores.shape[1] < k:
        pad = k - scores.shape[1]
        scores = np.pad(scores, ((0, 0), (0, pad)), constant_values=-np.inf)
        ids = np.pad(ids, ((0, 0), (0, pad)), constant_values=-1)
    if scores.shape[1] > k:
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        scores, ids = np.take_along_axis(scores, part, 1), np.take_along_axis(ids, part, 1)
    order = np.argsort(-scores, axis=1, kind="stable")
    scores, ids = np.take_along_axis(scores, order, 1), np.take_along_axis(ids, order, 1)
    ids = np.where(np.isfinite(scores), ids, -1)
    return scores, ids.astype(np.int64)


def _rerank(q: np.ndarray, ids: np.ndarray, vectors: np.ndarray, k: int):
    """Exact scores for the candidate ids from the original vectors (sorted, deduplicated read)."""
    rows = np.unique(ids[ids >= 0])
    vecs = _rows(vectors, rows)
    pos = np.searchsorted(rows, np.where(ids >= 0, ids, rows[0] if rows.size else 0))
    scores = np.empty(ids.shape, np.float32)
    for s in range(0, len(q), 64):  # bounded temporaries: 64 × candidates × d
        scores[s:s + 64] = np.einsum("qcd,qd->qc", vecs[pos[s:s + 64]], q[s:s + 64])
    return _top_k(scores, ids, k)


def _ann(index, q, k, vectors, params=None, k_factor=None):
    kf = k_factor or int(_attached(index).get("params", {}).get("k_factor", 1))
    kf = kf if vectors is not None else 1
    fetch = min(max(k, k * kf), max(index.ntotal, 1))
    scores, ids = index.search(q, fetch, params=params)
    if kf > 1 and vectors is not None and (ids >= 0).any():
        return _rerank(q, ids, vectors, k)
    return _top_k(scores, ids, k)


def _exact_subset(index, q, k, allowed, vectors):
    """Exact top-k among few allowed rows: IVF probing could miss rows this sparse. float16
    vectors (unit-norm, as the embed step writes them) are scored as stored by faiss's fp16
    scanner, which skips numpy's slow float16 → float32 conversion (~2 ns a value)."""
    if vectors is None:
        vecs = np.ascontiguousarray(index.reconstruct_batch(allowed), dtype=np.float32)
        faiss.normalize_L2(vecs)
        scores = q @ vecs.T
        return _top_k(scores, np.broadcast_to(allowed, scores.shape), k)
    rows = np.ascontiguousarray(vectors[allowed])
    probe = rows[:64].astype(np.float32)
    if rows.dtype == np.float16 and np.allclose(np.linalg.norm(probe, axis=1), 1, atol=1e-2):
        flat = faiss.IndexScalarQuantizer(
            rows.shape[1], faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT)
        flat.add_sa_codes(rows.view(np.uint8))
    else:
        flat = faiss.IndexFlatIP(rows.shape[1])
        flat.add(_rows(rows, slice(None)))
    scores, pos = flat.search(q, min(k, len(allowed)))
    return _top_k(scores, np.where(pos >= 0, allowed[np.maximum(pos, 0)], -1), k)


def search(
    index: faiss.Index,
    queries: np.ndarray,
    k: int,
    allowed: np.ndarray | None = None,
    vectors: np.ndarray | None = None,
    k_factor: int | None = None,
    cross_modal: bool = False,
    nprobe: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-k rows per query: (scores q×k float32, ids q×k int64), best first.

    ``allowed``: sorted int64 row ids passing the user's filters; results come only from them,
    and each query gets k results whenever at least k allowed rows exist. ``vectors``: the
    original embeddings (memmap), used to re-rank ``k·k_factor`` candidates exactly and to score
    small allowed sets; without them compressed tiers (SQ4/PQ) lose recall. ``k_factor``
    overrides the index's (1 for SQ8: pass 2 with vectors for exact cosine scores, which SQ8
    otherwise approximates to ~±0.005). ``cross_modal``: the queries come from the other
    tower (text queries on image vectors): an IVF index probes :data:`CROSS_MODAL_PROBE` times
    more lists, and with ``vectors`` at least 2k candidates are re-ranked exactly. Measured in
    ``bench/search.py --modality-gap`` (demo CLIP, 600k rows): text→image recall@10 0.972 at
    nprobe, 1.000 with the re-rank (+0.01 ms); more lists matter where text sits farther from
    its images (tests/test_index.py: 0.94 → 0.98). ``nprobe``: IVF lists probed instead of the
    index's own (0: the index's; the contamination audit probes fewer for near-duplicates,
    :data:`backend.contamination.embedmatch.NEAR_NPROBE`). Missing slots are
    id -1, score -inf: drop them. Queries are L2-normalised here (on a copy). One query runs on
    one OpenMP thread (measured faster than two, and it leaves the other core free).
    """
    q = np.atleast_2d(np.array(queries, dtype=np.float32, order="C", copy=True))
    faiss.normalize_L2(q)
    if cross_modal and vectors is not None:
        k_factor = max(2, k_factor or int(_attached(index).get("params", {}).get("k_factor", 1)))
    if k <= 0:
        raise ValueError(f"k must be positive, got {k}")
    threads = faiss.omp_get_max_threads()
    if len(q) == 1:
        faiss.omp_set_num_threads(1)  # per calling thread in OpenMP; restored below
    try:
        ivf = _ivf(index)
        if allowed is None:
            params = None
            if (cross_modal or nprobe) and ivf is not None:
                params = _search_params(index, None, nprobe or CROSS_MODAL_PROBE * ivf.nprobe)
            return _ann(index, q, k, vectors, params, k_factor)
        allowed = np.asarray(allowed, dtype=np.int64)
        allowed = allowed[(allowed >= 0) & (allowed < index.ntotal)]
        if allowed.size == 0:
            return _top_k(np.zeros((len(q), 0), np.float32), np.zeros((len(q), 0), np.int64), k)
        fast_scan = isinstance(ivf, faiss.IndexIVFFastScan)  # its reconstruct crashes (1.15)
        if allowed.size <= EXACT_FILTER_MAX and (vectors is not None or not fast_scan):
            return _exact_subset(index, q, k, allowed, vectors)
        sel, _bitmap = _selector(allowed, index.ntotal)
        if ivf is None:  # exhaustive index: the selector search is complete
            return _ann(index, q, k, vectors, _search_params(index, sel), k_factor)
        # Sparse filters push the best allowed rows further out: probe enough lists to expect
        # ~64·k allowed rows if spread evenly (at most 8× nprobe; measured at 10^7 rows, 0.25%
        # allowed: recall 0.95 at nprobe, 0.976 at 4×). When probed lists still hold fewer than
        # k (filters often follow clusters) probe 4× more, up to every list. Fast-scan without
        # vectors lands here for small sets: all lists.
        base = (nprobe or ivf.nprobe) * (CROSS_MODAL_PROBE if cross_modal else 1)
        probe = ivf.nlist if allowed.size <= EXACT_FILTER_MAX else max(
            base, min(8 * base, math.ceil(64 * k * ivf.nlist / allowed.size)))
        scores, ids = _ann(index, q, k, vectors, _search_params(index, sel, probe), k_factor)
        need = min(k, allowed.size)
        short = (ids >= 0).sum(axis=1) < need
        while short.any() and probe < ivf.nlist:
            probe = min(ivf.nlist, probe * 4)
            s2, i2 = _ann(index, q[short], k, vectors, _search_params(index, sel, probe), k_factor)
            scores[short], ids[short] = s2, i2
            short[short] = (i2 >= 0).sum(axis=1) < need
        return scores, ids
    finally:
        faiss.omp_set_num_threads(threads)
