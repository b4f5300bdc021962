"""The map step: every row placed in 2-D by its embedding, grouped into labelled clusters.

PCA to ~50 dimensions, then UMAP to 2-D (:mod:`backend.map_umap`). Above ``sample`` rows UMAP
is fitted on a seeded sample and the other rows are placed with ``transform`` in batches, so the
cost grows linearly.
Clusters are FAISS k-means on the 2-D layout (each a region of the map the user sees, its label
on its own points), named by their captions' c-TF-IDF terms.
Per-row ``map_x``, ``map_y`` and ``cluster`` are joined into the store (queryable by every
filter and by a lasso on the map); the cluster table goes to ``map/clusters.json``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

from backend import paths
from backend.columns import add_columns
from backend.embed import load_vectors
from backend.embedding_sets import describe
from backend.executor import Executor
from backend.manifest import now, step_record, update_manifest, write_json_atomic
from backend.map_files import clusters_path, map_dir
from backend.map_umap import N_NEIGHBORS, _faiss_threads, _umap
from backend.store import connect
from backend.terms import cluster_labels

Progress = Callable[[str, int, int], None]  # (phase, done, total)

PCA_DIMS = 50
MIN_UMAP_ROWS = 30  # below this UMAP's neighbour graph is meaningless: PCA 2-D instead
CHUNK = 65_536  # rows read from the memmap at a time
PCA_TRAIN = 100_000  # rows PCA is fitted on
LABEL_ROWS = 200_000  # captions read to name the clusters
REPRESENTATIVES = 8
CLUSTERING = "k-means on the 2-D layout"  # what the clusters are computed on (step record)
KIND_ALIASES = {"image": "img", "img": "img", "text": "text"}


class MapError(ValueError):
    """The map cannot be built as asked; the message says what to run or change."""


def choose_k(n: int) -> int:
    """Clusters for ``n`` rows: about sqrt(n/4), 2 to 200, never more than the rows."""
    if n < 2:
        return max(n, 0)
    return int(min(n, max(2, min(200, round((n / 4) ** 0.5)))))


def default_kind(embed_record: dict[str, Any]) -> str:
    """Which vectors show content best on a map.

    CLIP image vectors when CLIP made them. Otherwise (the packaged models) the caption
    vectors: on the demo, MiniLM caption vectors separate what a picture shows (its shape,
    the photos apart from the scenes) far better than EfficientNet-Lite0 image vectors, which
    group by colour and background texture (see ``tests/test_map.py`` and README "Map").
    """
    kinds = embed_record.get("kinds", {})
    if embed_record.get("cross_modal") and "img" in kinds:
        return "img"
    if "text" in kinds:
        return "text"
    if "img" in kinds:
        return "img"
    raise MapError("no embeddings")


def _finite_rows(vectors: np.ndarray, progress: Progress | None) -> np.ndarray:
    """Row mask of vectors with no NaN/inf component (read chunk by chunk)."""
    n = len(vectors)
    ok = np.empty(n, dtype=bool)
    for lo in range(0, n, CHUNK):
        ok[lo : lo + CHUNK] = np.isfinite(vectors[lo : lo + CHUNK]).all(axis=1)
        if progress:
            progress("check", min(n, lo + CHUNK), n)
    return ok


def _normalised(chunk: np.ndarray) -> np.ndarray:
    x = np.asarray(chunk, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _pca(
    vectors: np.ndarray, rows: np.ndarray, dims: int, rng: np.random.Generator,
    progress: Progress | None,
) -> np.ndarray:  # fmt: skip
    """Unit-normalised ``vectors[rows]`` reduced to ``dims`` by PCA fitted on a sample
    (FAISS PCAMatrix), applied chunk by chunk: memory is rows × dims, not rows × d."""
    import faiss

    d = vectors.shape[1]
    dims = min(dims, d, len(rows) - 1)
    train = rows if len(rows) <= PCA_TRAIN else np.sort(rng.choice(rows, PCA_TRAIN, False))
    pca = faiss.PCAMatrix(d, dims)
    pca.train(np.ascontiguousarray(_normalised(vectors[train])))
    out = np.empty((len(rows), dims), dtype=np.float32)
    for lo in range(0, len(rows), CHUNK):
        part = rows[lo : lo + CHUNK]
        out[lo : lo + len(part)] = pca.apply(np.ascontiguousarray(_normalised(vectors[part])))
        if progress:
            progress("pca", lo + len(part), len(rows))
    return out


def _pca2(x: np.ndarray) -> np.ndarray:
    """Exact 2-D PCA of a few rows (zeros where there is no second direction)."""
    out = np.zeros((len(x), 2), dtype=np.float64)
    if len(x) < 2:
        return out
    centred = x.astype(np.float64) - x.mean(axis=0)
    u, s, _ = np.linalg.svd(centred, full_matrices=False)
    m = min(2, len(s))
    out[:, :m] = u[:, :m] * s[:m]
    return out


def _kmeans(x: np.ndarray, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Cluster id of each row and its squared distance to its centroid (FAISS k-means)."""
    import faiss

    if k <= 1:
        c = x.mean(axis=0, keepdims=True)
        return np.zeros(len(x), dtype=np.int32), ((x - c) ** 2).sum(axis=1)
    km = faiss.Kmeans(x.shape[1], k, niter=25, seed=seed + 1, max_points_per_centroid=512)
    km.train(np.ascontiguousarray(x))
    dist, label = km.index.search(np.ascontiguousarray(x), 1)
    return label[:, 0].astype(np.int32), dist[:, 0]


