"""The embed step: every row's image and caption as float16 vectors, in row-id order.

Streamed in chunks (never the whole dataset in memory), images decoded by DataLoader workers,
resumable chunk by chunk, and written to a partial file that is renamed only when complete.
Embeddings of different models are never mixed: a second model needs ``rebuild=True``.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from backend import paths
from backend.embed_encode import _device, _embed_chunk, _worker_encoder, choose_encoders
from backend.embedding_sets import same_model
from backend.executor import Executor, Unit
from backend.manifest import now, read_manifest, update_manifest, versions, write_json_atomic
from backend.models import Encoder, checkpoint_sha256
from backend.sharded_vectors import ShardedVectors
from backend.store import connect

KINDS = ("img", "text")
CHUNK = 4096
UNIT_MAX_ROWS = 50_000  # a shard bigger than this is cut into several units
CONCAT_MAX_ROWS = 50_000_000  # above this (51 GB at 512-d) vectors stay one file per shard

Progress = Callable[[str, int, int], None]  # (kind, rows done, rows total)


class ModelMismatch(ValueError):
    """Existing embeddings come from another model; mixing them would make search meaningless."""


def embeddings_dir(name: str, root: Path | None = None) -> Path:
    return paths.dataset_dir(name, root) / "embeddings"


def embed(
    name: str, root: Path | None = None, mode: str = "auto", clip_model: str | None = None,
    clip_pretrained: str | None = None, clip_checkpoint: str | None = None,
    device: str | None = None, batch_size: int | None = None, workers: int | None = None,
    rebuild: bool = False, progress: Progress | None = None,
    encoders: dict[str, Encoder] | None = None, executor: Executor | None = None,
    concat_max: int = CONCAT_MAX_ROWS,
) -> dict[str, Any]:
    """Embed dataset ``name``; returns the manifest record of the step.

    Without ``executor`` rows are embedded here in chunks, images decoded by DataLoader
    workers. With one, each source shard is a unit of work run by it (a process pool or Ray),
    each worker loading the models once; the vectors are the same either way up to float
    rounding, and identical between executors. Above ``concat_max`` rows the executor's
    per-shard files are kept as they are (:func:`vector_shards`) instead of joined."""
    t0, started = time.perf_counter(), now()
    mpath = paths.manifest_path(name, root)
    previous = read_manifest(mpath).get("steps", {}).get("embed", {})
    given = {k for k, v in previous.get("kinds", {}).items() if v.get("given_by_source")}
    injected = encoders is not None
    encoders, why_not_clip = _encoders(
        encoders, given, mode, clip_model, clip_pretrained, clip_checkpoint, device)
    out_dir = embeddings_dir(name, root)
    out_dir.mkdir(parents=True, exist_ok=True)
    con = connect(name, root)
    n = con.execute("SELECT count(*) FROM samples").fetchone()[0]
    cuda = any(e.device.startswith("cuda") for e in encoders.values())
    batch = batch_size or (512 if cuda else 64)
    workers = (os.cpu_count() or 1) if workers is None else workers
    kinds: dict[str, Any] = {}
    pending: dict[str, Encoder] = {}  # kinds left to the executor
    fresh: list[str] = []  # kinds embedded by this call
    try:
        for kind in KINDS:
            old = previous.get("kinds", {}).get(kind, {})
            if kind in given or _current(name, kind, encoders[kind], old, out_dir, n, rebuild):
                kinds[kind] = old
            elif executor is None:
                kinds[kind] = _embed_kind(kind, encoders[kind], con, n, out_dir, batch,
                                          min(workers, 4), progress)
                fresh.append(kind)
            else:
                pending[kind] = encoders[kind]
        if pending:
            used = "clip" if encoders["img"].id == "clip" else "packaged"  # as loaded here
            spec = {"mode": used, "clip_model": clip_model, "clip_pretrained": clip_pretrained,
                    "clip_checkpoint": clip_checkpoint, "device": device}  # fmt: skip
            models = {k: encoders[k] if injected else spec for k in pending}
            fresh += list(pending)
            kinds.update(_embed_units(name, root, pending, models, con, n, out_dir, batch,
                                      executor, progress, concat_max))
        _note_checkpoint(kinds, fresh, encoders, clip_checkpoint)
    finally:
        con.close()
    params = {"mode": mode, "batch_size": batch, "device": _device(encoders),
              "executor": executor.describe() if executor else {"kind": "in-process"}}
    return _record(mpath, params, kinds, why_not_clip, started, t0)


def _encoders(encoders: dict[str, Encoder] | None, given: set[str], *choice: str | None
              ) -> tuple[dict[str, Encoder], str | None]:
    """The encoders given, none when every kind is shipped by the source (no model to load), else
    those :func:`choose_encoders` loads for ``choice`` (mode, model, pretrained, checkpoint,
    device) and why CLIP is not among them."""
    if encoders is None and set(KINDS) <= given:
        encoders = {}
    if encoders is None:
        return choose_encoders(*choice)
    return encoders, None


def _current(name: str, kind: str, enc: Encoder, old: dict, out_dir: Path, n: int,
             rebuild: bool) -> bool:
    """Whether ``kind``'s vectors on disk are current (this model, every row) and kept; vectors
    of another model are never mixed with this one's unless ``rebuild``."""
    have = (out_dir / f"{kind}.npy").is_file() or sharded_dir(out_dir, kind).is_dir()
    if have and old.get("model") not in (None, enc.name) and not rebuild:
        raise ModelMismatch(
            f"{kind} embeddings of {name!r} were made with {old['model']}; refusing to "
            f"mix in {enc.name}. Re-embed everything with `python -m backend embed "
            f"{name} --rebuild`."
        )
    return bool(have and old.get("model") == enc.name and old.get("rows") == n and not rebuild)


