"""An IVF index built shard by shard and merged into one index whose inverted lists stay on disk
(the autofaiss / clip-retrieval recipe), for datasets whose codes should not have to fit in RAM.

    train(sample, factory)  → write_atomic(trained, "trained.index")     one process, a sample
    add_shard(trained, shard_k.npy, id_offset, shard_k.index)            one unit per shard
    merge(trained, [shard_k.index...], out_dir)                          one process, streaming
    open_index(out_dir)                                                  query node

``add_shard`` is a module-level function writing its output atomically, so it runs as a
``backend.executor.Unit`` inline, on a local process pool or on Ray (``add_shards`` skips shards
whose output exists). Row ids are explicit: shard k's rows get ``id_offset + arange``, so the
merged index returns global row ids (and rows can come in any shard order). ``merge`` copies the
shards' lists list by list into ``merged.ivfdata`` (``OnDiskInvertedLists``) next to
``populated.index`` (quantizer, codec, list offsets), then renames the folder into place;
``open_index`` memory-maps the lists. The result is an ordinary ``faiss.IndexIVF``, so
``backend.index_search.search`` (filters, re-rank) works on it unchanged.

RAM on a query node (``ram_needed``): the coarse quantizer, list headers and the row-id direct
map stay resident (~25 MB + 8 bytes a row at 8192 lists, d=512); the codes are page cache, read
on demand: ``nprobe`` lists a query (~nprobe/nlist of the file), the whole file when hot.

Private helpers of ``backend.index`` used here: ``_train`` (coarse k-means with an exact BLAS
assigner, two-level past 16k lists), ``_rows`` (float16 → normalised float32, a batch at a time),
``_ivf`` and ``_apply_params``.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from backend import index as vindex
from backend import index_plan, index_search
from backend.executor import Done, Executor, Unit
from backend.manifest import write_json_atomic

POPULATED = "populated.index"
IVFDATA = "merged.ivfdata"
META = "meta.json"
BATCH = index_plan.BATCH  # rows converted to float32 and added at a time
LIST_HEADER = 24  # bytes a list: OnDiskOneList (size, capacity, offset)


def train(sample: np.ndarray, factory: str, coarse: str | None = None) -> faiss.Index:
    """A trained, empty inner-product index for ``factory`` (an IVF factory string), from
    ``sample`` (rows × d, float16 or float32; normalised here, on a copy). The coarse k-means
    runs in torch when it sees a GPU (or ``coarse="torch"``), else in FAISS: see
    :func:`backend.index.build`. The shards' rows are assigned by FAISS when they are added."""
    index = faiss.index_factory(sample.shape[1], factory, faiss.METRIC_INNER_PRODUCT)
    if index_search._ivf(index) is None:
        raise ValueError(f"{factory!r} is not an IVF index: nothing to shard")
    x = index_search._rows(sample, slice(None))
    if vindex._coarse_torch(coarse, index):
        vindex._torch_train(index, x)
    else:
        vindex._train(index, x, on_gpu=False)
    return index


def write_atomic(index: faiss.Index, path: Path) -> int:
    """Write ``index`` to ``path`` via a temp file and a rename (a killed writer leaves only a
    ``.tmp-PID`` file, never a short ``path``); returns the file's size."""
    path = Path(path)
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    faiss.write_index(index, str(tmp))
    os.replace(tmp, path)
    return path.stat().st_size


def add_shard(
    trained_path: str | Path,
    vectors_path: str | Path,
    id_offset: int,
    out_path: str | Path,
    threads: int | None = None,
) -> dict[str, Any]:
    """Add one shard's float16 ``.npy`` (memory-mapped, ``BATCH`` rows at a time) to a copy of
    the trained index with ids ``id_offset + arange(rows)``; write ``out_path`` atomically.

    An existing ``out_path`` is kept (a rerun does nothing). ``threads`` caps OpenMP threads
    in this process (one worker a core), restored afterwards.
    """
    out_path = Path(out_path)
    if out_path.is_file():
        return {"out": str(out_path), "skipped": True}
    t0 = time.perf_counter()
    before = faiss.omp_get_max_threads()
    if threads:
        faiss.omp_set_num_threads(threads)
    try:
        index = faiss.read_index(str(trained_path))
        if index.ntotal:
            raise ValueError(f"{trained_path} already holds {index.ntotal} vectors")
        x = np.load(vectors_path, mmap_mode="r")
        if x.ndim != 2 or x.shape[1] != index.d:
            raise ValueError(f"{vectors_path} is {x.shape}, the index wants rows × {index.d}")
        for s in range(0, len(x), BATCH):
            e = min(len(x), s + BATCH)
            index.add_with_ids(index_search._rows(x, slice(s, e)), np.arange(s, e) + int(id_offset))
        size = write_atomic(index, out_path)
    finally:
        faiss.omp_set_num_threads(before)
    return {
        "out": str(out_path),
        "rows": int(len(x)),
        "id_offset": int(id_offset),
        "bytes": size,
        "seconds": round(time.perf_counter() - t0, 3),
        "skipped": False,
    }