def _captions(name: str, root: Path | None, row_ids: np.ndarray) -> list[str]:
    con = connect(name, root)
    try:
        got = con.execute(
            "SELECT row_id, caption FROM samples WHERE row_id IN (SELECT unnest(?::BIGINT[]))",
            [row_ids.tolist()],
        ).fetchall()
    finally:
        con.close()
    by_id = dict(got)
    return [by_id.get(int(i)) or "" for i in row_ids]


def _cluster_table(
    name: str,
    root: Path | None,
    rows: np.ndarray,
    xy: np.ndarray,
    labels: np.ndarray,
    dist: np.ndarray,
    k: int,
    seed: int,
) -> list[dict[str, Any]]:
    """One record per cluster: size, label terms, map centre, representatives."""
    named = rows if len(rows) <= LABEL_ROWS else np.sort(
        np.random.default_rng(seed).choice(rows, LABEL_ROWS, replace=False)
    )  # fmt: skip
    pos = np.searchsorted(rows, named)
    terms = cluster_labels(_captions(name, root, named), labels[pos], k=4)
    order = np.lexsort((dist, labels))  # by cluster, nearest the centroid first
    starts = np.searchsorted(labels[order], np.arange(k + 1))
    out = []
    for c in range(k):
        members = order[starts[c] : starts[c + 1]]
        if len(members) == 0:
            continue
        words = terms.get(c, [])
        cx, cy = np.median(xy[members], axis=0)
        out.append({
            "cluster": c,
            "label": ", ".join(words[:3]) or f"cluster {c}",
            "terms": words,
            "size": int(len(members)),
            "x": float(cx),
            "y": float(cy),
            "representatives": [int(rows[i]) for i in members[:REPRESENTATIVES]],
        })  # fmt: skip
    return out


def _checked_vectors(
    name: str, root: Path | None, vectors: str | None, sample: int, clusters: int | None
) -> tuple[dict[str, Any], str, np.ndarray]:
    """The embed record, the kind of vectors to map and those vectors, or :class:`MapError`
    saying what to run when the arguments or the vectors do not fit the store."""
    info = describe(name, root)
    if not info.get("kinds"):
        raise MapError(f"{name!r} has no embeddings yet: run `python -m backend embed {name}`")
    if vectors is None:
        kind = default_kind(info)
    elif vectors in KIND_ALIASES:
        kind = KIND_ALIASES[vectors]
    else:
        raise MapError(f"unknown vectors {vectors!r}: use image or text")
    if kind not in info["kinds"]:
        raise MapError(f"{name!r} has no {kind} embeddings: run `python -m backend embed {name}`")
    if sample < 2:
        raise MapError("sample must be at least 2 rows")
    if clusters is not None and clusters < 1:
        raise MapError("clusters must be at least 1")
    vec = load_vectors(name, kind, root)
    n = len(vec)
    con = connect(name, root)
    try:
        stored = con.execute("SELECT count(*) FROM samples").fetchone()[0]
    finally:
        con.close()
    if stored != n:
        raise MapError(
            f"the {kind} embeddings of {name!r} cover {n} rows but the store has {stored} "
            f"(rebuilt since?): run `python -m backend embed {name} --rebuild`"
        )
    return info, kind, vec


def _place(
    vec: np.ndarray, rows: np.ndarray, sample: int, seed: int, progress: Progress | None,
    executor: Executor | None, scratch: Path, lap: Callable[[str], None],
) -> tuple[np.ndarray, np.ndarray, str, int, str | None]:  # fmt: skip
    """The PCA vectors of ``rows`` and their 2-D places: UMAP, or exact PCA for a handful of
    rows (with a note saying so). Returns (x, xy, method, rows fitted on, note)."""
    too_few = len(rows) < MIN_UMAP_ROWS
    if too_few:  # a handful of rows: exact PCA on the vectors themselves
        x = _normalised(vec[rows])
    else:
        with _faiss_threads(len(rows)):
            x = _pca(vec, rows, PCA_DIMS, np.random.default_rng(seed), progress)
    lap("pca")
    if too_few:
        xy, method, fitted = _pca2(x), "pca", len(rows)
        note = f"{len(rows)} usable rows are too few for UMAP (needs {MIN_UMAP_ROWS}): PCA 2-D"
    else:
        xy, method, fitted = _umap(x, sample, seed, progress, executor, scratch)
        note = None
    lap("umap" if not too_few else "pca2")
    return x, xy, method, fitted, note