def _note_checkpoint(kinds: dict, fresh: list[str], encoders: dict[str, Encoder],
                     clip_checkpoint: str | None) -> None:
    """Name the fine-tuned checkpoint (path and sha256) in the records of the kinds CLIP
    embedded in this call, so the vectors say which weights made them."""
    for kind in fresh:
        if clip_checkpoint and encoders[kind].id == "clip":
            kinds[kind]["checkpoint"] = str(Path(clip_checkpoint).resolve())
            kinds[kind]["checkpoint_sha256"] = checkpoint_sha256(clip_checkpoint)


def _record(mpath: Path, params: dict, kinds: dict, why_not_clip: str | None, started: str,
            t0: float) -> dict[str, Any]:
    """The embed step's manifest record, written with the models it names."""
    record = {
        "status": "done",
        "params": params,
        "kinds": kinds,
        "cross_modal": same_model(kinds),  # one space: both kinds from the same model
        "clip_unavailable": why_not_clip,
        "versions": versions(),
        "started_at": started,
        "finished_at": now(),
        "seconds": round(time.perf_counter() - t0, 3),
    }
    models = {
        "image": kinds["img"].get("model", "given by source"),
        "text": kinds["text"].get("model", "given by source"),
    }
    update_manifest(mpath, "embed", record, models)
    return record


def _embed_kind(
    kind: str,
    enc: Encoder,
    con,
    n: int,
    out_dir: Path,
    batch: int,
    workers: int,
    progress: Progress | None,
) -> dict[str, Any]:
    """Fill ``.{kind}.partial.npy`` chunk by chunk (resuming), then rename it into place."""
    t0 = time.perf_counter()
    partial = out_dir / f".{kind}.partial.npy"
    state_path = out_dir / f".{kind}.progress.json"
    state = read_manifest(state_path)
    fresh = {"model": enc.name, "rows": n, "dim": enc.dim}
    if {k: state.get(k) for k in fresh} != fresh or not partial.is_file():
        state = {**fresh, "done": 0, "missing": 0}
        arr = np.lib.format.open_memmap(partial, "w+", np.float16, (n, enc.dim))
    else:
        arr = np.load(partial, mmap_mode="r+")
    write_json_atomic(state_path, state)
    done = state["done"]
    if progress:
        progress(kind, done, n)
    while done < n:
        hi = min(n, done + CHUNK)
        vecs, missing = _embed_chunk(
            kind, enc, con, done, hi, batch, workers if kind == "img" else 0
        )
        arr[done:hi] = vecs.astype(np.float16)
        arr.flush()
        done = hi
        state.update(done=done, missing=state["missing"] + missing)
        write_json_atomic(state_path, state)  # after the flush: resume trusts only written rows
        if progress:
            progress(kind, done, n)
    del arr
    os.replace(partial, out_dir / f"{kind}.npy")
    state_path.unlink(missing_ok=True)
    seconds = time.perf_counter() - t0
    return {
        "model": enc.name,
        "dim": enc.dim,
        "rows": n,
        "missing": state["missing"],
        "seconds": round(seconds, 3),
        "rows_per_s": round(n / max(seconds, 1e-9), 1),
    }


