"""Table-shaped exports written batch by batch: parquet, JSON lines, CSV and img2dataset url
lists. Each writer takes record batches and a file path; none holds more than one batch."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

Tick = Callable[[int], None]  # rows just written


def write_parquet(batches: Iterable[pa.RecordBatch], schema: pa.Schema, path: Path,
                  tick: Tick) -> int:  # fmt: skip
    """One parquet file (zstd), row groups as the batches come."""
    n = 0
    with pq.ParquetWriter(path, schema, compression="zstd") as w:
        for b in batches:
            w.write_batch(b)
            n += b.num_rows
            tick(b.num_rows)
    return n


def _plain(schema: pa.Schema) -> pa.Schema:
    """CSV cannot hold nested values: lists, structs and maps become JSON text."""
    return pa.schema(
        [pa.field(f.name, pa.string()) if pa.types.is_nested(f.type) else f for f in schema]
    )


def _flatten(b: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    arrays = []
    for col in b.columns:
        if pa.types.is_nested(col.type):
            col = pa.array([None if v is None else json.dumps(v, default=str)
                            for v in col.to_pylist()], pa.string())  # fmt: skip
        arrays.append(col)
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def write_csv(batches: Iterable[pa.RecordBatch], schema: pa.Schema, path: Path,
              tick: Tick) -> int:  # fmt: skip
    """One CSV file with a header row; nested values as JSON text."""
    flat = _plain(schema)
    n = 0
    with pcsv.CSVWriter(path, flat) as w:
        for b in batches:
            w.write_batch(_flatten(b, flat))
            n += b.num_rows
            tick(b.num_rows)
    return n


def write_jsonl(batches: Iterable[pa.RecordBatch], schema: pa.Schema, path: Path,
                tick: Tick) -> int:  # fmt: skip
    """One JSON object per line, UTF-8, keys in column order; non-JSON scalars as text."""
    n = 0
    with path.open("w", encoding="utf-8") as f:
        for b in batches:
            f.writelines(json.dumps(r, ensure_ascii=False, default=str) + "\n"
                         for r in b.to_pylist())  # fmt: skip
            n += b.num_rows
            tick(b.num_rows)
    return n


URL_SCHEMA = pa.schema([("url", pa.string()), ("caption", pa.string())])


def write_urls(batches: Iterable[pa.RecordBatch], schema: pa.Schema, path: Path,
               tick: Tick) -> int:  # fmt: skip
    """``url, caption`` parquet, as img2dataset reads with ``--input_format parquet
    --url_col url --caption_col caption``."""
    return write_parquet(
        (b.select(["url", "caption"]).cast(URL_SCHEMA) for b in batches), URL_SCHEMA, path, tick
    )
