"""A fixed 1-in-m sample of every column of a big store's rows, written by the build, from
which pages draw and estimate what would otherwise take a scan of every row.

At 10^8 rows a filtered or lassoed Map ran a scan per layer and read the caption of every
kept row for its hover text (22–37 s, past the app's 10 s query limit; docs/scaling.md), and
a caption filter's count in Browse scans every caption (7.5 s). A map of a Selection needs no
more than the ~50k points it can draw and a density grid, and a count can be shown first as an
estimate: both come from this sample in milliseconds, whatever the Selection, while exact
counts still run over all rows.

The rows kept are those with ``hash(row_id) % every = 0`` (the same rows every time, and a
superset of the Map's prepared points when their ``every`` divides it). Only stores of more than
``ROWS`` rows get one; below that the live queries are fast. It belongs to one store file (a
step that adds columns, or a rebuild, swaps in a new one), so it is written again after every
:func:`backend.columns.add_columns` and by :mod:`backend.synth`, and a stale one is ignored.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq

from backend import paths
from backend.file_cache import FileCache, store_file
from backend.manifest import write_json_atomic
from backend.store import connect

ROWS = 1_000_000  # rows kept (about): a density grid and 50k drawn points need no more
FOLDER = "rowsample"
_FILE, _RECORD = "rows.parquet", "rowsample.json"


@dataclass(frozen=True)
class RowSample:
    """Where the sample is and what it stands for."""

    table: str  # SQL for a FROM clause: a ``read_parquet`` of the sample, named ``samples``
    # (so a predicate from the SQL box that names ``samples.col`` reads the sample the same way)
    every: int  # each sampled row stands for about this many rows
    rows: int  # rows in the sample

    def scale(self, n: int) -> int:
        """An estimate of the rows over the whole store from ``n`` rows of the sample."""
        return int(n) * self.every


def sample_every(total: int, limit: int) -> int:
    """The m of ``hash(row_id) % m = 0`` that keeps about ``limit`` of ``total`` rows."""
    return max(1, math.ceil(total / max(1, limit)))


def folder(ds_dir: Path) -> Path:
    return ds_dir / FOLDER


def _store_stamp(store_file: Path) -> str:
    """The store file a sample belongs to (each build and each added column set is a new one)."""
    return store_file.resolve().name


def write(name: str, root: Path | None = None, rows: int | None = None) -> dict[str, Any] | None:
    """Write the sample of dataset ``name`` when it has more than ``rows`` (default ``ROWS``)
    rows (else remove any old one and return None); returns the record."""
    rows = ROWS if rows is None else rows
    ds_dir = paths.dataset_dir(name, root)
    out = folder(ds_dir)
    con = connect(name, root)
    try:
        total = con.execute("SELECT count(*) FROM samples").fetchall()[0][0]
        if total <= rows:
            for p in (out / _FILE, out / _RECORD):
                p.unlink(missing_ok=True)
            return None
        every = sample_every(total, rows)
        reader = con.sql(
            f"SELECT * FROM samples WHERE hash(row_id) % {int(every)} = 0 ORDER BY row_id"
        ).to_arrow_reader(100_000)
        out.mkdir(parents=True, exist_ok=True)
        tmp, kept = out / f".{_FILE}.tmp", 0
        with pq.ParquetWriter(tmp, reader.schema, compression="zstd") as w:
            for batch in reader:
                w.write_batch(batch)
                kept += batch.num_rows
    finally:
        con.close()
    tmp.replace(out / _FILE)
    record = {"store": _store_stamp(paths.store_path(name, root)), "every": every,
              "rows": kept, "total": int(total)}  # fmt: skip
    write_json_atomic(out / _RECORD, record)
    _CACHE.clear()
    return record


_CACHE: FileCache[RowSample | None] = FileCache()


def load(con: duckdb.DuckDBPyConnection) -> RowSample | None:
    """The sample of this store connection's dataset, or None when there is none or it was
    written for another store file (then the caller queries every row)."""
    store = store_file(con)
    if store is None:
        return None
    rec_path = folder(store.parent) / _RECORD
    return _CACHE.get(str(store), [rec_path], lambda: _read(store, rec_path))


def _read(store: Path, rec_path: Path) -> RowSample | None:
    try:
        rec = json.loads(rec_path.read_text())
        data = folder(store.parent) / _FILE
        if rec.get("store") != _store_stamp(store) or not data.is_file():
            return None
        return RowSample(_read_parquet(data), int(rec["every"]), int(rec["rows"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _read_parquet(path: Path) -> str:
    text = str(path.resolve()).replace("'", "''")
    return f"read_parquet('{text}') AS samples"
