"""A downloaded pool joined back to its metadata by ``uid``: img2dataset's WebDataset output of
a DataComp/CommonPool (or any pool) shard keeps each row's ``uid`` in its json sidecar, while
the scores the pool shipped stay in the metadata parquet. After ``build``, this adds the
metadata's columns to the rows whose ``uid`` matches, mapped by the metadata's profile to the
canonical scores (``clip_similarity``, ``faces`` …) with their provenance, exactly as a
metadata table read directly would be. Rows of the metadata that were never downloaded are
counted, not invented.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from backend import paths, profiles
from backend.columns import RESERVED, add_columns
from backend.manifest import read_manifest, write_json_atomic
from backend.selection import quote_ident
from backend.sources.base import SourceError
from backend.store import connect

UID = "uid"


def _files(metadata: Path) -> list[Path]:
    files = [metadata] if metadata.is_file() else sorted(metadata.rglob("*.parquet"))
    if not files:
        raise SourceError(f"{metadata} holds no .parquet metadata to join")
    return files


def _canonical_sql(f: profiles.Field) -> str:
    """The SQL that makes a canonical score from the metadata column (boxes counted)."""
    col = f"m.{quote_ident(f.column)}"
    return f"len({col})" if f.transform == "count" else col


def _store_uids(name: str, root: Path | None, ours: set[str]) -> tuple[dict[str, str], pa.Table]:
    """The store's columns (lowercased -> as named) less ``ours``, an earlier join's, and each
    row's uid as text; a :class:`SourceError` when the store has no uid column."""
    con = connect(name, root)
    try:
        have = {r[0].lower(): r[0] for r in con.execute("DESCRIBE samples").fetchall()
                if r[0].lower() not in ours}  # fmt: skip
        if UID not in have:
            raise SourceError(f"dataset {name!r} has no uid column: img2dataset writes it to the "
                              "json sidecars when the pool's uid column is saved")  # fmt: skip
        ids = con.sql(f"SELECT row_id, {quote_ident(have[UID])}::VARCHAR AS _uid "
                          "FROM samples").to_arrow_table()  # fmt: skip
    finally:
        con.close()
    return have, ids


def join_metadata(name: str, metadata: str | Path, root: Path | None = None,
                  profile: str | None = None,
                  mapping: dict[str, str] | None = None) -> dict[str, Any]:  # fmt: skip
    """Add ``metadata``'s columns (a parquet file or folder) to dataset ``name`` by ``uid``;
    return and record what was joined (profile, matched rows, metadata rows not downloaded)."""
    files = _files(Path(metadata).expanduser().resolve())
    names = pq.read_schema(files[0]).names
    try:
        res = profiles.resolve(names, profile, mapping, where=files[0].name)
    except ValueError as e:
        raise SourceError(str(e)) from None
    key = res.column("uid") or UID
    if key not in names:
        raise SourceError(f"{files[0].name} has no {key!r} column to join on "
                          f"(its columns: {', '.join(names)})")  # fmt: skip
    before = read_manifest(paths.manifest_path(name, root)).get("profile") or {}
    ours = {c.lower() for c in before.get("joined_columns", ())}  # an earlier join's: replaced
    have, ids = _store_uids(name, root, ours)
    meta = pa.concat_tables(pq.read_table(f) for f in files)
    scores = [f for f in res.fields if f.is_score]
    taken = set(have) | {f.canonical.lower() for f in scores}
    keep = [c for c in meta.column_names if c != key]
    outs = {c: (f"meta_{c}" if c.lower() in taken or c.lower() in RESERVED else c) for c in keep}
    select = [f"m.{quote_ident(c)} AS {quote_ident(o)}" for c, o in outs.items()]
    select += [f"{_canonical_sql(f)} AS {quote_ident(f.canonical)}" for f in scores]
    mem = duckdb.connect()
    try:
        mem.register("ids", ids)
        mem.register("m", meta)
        table = mem.sql(
            f"SELECT ids.row_id, {', '.join(select)} FROM ids "
            f"JOIN m ON ids._uid = m.{quote_ident(key)}::VARCHAR ORDER BY ids.row_id"
        ).to_arrow_table()
        missing = mem.execute(
            f"SELECT count(*) FROM m ANTI JOIN ids ON ids._uid = m.{quote_ident(key)}::VARCHAR"
        ).fetchone()[0]
    finally:
        mem.close()
    if table.num_rows == 0:
        raise SourceError(f"no row of {name!r} has a uid found in {files[0].name}: nothing joined")
    add_columns(name, table, root)
    record = {**res.record(), "joined_from": [str(f) for f in files], "joined_on": key,
              "matched_rows": table.num_rows, "rows": ids.num_rows,
              "metadata_rows": meta.num_rows,
              "metadata_rows_not_downloaded": int(missing),
              "joined_columns": [c for c in table.column_names if c != "row_id"]}  # fmt: skip
    path = paths.manifest_path(name, root)
    manifest = read_manifest(path)
    manifest["profile"] = record
    write_json_atomic(path, manifest)
    return record