def sharded_dir(out_dir: Path, kind: str) -> Path:
    """Where vectors too many for one file stay, one ``<first row>.npy`` per shard."""
    return out_dir / "shards" / kind


def vector_shards(name: str, kind: str, root: Path | None = None) -> list[tuple[int, Path]]:
    """``(first row, file)`` of each per-shard vector file, in row order (empty when the
    vectors are one file): the input of :mod:`backend.index_shards` at scale."""
    folder = sharded_dir(embeddings_dir(name, root), kind)
    return sorted((int(p.stem), p) for p in folder.glob("*.npy")) if folder.is_dir() else []


def unit_ranges(con, max_rows: int = UNIT_MAX_ROWS) -> list[tuple[int, int]]:
    """``[lo, hi)`` row ranges, one per source shard (its rows are contiguous in row-id order),
    big shards cut into pieces of at most ``max_rows``: the units of a per-shard step."""
    bounds = con.execute(
        "SELECT min(row_id), max(row_id) + 1, count(*) FROM samples GROUP BY shard ORDER BY 1"
    ).fetchall()
    ranges = []
    for lo, hi, count in bounds:
        if hi - lo != count:  # not contiguous (a hand-made store): fall back to fixed ranges
            n = con.execute("SELECT count(*) FROM samples").fetchone()[0]
            return [(a, min(n, a + max_rows)) for a in range(0, n, max_rows)]
        ranges += [(a, min(hi, a + max_rows)) for a in range(lo, hi, max_rows)]
    return ranges


