"""Building the keyword index from a dataset's store (what ``python -m backend index`` runs).

Captions are read in ``row_id`` chunks into a fresh folder that becomes visible only through
the final link swap (:mod:`backend.keyword_files`), so a failed build leaves the last index.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import duckdb
import tantivy

from backend import paths
from backend.keyword import index_dir
from backend.keyword_files import _du, _fsync_dir, _remove_stale, _swap_link
from backend.keyword_schema import FORMAT, ROW_FIELD, TEXT_FIELD, _pick_tokenizer, _schema

READ_SQL = "SELECT row_id, caption FROM samples WHERE row_id >= ? AND row_id < ? ORDER BY row_id"

Progress = Callable[[int, int], None]  # (rows indexed so far, rows in total)


def _fingerprint(con: duckdb.DuckDBPyConnection) -> str | None:
    from backend.build_id import fingerprint_of

    try:
        return fingerprint_of(con)
    except duckdb.Error:  # a bare table without our build_manifest (tests, benches)
        return None


def build_index(
    con: duckdb.DuckDBPyConnection,
    out_dir: Path,
    progress: Progress | None = None,
    heap_mb: int = 256,
    *,
    chunk_rows: int = 100_000,
    commit_rows: int = 2_000_000,
) -> dict:
    """Index every caption of ``samples`` into ``out_dir``; return the stats (also in meta.json).

    Captions are read in ``row_id`` chunks so memory stays flat at any table size; the writer's
    arena is ``heap_mb`` in total (tantivy flushes a segment whenever a thread's share fills) and
    we commit every ``commit_rows`` rows. One indexing thread per core, up to 8. All of it goes
    into a fresh folder that only becomes visible through the final link swap.
    """
    out_dir = Path(out_dir).absolute()
    threads = max(1, min(os.cpu_count() or 1, 8, heap_mb // 16))
    if heap_mb < 16:
        raise ValueError(f"heap_mb={heap_mb} is too small: tantivy needs at least 16 MB")
    parent = out_dir.parent
    parent.mkdir(parents=True, exist_ok=True)
    _remove_stale(out_dir)
    tmp = parent / f".{out_dir.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}"
    tmp.mkdir()
    store = _fingerprint(con)  # the build this index is made from
    try:
        stats = _write(con, tmp, progress, heap_mb, threads, chunk_rows, commit_rows, store)
        final = parent / f".{out_dir.name}.{time.strftime('%Y%m%dT%H%M%S')}-{secrets.token_hex(4)}"
        os.rename(tmp, final)
        _fsync_dir(parent)
        try:
            _swap_link(out_dir, final)
        except BaseException:
            shutil.rmtree(final, ignore_errors=True)
            raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return stats


def _write(
    con: duckdb.DuckDBPyConnection,
    folder: Path,
    progress: Progress | None,
    heap_mb: int,
    threads: int,
    chunk_rows: int,
    commit_rows: int,
    store: str | None = None,
) -> dict:
    t0 = time.perf_counter()
    total, lo, hi = con.execute("SELECT count(*), min(row_id), max(row_id) FROM samples").fetchone()
    tokenizer = _pick_tokenizer()
    (folder / "tantivy").mkdir()
    index = tantivy.Index(_schema(tokenizer), path=str(folder / "tantivy"), reuse=False)
    heap = min(heap_mb, 4000 * threads) * 1_000_000  # tantivy: 15 MB..4 GB per thread
    writer = index.writer(heap_size=heap, num_threads=threads)
    done = 0
    try:
        if total:
            done = _add_rows(con, writer, lo, hi, total, chunk_rows, commit_rows, progress)
        writer.commit()
        writer.wait_merging_threads()  # consumes the writer: merges finish, lock released
    except BaseException:
        try:
            writer.rollback()
        except BaseException:  # noqa: BLE001 - already failing; the folder is deleted anyway
            pass
        raise
    del writer
    index.reload()
    searcher = index.searcher()
    if searcher.num_docs != done:
        raise RuntimeError(f"keyword index holds {searcher.num_docs} docs, expected {done}")
    stats = {
        "format": FORMAT,
        "docs": done,
        "seconds": round(time.perf_counter() - t0, 3),
        "size_bytes": _du(folder / "tantivy"),
        "segments": searcher.num_segments,
        "tokenizer": tokenizer,
        "threads": threads,
        "heap_mb": heap_mb,
        "tantivy": getattr(tantivy, "__version__", "?"),
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "store_build": store,
    }
    _write_meta(folder / "meta.json", stats)
    return stats


def _add_rows(
    con: duckdb.DuckDBPyConnection, writer: tantivy.IndexWriter, lo: int, hi: int, total: int,
    chunk_rows: int, commit_rows: int, progress: Progress | None,
) -> int:  # fmt: skip
    """Add every row of ``samples`` (its caption, when it has one) in ``row_id`` chunks,
    committing every ``commit_rows`` rows; return how many were added."""
    done = since_commit = 0
    doc_cls = tantivy.Document
    for start in range(lo, hi + 1, chunk_rows):
        rows = con.execute(READ_SQL, [start, start + chunk_rows]).fetchall()
        for row_id, caption in rows:
            doc = doc_cls()
            doc.add_integer(ROW_FIELD, row_id)
            if caption:
                doc.add_text(TEXT_FIELD, caption)
            writer.add_document(doc)
        done += len(rows)
        since_commit += len(rows)
        if since_commit >= commit_rows:
            writer.commit()
            since_commit = 0
        if progress:
            progress(done, total)
    return done


def _write_meta(path: Path, stats: dict) -> None:
    """meta.json, flushed to disk before the folder is renamed into place."""
    with open(path, "w", encoding="utf-8") as f:
        json.dump(stats, f, indent=2)
        f.flush()
        os.fsync(f.fileno())


def build_dataset(
    name: str,
    root: Path | None = None,
    progress: Progress | None = None,
    heap_mb: int = 256,
    duckdb_mb: int = 256,
) -> dict:
    """Build the keyword index of dataset ``name`` from its store (what ``index NAME`` runs).

    The store is opened read-only with a ``duckdb_mb`` memory limit: a scan of every caption
    otherwise fills DuckDB's block cache (~0.9 GB more at 10^7 rows, growing with the table).
    """
    from backend.store import connect, parquet_parts

    connect(name, root).close()  # raises StoreMissing with the build command when absent
    if parquet_parts(name, root):  # samples is a view over parquet: the allowed-files connection
        con = connect(name, root)
        try:
            con.execute(f"SET memory_limit = '{int(duckdb_mb)}MB'")
        except duckdb.Error:  # configuration locked: keep the default limit
            pass
        try:
            return build_index(con, index_dir(name, root), progress=progress, heap_mb=heap_mb)
        finally:
            con.close()
    try:
        con = duckdb.connect(
            str(paths.store_path(name, root).resolve()),
            read_only=True,
            config={
                "memory_limit": f"{duckdb_mb}MB",
                "enable_external_access": False,
                "autoload_known_extensions": False,
                "autoinstall_known_extensions": False,
            },
        )
    except duckdb.Error:  # already open in this process with other settings: share those
        con = connect(name, root)
    try:
        return build_index(con, index_dir(name, root), progress=progress, heap_mb=heap_mb)
    finally:
        con.close()
