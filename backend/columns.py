"""Derived per-row columns (map coordinates, clusters, scores, concepts) joined into the store.

Steps after ingest compute one value per row and want it queryable like any other column, by
every filter, sort and export. A parquet-backed store (``samples`` a view over shards) gets
per-shard column files joined into the view (:mod:`backend.column_files`), never a copy of
its rows. Otherwise the store is never modified in place: a new store file is
written with ``samples`` = the current rows plus the new columns (replacing same-named ones),
then swapped in exactly as a build is, so a failed step leaves the current store untouched and
a running app sees the new columns on its next connect. A lock keeps two steps from racing.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pyarrow as pa

from backend import paths
from backend.selection import quote_ident
from backend.store import StoreMissing, connect, parquet_parts, swap_in

RESERVED = ("row_id", "key", "caption", "url", "shard", "storage", "path", "byte_offset",
            "byte_size", "src_row")  # fmt: skip


class BadColumns(ValueError):
    """New columns that would clobber a core column, or rows that are not the store's rows."""


@contextmanager
def store_lock(name: str, root: Path | None = None) -> Iterator[None]:
    """Serialise store rewrites of one dataset (across processes)."""
    ds_dir = paths.dataset_dir(name, root)
    ds_dir.mkdir(parents=True, exist_ok=True)
    with open(ds_dir / ".store.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _new_columns(table: pa.Table) -> list[str]:
    """The columns ``table`` adds, or :class:`BadColumns` when it has no ``row_id``, nothing
    to add, or would replace a core column."""
    if "row_id" not in table.column_names:
        raise BadColumns("the new columns need a row_id column to join on")
    new_cols = [c for c in table.column_names if c != "row_id"]
    if not new_cols:
        raise BadColumns("no columns to add")
    clash = [c for c in new_cols if c.lower() in RESERVED]
    if clash:
        raise BadColumns(f"cannot replace core column(s) {', '.join(clash)}")
    return new_cols


def _check_row_ids(con: duckdb.DuckDBPyConnection, n_rows: int) -> None:
    """Refuse ``added`` (registered on ``con``) when a row id is outside the store or repeated."""
    stray = con.execute(
        "SELECT count(*) FROM added WHERE row_id IS NULL OR row_id < 0 OR row_id >= ?",
        [n_rows],
    ).fetchall()[0][0]
    dupes = con.execute(
        "SELECT count(*) - count(DISTINCT row_id) FROM added"
    ).fetchall()[0][0]
    if stray or dupes:
        raise BadColumns(
            f"{stray} row id(s) outside the store's 0..{n_rows - 1} and {dupes} repeated"
        )


def add_columns(name: str, table: pa.Table, root: Path | None = None) -> list[str]:
    """Join ``table`` (``row_id`` + new columns) into dataset ``name``'s store; return the
    column names added. Rows missing from ``table`` get NULL; extra row ids are refused."""
    new_cols = _new_columns(table)
    if not paths.store_path(name, root).is_file():
        raise StoreMissing(f"dataset {name!r} is not built")
    ds_dir = paths.dataset_dir(name, root)
    tmp = ds_dir / f".columns-{os.getpid()}.duckdb"
    if parquet_parts(name, root):
        with store_lock(name, root):
            _add_column_files(name, table, root, ds_dir, tmp)
        _refresh_row_sample(name, root)
        return new_cols
    with store_lock(name, root):
        for stale in ds_dir.glob(".columns-*.duckdb*"):  # a killed rewrite's copy (and WAL):
            stale.unlink(missing_ok=True)  # no live one can exist while we hold the lock
        old = connect(name, root)
        new = duckdb.connect(str(tmp))
        try:
            have = [r[0] for r in old.execute("DESCRIBE samples").fetchall()]
            lowered = {c.lower() for c in new_cols}
            keep = [c for c in have if c.lower() not in lowered]
            n_rows = old.execute("SELECT count(*) FROM samples").fetchall()[0][0]
            new.register("added", table)
            _check_row_ids(new, n_rows)
            _copy_small_tables(old, new)
            reader = old.cursor().sql(
                f"SELECT {', '.join(quote_ident(c) for c in keep)} FROM samples ORDER BY row_id"
            ).to_arrow_reader(100_000)
            new.register("cur", reader)
            added = ", ".join(f"a.{quote_ident(c)}" for c in new_cols)
            cur = ", ".join(f"c.{quote_ident(c)}" for c in keep)
            new.execute(
                f"CREATE TABLE samples AS SELECT {cur}, {added} FROM cur c "
                "LEFT JOIN added a USING (row_id) ORDER BY c.row_id"
            )
            new.execute("CHECKPOINT")
        except BaseException:
            new.close()
            tmp.unlink(missing_ok=True)
            raise
        finally:
            old.close()
        new.close()
        swap_in(tmp, ds_dir)
    _refresh_row_sample(name, root)
    return new_cols


def _refresh_row_sample(name: str, root: Path | None) -> None:
    """The new store file needs its own row sample (:mod:`backend.row_sample`); a failure
    leaves the old one, which no longer matches and is ignored (pages then query every row)."""
    from backend import row_sample

    try:
        row_sample.write(name, root)
    except (duckdb.Error, OSError):
        pass


def _copy_small_tables(old: duckdb.DuckDBPyConnection, new: duckdb.DuckDBPyConnection) -> None:
    for tname in ("rejects", "build_manifest"):
        small = old.sql(f"SELECT * FROM {tname}").to_arrow_table()
        new.register("src", small)
        new.execute(f"CREATE TABLE {tname} AS SELECT * FROM src")
        new.unregister("src")


def _add_column_files(name: str, table: pa.Table, root: Path | None, ds_dir: Path,
                      tmp: Path) -> None:  # fmt: skip
    """The parquet-backed path: one column file per shard, then a new store whose ``samples``
    view joins them (swapped in like any store), then the set list; nothing copies the rows."""
    from backend import column_files as cf

    parts = parquet_parts(name, root)
    try:
        new_set = cf.write_set(name, root, parts, table)
    except cf.StrayRows as e:
        raise BadColumns(str(e)) from None
    sets = cf.merged_sets(cf.read_sets(name, root), new_set)
    tmp.unlink(missing_ok=True)
    old = connect(name, root)
    new = duckdb.connect(str(tmp))
    try:
        _copy_small_tables(old, new)
        cf.create_view(new, name, root, parts, sets)
        new.execute("CHECKPOINT")
    except BaseException:
        new.close()
        tmp.unlink(missing_ok=True)
        cf.drop(cf.folder(name, root) / new_set["set"])
        raise
    finally:
        old.close()
    new.close()
    swap_in(tmp, ds_dir)
    cf.commit(name, root, sets)