def embed_unit(
    name: str,
    root: Path | None,
    models: dict[str, Encoder | dict[str, Any]],
    lo: int,
    hi: int,
    parts: dict[str, Path],
    batch: int,
    threads: int = 1,
) -> tuple[int, dict[str, int]]:
    """Embed rows ``[lo, hi)`` for each kind in ``models`` into ``parts[kind]/<lo>.npy``
    (each committed atomically); return (rows, missing per kind).

    ``threads``: 1 where the executor parallelises across shards (a fixed thread count also
    keeps the vectors bit-identical whichever worker ran the unit); all cores when a lone
    unit runs in the caller's process."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)  # restored after: an inline unit runs in the caller
    missing = {}
    con = connect(name, root)
    try:
        for kind, model in models.items():
            vecs, missing[kind] = _embed_chunk(  # a unit with several CPUs decodes in parallel
                kind, _worker_encoder(kind, model), con, lo, hi, batch, max(0, threads - 1)
            )
            out = parts[kind]
            tmp = out / f".{lo:012d}.{os.getpid()}.tmp.npy"
            np.save(tmp, vecs.astype(np.float16))
            write_json_atomic(out / f".{lo:012d}.missing.json", {"missing": missing[kind]})
            os.replace(tmp, out / f"{lo:012d}.npy")  # the .npy is the commit: it lands last
    finally:
        con.close()
        torch.set_num_threads(before)
    return hi - lo, missing


def _parts_dirs(
    encs: dict[str, Encoder], out_dir: Path, n: int, units: int
) -> dict[str, Path]:
    """Each kind's folder of per-unit files, kept only when made by the same model for the
    same rows and units (a resumed run), else emptied."""
    parts = {kind: out_dir / f".{kind}.parts" for kind in encs}
    for kind, enc in encs.items():
        meta = {"model": enc.name, "rows": n, "dim": enc.dim, "ranges": units}
        if read_manifest(parts[kind] / "meta.json") != meta:
            shutil.rmtree(parts[kind], ignore_errors=True)
        parts[kind].mkdir(parents=True, exist_ok=True)
        write_json_atomic(parts[kind] / "meta.json", meta)
    return parts


def _commit_parts(
    kind: str, dim: int, parts: Path, ranges: list[tuple[int, int]], out_dir: Path, n: int,
    keep_shards: bool,
) -> None:  # fmt: skip
    """Make the finished units of ``kind`` its vectors: one ``<kind>.npy`` written aside and
    renamed, or (``keep_shards``) the unit files moved to ``shards/<kind>/`` as they are."""
    if keep_shards:  # keep the shards: one file of this size helps nobody
        kept = sharded_dir(out_dir, kind)
        shutil.rmtree(kept, ignore_errors=True)
        kept.parent.mkdir(parents=True, exist_ok=True)
        (out_dir / f"{kind}.npy").unlink(missing_ok=True)
        os.replace(parts, kept)
    else:
        partial = out_dir / f".{kind}.partial.npy"
        arr = np.lib.format.open_memmap(partial, "w+", np.float16, (n, dim))
        for lo, hi in ranges:
            arr[lo:hi] = np.load(parts / f"{lo:012d}.npy", mmap_mode="r")
        arr.flush()
        del arr
        os.replace(partial, out_dir / f"{kind}.npy")
        shutil.rmtree(parts, ignore_errors=True)
        shutil.rmtree(sharded_dir(out_dir, kind), ignore_errors=True)


def _embed_units(
    name: str,
    root: Path | None,
    encs: dict[str, Encoder],
    models: dict[str, Encoder | dict[str, Any]],
    con,
    n: int,
    out_dir: Path,
    batch: int,
    executor: Executor,
    progress: Progress | None,
    concat_max: int = CONCAT_MAX_ROWS,
) -> dict[str, dict[str, Any]]:
    """One unit per shard on ``executor`` (skipping committed parts), then concatenate them
    into ``<kind>.npy``, or keep them as ``shards/<kind>/<first row>.npy`` above
    ``concat_max`` rows."""
    t0 = time.perf_counter()
    root = paths.workspace() if root is None else root  # workers may have another environment
    ranges = unit_ranges(con)
    parts = _parts_dirs(encs, out_dir, n, len(ranges))
    units, done = [], {kind: n for kind in encs}
    for lo, hi in ranges:
        todo = [k for k in encs if not (parts[k] / f"{lo:012d}.npy").is_file()]
        for k in todo:
            done[k] -= hi - lo
        if todo:
            args = (name, root, {k: models[k] for k in todo}, lo, hi, parts, batch)
            units.append(Unit(f"rows {lo}-{hi}", embed_unit, args))
    threads = executor.unit_threads(len(units))
    units = [Unit(u.key, u.fn, (*u.args, threads)) for u in units]
    resumed = len(ranges) - len(units)

    def report() -> None:
        for kind in encs:
            if progress:
                progress(kind, done[kind], n)

    def finished(_key: str, result: tuple[int, dict[str, int]]) -> None:
        for kind in result[1]:
            done[kind] += result[0]
        report()

    report()
    executor.run(units, finished)
    seconds = time.perf_counter() - t0
    records = {}
    for kind, enc in encs.items():
        missing = sum(
            read_manifest(parts[kind] / f".{lo:012d}.missing.json").get("missing", 0)
            for lo, _hi in ranges
        )
        _commit_parts(kind, enc.dim, parts[kind], ranges, out_dir, n, n > concat_max)
        records[kind] = {"model": enc.name, "dim": enc.dim, "rows": n, "missing": missing,
                         "seconds": round(seconds, 3),
                         "rows_per_s": round(n / max(seconds, 1e-9), 1), "units": len(ranges),
                         "resumed_units": resumed,
                         "layout": "shards" if n > concat_max else "file"}  # fmt: skip
    return records


def load_vectors(name: str, kind: str, root: Path | None = None) -> np.ndarray:
    """The memory-mapped float16 vectors of ``kind`` (``img`` or ``text``); a
    :class:`ShardedVectors` when they are kept per shard."""
    path = embeddings_dir(name, root) / f"{kind}.npy"
    if not path.is_file() and vector_shards(name, kind, root):
        return ShardedVectors(vector_shards(name, kind, root))
    if not path.is_file():
        raise FileNotFoundError(
            f"dataset {name!r} has no {kind} embeddings: run `python -m backend embed {name}`"
        )
    return np.load(path, mmap_mode="r")