def _clusters(
    name: str, root: Path | None, rows: np.ndarray, xy: np.ndarray,
    clusters: int | None, seed: int, progress: Progress | None, lap: Callable[[str], None],
) -> tuple[np.ndarray, list[dict[str, Any]]]:  # fmt: skip
    """Each mapped row's k-means cluster on its 2-D place, and the labelled cluster table.

    On the 2-D layout, not the PCA vectors: a cluster is then a region of the map the user
    sees, and on the demo CLIP's vectors (colour beside shape) it follows shape far better
    (NMI 0.75-0.79 against 0.52-0.63 on the 600-row demo fixture, README "Map"); 2-d k-means
    is also cheap at any size. Representatives are the rows nearest the 2-D centroid."""
    k = min(clusters or choose_k(len(rows)), len(rows))
    if progress:
        progress("clusters", 0, 1)
    with _faiss_threads(len(rows)):
        labels, dist = _kmeans(np.asarray(xy, dtype=np.float32), k, seed)
    lap("kmeans")
    table = _cluster_table(name, root, rows, xy, labels, dist, k, seed)
    if progress:
        progress("clusters", 1, 1)
    lap("labels")
    return labels, table


def _write_map(
    name: str, root: Path | None, ok: np.ndarray, xy: np.ndarray, labels: np.ndarray,
    clusters_json: dict[str, Any], progress: Progress | None,
) -> None:  # fmt: skip
    """Join ``map_x``, ``map_y`` and ``cluster`` into the store (NULL for the rows not
    mapped) and write the cluster table."""
    n = len(ok)
    full_x = np.full(n, np.nan)
    full_y = np.full(n, np.nan)
    full_c = np.full(n, -1, dtype=np.int32)
    full_x[ok], full_y[ok], full_c[ok] = xy[:, 0], xy[:, 1], labels
    missing = ~ok
    if progress:
        progress("store", 0, 1)
    add_columns(
        name,
        pa.table(
            {
                "row_id": pa.array(np.arange(n, dtype=np.int64)),
                "map_x": pa.array(full_x, mask=missing),
                "map_y": pa.array(full_y, mask=missing),
                "cluster": pa.array(full_c, type=pa.int32(), mask=missing),
            }
        ),
        root,
    )
    write_json_atomic(clusters_path(name, root), clusters_json)
    if progress:
        progress("store", 1, 1)


def build_map(
    name: str,
    root: Path | None = None,
    *,
    vectors: str | None = None,
    sample: int = 200_000,
    clusters: int | None = None,
    seed: int = 0,
    progress: Progress | None = None,
    executor: Executor | None = None,
) -> dict[str, Any]:
    """Place every row of ``name`` on a 2-D map and cluster it; returns the step record.

    ``executor``: where the rows beyond the fitted sample are placed (``transform``), batch by
    batch; the fit, PCA and k-means run here."""
    t0, started = time.perf_counter(), now()
    info, kind, vec = _checked_vectors(name, root, vectors, sample, clusters)
    n = len(vec)
    phases: dict[str, float] = {}
    tick = time.perf_counter()

    def lap(phase: str) -> None:
        nonlocal tick
        phases[phase] = round(time.perf_counter() - tick, 3)
        tick = time.perf_counter()

    ok = _finite_rows(vec, progress)
    rows = np.flatnonzero(ok)
    bad = int(n - len(rows))
    if len(rows) == 0:
        raise MapError(f"none of the {n} {kind} vectors of {name!r} is usable (NaN/inf or empty)")
    lap("check")
    scratch = map_dir(name, root) / ".transform"
    x, xy, method, fitted, note = _place(vec, rows, sample, seed, progress, executor, scratch, lap)
    labels, table = _clusters(name, root, rows, xy, clusters, seed, progress, lap)
    model = info["kinds"][kind].get("model")
    _write_map(name, root, ok, xy, labels, {"dataset": name, "vectors": kind, "model": model,
               "method": method, "clusters": table}, progress)  # fmt: skip
    lap("store")
    record = step_record(
        {"vectors": kind, "sample": sample, "clusters": clusters, "seed": seed,
         "pca_dims": int(x.shape[1]), "n_neighbors": N_NEIGHBORS,
         "executor": executor.describe() if executor else {"kind": "in-process"}},
        started,
        time.perf_counter() - t0,
        method=method,
        method_note=note,
        vectors={"kind": kind, "model": model, "dim": int(vec.shape[1])},
        n=n,
        mapped=int(len(rows)),
        nan_rows=bad,
        sample=int(fitted),
        k=len(table),
        clustering=CLUSTERING,
        phases=phases,
        columns=["map_x", "map_y", "cluster"],
    )  # fmt: skip
    update_manifest(paths.manifest_path(name, root), "map", record)
    record["prepared"] = _prepare_page(name, root)
    return record


def _prepare_page(name: str, root: Path | None) -> dict[str, Any] | str:
    """What the Map page reads on open (:mod:`backend.map_prepared`); a failure here leaves the
    map built and the page on its live queries, and says why."""
    from backend.map_prepared import prepare

    try:
        return prepare(name, root)
    except (duckdb.Error, OSError) as e:
        return (f"not prepared ({e}): the Map page queries live; rerun "
                f"`python -m backend map {name}`")
