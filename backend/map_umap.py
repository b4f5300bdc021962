"""The map's 2-D layout by UMAP: fitted on a seeded sample, the other rows placed by
``transform`` in batches (on an executor's workers when given), numba kernels cached once.

Split from :mod:`backend.map` (which reduces, clusters and writes the map) because this is
the one part that talks to umap-learn and numba.
"""

from __future__ import annotations

import os
import pickle
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from backend.executor import Executor, Unit, counting

Progress = Callable[[str, int, int], None]  # (phase, done, total)

N_NEIGHBORS = 15
TRANSFORM_BATCH = 50_000
EXACT_KNN_MAX = 50_000  # up to this many rows UMAP gets exact FAISS neighbours
SMALL = 20_000  # below this many rows FAISS runs on one thread


@contextmanager
def _faiss_threads(rows: int) -> Iterator[None]:
    """One FAISS thread for small inputs: OpenMP's spinning threads make a sub-second job take
    seconds on a busy machine; large inputs keep every core."""
    import faiss

    before = faiss.omp_get_max_threads()
    if rows < SMALL:
        faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


_JIT_CACHED = False
# umap-learn's numba kernels that compile on every process start (~10-40 s) because they are
# not declared cache=True; re-declared with the same options plus cache=True they compile once
# per installation (into umap's __pycache__, or numba's user cache dir).
_UNCACHED = (
    ("umap.umap_", "smooth_knn_dist"),
    ("umap.umap_", "compute_membership_strengths"),
    ("umap.umap_", "fast_knn_indices"),
    ("umap.umap_", "init_transform"),
    ("umap.layouts", "_nb_optimize_layout_euclidean_single_epoch"),
)


def _cache_umap_jit() -> None:
    """Make umap's uncached numba kernels cache their machine code (once per process)."""
    global _JIT_CACHED
    if _JIT_CACHED:
        return
    _JIT_CACHED = True
    import importlib

    import numba

    for module, attr in _UNCACHED:
        try:
            mod = importlib.import_module(module)
            disp = getattr(mod, attr)
            opts = {k: v for k, v in disp.targetoptions.items() if k not in ("nopython", "cache")}
            setattr(mod, attr, numba.njit(cache=True, **opts)(disp.py_func))
        except Exception:  # another umap version or no writable cache: compile as usual
            continue


def _exact_knn(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Each row's ``k`` nearest rows (itself first) by exact L2 search (FAISS)."""
    import faiss

    index = faiss.IndexFlatL2(x.shape[1])
    index.add(np.ascontiguousarray(x))
    dist, ids = index.search(np.ascontiguousarray(x), k)
    return ids.astype(np.int64), np.sqrt(np.maximum(dist, 0.0)).astype(np.float32)


def _umap(
    x: np.ndarray, sample: int, seed: int, progress: Progress | None,
    executor: Executor | None = None, scratch: Path | None = None,
) -> tuple[np.ndarray, str, int]:  # fmt: skip
    """2-D UMAP of ``x``; fitted on ``sample`` seeded rows and the rest transformed when
    there are more (by ``executor`` when given, batch by batch in its workers, the fitted
    model and ``x`` handed over as files in ``scratch``). Returns (coordinates, method, rows
    fitted on)."""
    import warnings

    import umap

    _cache_umap_jit()
    n = len(x)
    fit_rows = np.arange(n) if n <= sample else np.sort(
        np.random.default_rng(seed).choice(n, sample, replace=False)
    )  # fmt: skip
    k = min(N_NEIGHBORS, len(fit_rows) - 1)
    # all rows fitted and few enough for exact search: FAISS neighbours (no NN-descent to
    # compile or run); otherwise UMAP's own index, which ``transform`` needs
    knn = None
    if len(fit_rows) == n and n <= EXACT_KNN_MAX:
        with _faiss_threads(n):
            knn = _exact_knn(x, k)
    reducer = umap.UMAP(
        n_components=2,
        n_neighbors=k,
        min_dist=0.1,
        metric="euclidean",
        random_state=seed,
        low_memory=True,
        n_jobs=1,
        precomputed_knn=(*knn, None) if knn else (None, None, None),
    )
    if progress:
        progress("umap", 0, n)
    out = np.empty((n, 2), dtype=np.float64)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*knn_search_index.*", category=UserWarning)
        out[fit_rows] = reducer.fit_transform(x[fit_rows])
    done = len(fit_rows)
    if progress:
        progress("umap", done, n)
    if done == n:
        return out, "umap", done
    rest = np.setdiff1d(np.arange(n), fit_rows, assume_unique=True)
    if executor is not None and scratch is not None:
        _transform_units(reducer, x, rest, out, executor, scratch, progress)
        return out, "umap sample+transform", len(fit_rows)
    for lo in range(0, len(rest), TRANSFORM_BATCH):
        part = rest[lo : lo + TRANSFORM_BATCH]
        out[part] = reducer.transform(x[part])
        done += len(part)
        if progress:
            progress("umap", done, n)
    return out, "umap sample+transform", len(fit_rows)


_WORKER_REDUCERS: dict[str, Any] = {}


def transform_unit(scratch: Path, lo: int, hi: int) -> int:
    """Place rows ``rest[lo:hi]`` with the fitted model in ``scratch``; commit
    ``<lo>.npy`` atomically. The model is read once per worker process."""
    import warnings

    key = str(scratch)
    if key not in _WORKER_REDUCERS:
        _WORKER_REDUCERS.clear()
        with open(scratch / "model.pkl", "rb") as f:
            _WORKER_REDUCERS[key] = pickle.load(f)
    _cache_umap_jit()
    x = np.load(scratch / "x.npy", mmap_mode="r")
    rest = np.load(scratch / "rest.npy", mmap_mode="r")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UserWarning)
        xy = _WORKER_REDUCERS[key].transform(np.asarray(x[rest[lo:hi]]))
    tmp = scratch / f".{lo:012d}.{os.getpid()}.tmp.npy"
    np.save(tmp, xy)
    os.replace(tmp, scratch / f"{lo:012d}.npy")
    return hi - lo


def _transform_units(reducer, x, rest, out, executor, scratch, progress) -> None:
    """``transform`` the rows not fitted on, one unit per batch, on ``executor``."""
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    with open(scratch / ".model.pkl", "wb") as f:
        pickle.dump(reducer, f, protocol=pickle.HIGHEST_PROTOCOL)
    os.replace(scratch / ".model.pkl", scratch / "model.pkl")
    np.save(scratch / "x.npy", x)
    np.save(scratch / "rest.npy", rest)
    finished = counting(progress, "umap", len(x) - len(rest), len(x))
    batches = [
        (lo, min(len(rest), lo + TRANSFORM_BATCH)) for lo in range(0, len(rest), TRANSFORM_BATCH)
    ]
    executor.run(
        [Unit(f"rows {lo}-{hi}", transform_unit, (scratch, lo, hi)) for lo, hi in batches], finished
    )
    for lo, hi in batches:
        out[rest[lo:hi]] = np.load(scratch / f"{lo:012d}.npy")
    shutil.rmtree(scratch, ignore_errors=True)