def shard_rows(vector_paths: Sequence[str | Path]) -> list[int]:
    """Rows in each ``.npy`` (header only)."""
    return [int(np.load(p, mmap_mode="r").shape[0]) for p in vector_paths]


def add_shards(
    trained_path: str | Path,
    vector_paths: Sequence[str | Path],
    shard_dir: str | Path,
    executor: Executor | None = None,
    done: Done | None = None,
    threads: int | None = None,
) -> dict[str, Any]:
    """One ``add_shard`` unit per vectors file not yet indexed; row ids run on across files in
    the order given. Returns the shard index paths (in order) and which units ran or were
    skipped; stale ``.tmp-*`` files of a killed run are removed before their shard reruns."""
    shard_dir = Path(shard_dir)
    shard_dir.mkdir(parents=True, exist_ok=True)
    offsets = np.concatenate([[0], np.cumsum(shard_rows(vector_paths))]).tolist()
    outs, units, skipped = [], [], []
    for k, vec in enumerate(vector_paths):
        out = shard_dir / f"shard-{k:05d}.index"
        outs.append(out)
        if out.is_file():
            skipped.append(out.name)
            continue
        for stale in shard_dir.glob(f"{out.name}.tmp-*"):
            stale.unlink()
        units.append(
            Unit(
                out.name,
                add_shard,
                (str(trained_path), str(vec), int(offsets[k]), str(out), threads),
            )
        )
    results = (executor or Executor(kind="inline")).run(units, done=done)
    return {
        "paths": outs,
        "ran": list(results),
        "skipped": skipped,
        "results": results,
        "rows": int(offsets[-1]),
    }


def default_params(nlist: int) -> dict[str, int]:
    """Search params as ``backend.index.choose`` sets them for ``nlist`` lists."""
    nprobe = min(nlist, max(16, round(0.75 * math.sqrt(nlist))))
    return {"nprobe": nprobe, "ef_search": max(64, 2 * nprobe), "k_factor": 1}


def merge(
    trained_path: str | Path,
    shard_paths: Sequence[str | Path],
    out_dir: str | Path,
    params: dict[str, int] | None = None,
    direct_map: bool = True,
) -> dict[str, Any]:
    """Merge the shard indexes into ``out_dir/merged.ivfdata`` (on-disk lists) and
    ``out_dir/populated.index``, plus ``meta.json``; returns the meta.

    Written in a temp folder beside ``out_dir`` and renamed into place, so ``out_dir`` is
    either absent or whole; an existing ``out_dir`` is refused. Shards are memory-mapped, so
    the lists never need to fit in RAM. ``direct_map`` (8 bytes a row, resident) lets filtered
    searches over few rows reconstruct them; it needs ids ``0..n-1``, as ``add_shards`` gives.
    """
    t0 = time.perf_counter()
    out_dir = Path(out_dir)
    if out_dir.exists():
        raise FileExistsError(f"{out_dir} exists: remove it to merge again")
    missing = [str(p) for p in shard_paths if not Path(p).is_file()]
    if missing:
        raise FileNotFoundError(f"shard indexes not built (run add_shards): {missing}")
    for stale in out_dir.parent.glob(f".{out_dir.name}.tmp-*"):  # a killed merge's leftovers
        shutil.rmtree(stale, ignore_errors=True)
    tmp = out_dir.with_name(f".{out_dir.name}.tmp-{os.getpid()}")
    tmp.mkdir(parents=True)
    try:
        meta = _merge_into(tmp, Path(trained_path), shard_paths, out_dir, params, direct_map)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    meta["merge_seconds"] = round(time.perf_counter() - t0, 3)
    write_json_atomic(tmp / META, meta)
    os.replace(tmp, out_dir)
    return meta


