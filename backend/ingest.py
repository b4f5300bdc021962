"""Build a dataset's store from a source: read each shard aside, then assemble and swap.

Each shard's output is committed atomically under ``<dataset>/.staging`` so an interrupted
build resumes where it stopped; the finished store replaces the previous one only at the end,
so a failed build never damages a good one.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from backend import paths
from backend.embedding_sets import source_dict
from backend.executor import Executor, Unit
from backend.images import BadImage, probe
from backend.ingest_assemble import _assemble, _finish
from backend.manifest import now, read_manifest, step_record, write_json_atomic
from backend.sources import Reject, Sample, Shard, SourceError, columnar, detect_format, reader_for
from backend.sources.common import CORE_SCHEMA

REJECT_SCHEMA = pa.schema(
    [("key", pa.string()), ("shard", pa.string()), ("reason", pa.string()), ("detail", pa.string())]
)

Progress = Callable[[int, int, int], None]  # (shards done, shards total, rows read so far)


@dataclass
class BuildResult:
    name: str
    rows: int
    rejects: int
    shards: int
    resumed_shards: int
    seconds: float
    reasons: dict[str, int]


def _column(values: list) -> pa.Array:
    """A typed arrow column; mixed types fall back to text rather than failing the shard."""
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        return pa.array([None if v is None else str(v) for v in values], pa.string())


def _samples_table(rows: list[Sample], shard: Shard, shard_idx: int) -> pa.Table:
    core = {name: [] for name in CORE_SCHEMA.names}
    extra_names: list[str] = []
    for r in rows:
        for k in r.extra:
            if k not in core and k not in extra_names:
                extra_names.append(k)
    extras: dict[str, list] = {k: [] for k in extra_names}
    for seq, r in enumerate(rows):
        for name in CORE_SCHEMA.names:
            if name == "shard":
                core[name].append(shard.name)
            elif name == "shard_idx":
                core[name].append(shard_idx)
            elif name == "seq":
                core[name].append(seq)
            else:
                core[name].append(getattr(r, name, None))
        for k in extra_names:
            extras[k].append(r.extra.get(k))
    table = pa.table(core, schema=CORE_SCHEMA)
    for k in extra_names:
        table = table.append_column(k, _column(extras[k]))
    return table


def _validate(sample: Sample) -> Sample | Reject:
    """Decode the image once: measure it, hash it, or turn it into a reject with a reason."""
    if sample.image is None:
        return sample
    try:
        info = probe(sample.image)
    except BadImage as e:
        return Reject(sample.key, e.reason, e.detail)
    sample.width, sample.height = info.width, info.height
    sample.format, sample.file_size, sample.sha256 = info.format, info.file_size, info.sha256
    sample.image = None
    return sample


def _write_parquet(table: pa.Table, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)


def _add_domains(rows: list[Sample]) -> None:
    """``domain`` and ``tld`` of every row's URL (a source's own ``domain``/``tld`` columns
    are kept as ``src_domain``/``src_tld``); nothing when no row has a URL."""
    if not any(r.url for r in rows):
        return
    from backend.domains import domain_tld

    for r in rows:
        for name in ("domain", "tld"):
            if name in r.extra:
                r.extra[f"src_{name}"] = r.extra.pop(name)
        r.extra["domain"], r.extra["tld"] = domain_tld(r.url)


def ingest_shard(
    fmt: str, shard: Shard, shard_idx: int, out_dir: Path, options: dict | None = None
) -> tuple[int, int]:
    """Read one shard into ``out_dir``: samples, rejects and given vectors, then a done marker.

    Pure with respect to the store: a function of the shard's files, safe to rerun anywhere.
    ``options``: the reader's (a forced profile, columns mapped by hand).
    """
    reader = reader_for(fmt, options)
    fast = columnar.read(reader, shard, shard_idx) if columnar.wanted(reader) else None
    if fast is not None:  # a URL-only parquet shard: column at a time, the same table
        table, rejects, vec_rows = fast
    else:
        kept: list[Sample] = []
        rejects: list[Reject] = []
        vec_rows: list[int] = []  # each kept row's index in the shard's shipped vectors
        for item in reader.read(shard):
            if isinstance(item, Sample):
                item = _validate(item)
            if isinstance(item, Reject):
                rejects.append(item)
                continue
            if shard.vectors:
                vec_rows.append(item.vec_row)
            kept.append(item)
        _add_domains(kept)
        table = _samples_table(kept, shard, shard_idx)
    stem = f"{shard_idx:05d}"
    _write_parquet(table, out_dir / f"{stem}.samples.parquet")
    rej = pa.table(
        {
            "key": [r.key for r in rejects],
            "shard": [shard.name] * len(rejects),
            "reason": [r.reason for r in rejects],
            "detail": [r.detail for r in rejects],
        },
        schema=REJECT_SCHEMA,
    )
    _write_parquet(rej, out_dir / f"{stem}.rejects.parquet")
    if shard.vectors:  # the vectors stay where the source has them until assembly
        tmp = out_dir / f"{stem}.vecrows.tmp.npy"
        np.save(tmp, np.asarray(vec_rows, dtype=np.int64))
        os.replace(tmp, out_dir / f"{stem}.vecrows.npy")
    done = {
        "shard": shard.name,
        "fingerprint": shard.fingerprint,
        "rows": table.num_rows,
        "rejects": len(rejects),
        "vector_sets": [source_dict(v) for v in shard.vectors] if table.num_rows else [],
    }
    write_json_atomic(out_dir / f"{stem}.done.json", done)
    return table.num_rows, len(rejects)


def _pending(shards: list[Shard], out_dir: Path) -> list[int]:
    todo = []
    for i, shard in enumerate(shards):
        done = read_manifest(out_dir / f"{i:05d}.done.json")
        if done.get("fingerprint") != shard.fingerprint or done.get("shard") != shard.name:
            todo.append(i)
    return todo


def _prepare_staging(staging: Path, source: Path, fmt: str, options: dict | None = None) -> Path:
    """Reuse the staging folder of an interrupted build of the same source, else start clean."""
    state = {"source": str(source), "format": fmt}
    if options:  # another profile or mapping makes other rows: start clean
        state["options"] = options
    shards_dir = staging / "shards"
    if read_manifest(staging / "state.json") != state:
        shutil.rmtree(staging, ignore_errors=True)
    shards_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(staging / "state.json", state)
    return shards_dir


def build(
    name: str,
    source: str | Path,
    fmt: str = "auto",
    root: Path | None = None,
    workers: int | None = None,
    progress: Progress | None = None,
    executor: Executor | None = None,
    profile: str | None = None,
    mapping: dict[str, str] | None = None,
    keep_precision: bool = False,
    embedding_model: str | None = None,
) -> BuildResult:
    """Ingest ``source`` as dataset ``name``; resumable; swaps the result in at the end.

    Shards are read by ``executor`` (default: a local process pool of ``workers``).
    ``profile`` forces a known pool's profile (default: detected from a table's schema) and
    ``mapping`` maps canonical names to columns by hand (see :mod:`backend.profiles`)."""
    started, t0 = now(), time.perf_counter()
    paths.check_name(name)
    src = Path(source).expanduser().resolve()
    fmt = detect_format(src) if fmt == "auto" else fmt
    options = {k: v for k, v in {"profile": profile, "mapping": mapping}.items() if v} or None
    reader = reader_for(fmt, options)
    if not src.exists():
        raise SourceError(f"source {src} does not exist")
    shards = reader.shards(src)
    if not shards:
        raise SourceError(f"{src} holds no {fmt} shards: nothing to ingest")
    ds_dir = paths.dataset_dir(name, root)
    staging = paths.staging_dir(name, root)
    shards_dir = _prepare_staging(staging, src, fmt, options)
    pool = _profile_record(shards, options)
    todo = _pending(shards, shards_dir)
    resumed = len(shards) - len(todo)
    ex = executor or Executor("local", workers=workers, preload=("backend.ingest",))
    _read_shards(ex, fmt, shards, todo, shards_dir, options, progress)
    vec_opts = {"keep_precision": keep_precision, "model": embedding_model}
    counts = _assemble(name, ds_dir, staging, shards_dir, len(shards), vec_opts)
    seconds = time.perf_counter() - t0
    record = step_record(
        {"source": str(src), "format": fmt, "executor": ex.describe(), **(options or {})},
        started,
        seconds,
        rows=counts["rows"],
        rejects=counts["rejects"],
        shards=len(shards),
        resumed_shards=resumed,
        reasons=counts["reasons"],
    )
    counts["profile"] = pool
    _finish(name, ds_dir, staging, src, fmt, record, counts)
    return BuildResult(
        name, counts["rows"], counts["rejects"], len(shards), resumed, seconds, counts["reasons"]
    )


def _read_shards(
    ex: Executor, fmt: str, shards: list[Shard], todo: list[int], shards_dir: Path,
    options: dict | None, progress: Progress | None,
) -> None:  # fmt: skip
    """Read the shards not yet committed in staging, one unit each on ``ex``, reporting
    (shards done, shards, rows read) as each finishes."""
    rows_read = 0
    done = len(shards) - len(todo)
    if progress:
        progress(done, len(shards), rows_read)
    units = [
        Unit(f"{i}:{shards[i].name}", ingest_shard, (fmt, shards[i], i, shards_dir, options))
        for i in todo
    ]

    def finished(_key: str, result: tuple[int, int]) -> None:
        nonlocal rows_read, done
        rows_read += result[0] + result[1]
        done += 1
        if progress:
            progress(done, len(shards), rows_read)

    ex.run(units, finished)


def _profile_record(shards: list[Shard], options: dict | None) -> dict | None:
    """The known pool the first table shard belongs to, with its mapped fields (recorded in
    the manifest); None for sources that are not tables."""
    from backend.sources.table import TABLE_EXTS, TableSource

    first = next((p for s in shards for p in s.paths if p.suffix.lower() in TABLE_EXTS), None)
    if first is None:
        return None
    return TableSource(**(options or {})).resolve(first).record()