def _merge_into(
    tmp: Path,
    trained_path: Path,
    shard_paths: Sequence[str | Path],
    out_dir: Path,
    params: dict[str, int] | None,
    direct_map: bool,
) -> dict[str, Any]:
    """The merge proper, written into ``tmp``; returns the meta (without the merge time)."""
    index = faiss.read_index(str(trained_path))
    ivf = index_search._ivf(index)
    if ivf is None or index.ntotal:
        raise ValueError(f"{trained_path} is not a trained, empty IVF index")
    shards = [faiss.read_index(str(p), faiss.IO_FLAG_MMAP) for p in shard_paths]
    lists = faiss.InvertedListsPtrVector()
    for p, s in zip(shard_paths, shards, strict=True):
        sivf = index_search._ivf(s)
        if sivf is None or (sivf.nlist, sivf.code_size, s.d) != (ivf.nlist, ivf.code_size, index.d):
            raise ValueError(f"{p} was not built from {trained_path}")
        lists.push_back(sivf.invlists)
    ondisk = faiss.OnDiskInvertedLists(ivf.nlist, ivf.code_size, str(tmp / IVFDATA))
    ntotal = int(ondisk.merge_from_multiple(lists.data(), lists.size(), False))
    del lists, shards
    ivf.replace_invlists(ondisk, True)
    ondisk.this.disown()  # the index owns it now
    index.ntotal = ivf.ntotal = ntotal
    if direct_map:
        ivf.make_direct_map()  # raises unless ids are 0..ntotal-1
    # Where readers find the lists: ``open_index`` reads with IO_FLAG_ONDISK_SAME_DIR, so only
    # the file name counts and the folder can move; still record the final path.
    ondisk.filename = str(out_dir.resolve() / IVFDATA)
    faiss.write_index(index, str(tmp / POPULATED))
    sizes = [int(ivf.invlists.list_size(i)) for i in range(ivf.nlist)]
    d, code_size = int(index.d), int(ivf.code_size)
    del index, ivf, ondisk
    meta = {
        "factory": _factory(trained_path),
        "n": ntotal,
        "d": d,
        "nlist": len(sizes),
        "code_size": code_size,
        "params": params or default_params(len(sizes)),
        "shards": [Path(p).name for p in shard_paths],
        "direct_map": direct_map,
        "largest_list": max(sizes),
        "empty_lists": sizes.count(0),
        "ivfdata_bytes": (tmp / IVFDATA).stat().st_size,
        "populated_bytes": (tmp / POPULATED).stat().st_size,
        "faiss_version": faiss.__version__,
    }
    meta["ram"] = ram_needed(
        meta["n"], meta["d"], meta["nlist"], meta["code_size"], meta["params"]["nprobe"], direct_map
    )
    return meta


def _factory(trained_path: str | Path) -> str:
    side = Path(trained_path).with_suffix(".json")
    if side.is_file():
        return str(json.loads(side.read_text(encoding="utf-8")).get("factory", ""))
    return ""


def save_trained(index: faiss.Index, path: str | Path, factory: str) -> int:
    """Write the trained index atomically with a sidecar naming its factory (kept in the
    merged meta); returns the file's size."""
    path = Path(path)
    size = write_atomic(index, path)
    write_json_atomic(path.with_suffix(".json"), {"factory": factory, "d": int(index.d)})
    return size


def open_index(
    out_dir: str | Path, in_ram: bool = False, prefetch_threads: int = 0
) -> tuple[faiss.Index, dict[str, Any]]:
    """The merged index for ``backend.index_search.search``, its saved params applied, and its meta.

    The lists stay in ``merged.ivfdata``, memory-mapped read-only (the folder may have moved
    since the merge). ``in_ram`` copies them into ordinary in-memory lists instead (the
    baseline). ``prefetch_threads``: threads faiss starts each search to read the probed lists
    ahead (worth it on cold, slow storage; 0 for page-cached files).
    """
    out_dir = Path(out_dir)
    meta = json.loads((out_dir / META).read_text(encoding="utf-8"))
    index = faiss.read_index(str(out_dir / POPULATED), faiss.IO_FLAG_ONDISK_SAME_DIR)
    ivf = index_search._ivf(index)
    ondisk = faiss.downcast_InvertedLists(ivf.invlists)
    if in_ram:
        ram = faiss.ArrayInvertedLists(ivf.nlist, ivf.code_size)
        for i in range(ivf.nlist):
            m = ondisk.list_size(i)
            if m:
                ram.add_entries(i, m, ondisk.get_ids(i), ondisk.get_codes(i))
        ivf.replace_invlists(ram, True)
        ram.this.disown()
    else:
        ondisk.prefetch_nthread = int(prefetch_threads)
    index_search._apply_params(index, meta.get("params", {}))
    return index, meta


def ram_needed(
    n: int, d: int, nlist: int, code_size: int, nprobe: int, direct_map: bool = True
) -> dict[str, int]:
    """Bytes a query node needs: ``resident`` (quantizer with HNSW links, list headers,
    direct map: always in RAM), ``per_query`` (the ``nprobe`` average lists one query reads
    from page cache) and ``hot`` (the whole lists file, for steady latency)."""
    per_row = code_size + 8  # codes and the int64 id
    quantizer = nlist * (4 * d + 2 * 32 * 4 + 64)  # as backend.index's estimate
    resident = quantizer + nlist * LIST_HEADER + (8 * n if direct_map else 0)
    return {
        "resident": int(resident),
        "per_query": int(nprobe * n / max(nlist, 1) * per_row),
        "hot": int(n * per_row),
    }
