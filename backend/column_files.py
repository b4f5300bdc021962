"""Derived columns of a parquet-backed store, written per shard beside the shards.

At 10^7-10^8 rows ``samples`` is a view over ``parts/*.parquet`` (:mod:`backend.synth`).
Rewriting every shard (or copying all rows into a DuckDB table) to add a score or the map
coordinates would cost the whole table's bytes and time for a few narrow columns. Instead a
step's columns go to ``colsets/<set>/<part>.parquet``: one file per shard, holding exactly that
shard's rows in the shard's own order (NULL where the step gave no value), and the view joins
them back by position, shard by shard (``POSITIONAL JOIN``: no hash table, no row ids kept in
memory). ``colsets/sets.json`` lists the sets and which of their columns are current; a later
step that recomputes a column takes it over, and a set left with none is deleted.

Measured at 10^7 rows (bench/scale_app.py, docs/scaling.md): counts, filters and group-bys on
the joined view cost about what they cost on the shards alone; lookups by ``row_id`` and pages
in row order lose the shards' zone-map pruning across the join (DuckDB pushes no filter through
a ``POSITIONAL JOIN``). So the store also gets what :mod:`backend.rowfetch` needs to fetch such
rows by position instead: ``samples_base_at`` (the shards alone, less the columns sets took
over), ``samples_at`` (``samples``), both with each row's shard number and position in it, and
``samples_files`` (which file of which shard holds which columns).
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import time
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from backend import paths

FOLDER = "colsets"
INDEX = "sets.json"


class StrayRows(ValueError):
    """Row ids that no shard holds, or that repeat."""


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _lit(path: str) -> str:
    return "'" + path.replace("'", "''") + "'"


def folder(name: str, root: Path | None = None) -> Path:
    return paths.dataset_dir(name, root) / FOLDER


def read_sets(name: str, root: Path | None = None) -> list[dict[str, Any]]:
    """The column sets in the order they were added: ``[{"set", "columns"}]``."""
    f = folder(name, root) / INDEX
    if not f.is_file():
        return []
    return json.loads(f.read_text())


def set_files(name: str, root: Path | None, sets: list[dict[str, Any]],
              parts: list[str]) -> dict[str, list[str]]:  # fmt: skip
    """Each set's files, one per part, in the parts' order (absolute paths)."""
    base = folder(name, root).resolve()
    return {s["set"]: [str(base / s["set"] / Path(p).name) for p in parts] for s in sets}


def all_files(name: str, root: Path | None = None) -> list[str]:
    """Every committed column file on disk (what the app's connection may open): a superset of
    what the current view reads, so a store swapped in just before ``sets.json`` still opens."""
    base = folder(name, root)
    if not base.is_dir():
        return []
    return sorted(str(f.resolve()) for f in base.glob("s*/*.parquet"))


def view_sql(parts: list[str], part_columns: list[str], sets: list[dict[str, Any]],
             files: dict[str, list[str]], positions: bool = False) -> str:  # fmt: skip
    """``samples`` as a UNION ALL over the shards of each shard positionally joined with its
    column files; a column a set took over is left out of the shard (``EXCLUDE``).
    ``positions`` adds ``_part`` (the shard's number) and ``_pos`` (the row's place in it)."""
    taken = {c.lower() for s in sets for c in s["columns"]}
    excluded = [_q(c) for c in part_columns if c.lower() in taken]
    excluded += ["file_row_number"] if positions else []
    head = "p.*" + (f" EXCLUDE ({', '.join(excluded)})" if excluded else "")
    cols = [f"s{j}.{_q(c)}" for j, s in enumerate(sets) for c in s["columns"]]
    opts = ", file_row_number = true" if positions else ""
    branches = []
    for i, part in enumerate(parts):
        joins = "".join(f" POSITIONAL JOIN read_parquet({_lit(files[s['set']][i])}) s{j}"
                        for j, s in enumerate(sets))  # fmt: skip
        at = [f"{i} AS _part", "p.file_row_number AS _pos"] if positions else []
        select = ", ".join([head, *cols, *at])
        branches.append(f"SELECT {select} FROM read_parquet({_lit(part)}{opts}) p{joins}")
    return "\n UNION ALL ".join(branches)


def base_sql(parts: list[str], part_columns: list[str], sets: list[dict[str, Any]]) -> str:
    """The shards alone, less the columns sets took over, with each row's file (``_file``) and
    place in it (``_pos``): one ``read_parquet`` over the list, not a UNION ALL, because DuckDB
    reads a top-N's wide columns late (and prunes by row id) only on a single scan (at 10^7: a
    page in 36-62 ms, against 250-530 ms over a UNION ALL of the same shards)."""
    taken = {c.lower() for s in sets for c in s["columns"]}
    excluded = [_q(c) for c in part_columns if c.lower() in taken]
    files = "[" + ", ".join(_lit(p) for p in parts) + "]"
    return (f"SELECT * EXCLUDE ({', '.join([*excluded, 'file_row_number'])}), "
            "file_row_number AS _pos "
            f"FROM read_parquet({files}, file_row_number = true, filename = '_file')")  # fmt: skip


def write_set(name: str, root: Path | None, parts: list[str], table: pa.Table) -> dict[str, Any]:
    """Write ``table`` (``row_id`` + columns) as one new set, a file per shard; returns the set
    record. Refuses row ids that no shard holds or that repeat, before anything is kept."""
    new_cols = [c for c in table.column_names if c != "row_id"]
    ids = table["row_id"].combine_chunks()
    if ids.null_count or len(pc.unique(ids)) != len(ids):
        raise StrayRows(f"{ids.null_count} empty and {len(ids) - len(pc.unique(ids))} repeated "
                        "row id(s) in the new columns")  # fmt: skip
    set_name = f"s{time.time_ns()}"
    out = folder(name, root) / set_name
    out.mkdir(parents=True)
    matched = 0
    try:
        for part in parts:
            rid = pq.read_table(part, columns=["row_id"])["row_id"].combine_chunks()
            pos = pc.index_in(rid, value_set=ids)
            matched += len(rid) - pos.null_count
            shard = table.select(new_cols).take(pos)  # NULL where the step has no value
            tmp = out / f".{Path(part).name}.tmp"
            pq.write_table(shard, tmp, compression="zstd")
            os.replace(tmp, out / Path(part).name)
        if matched != len(ids):
            raise StrayRows(f"{len(ids) - matched} row id(s) that no shard of the store holds")
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)
        raise
    for f in out.iterdir():
        f.chmod(0o444)  # read-only like the shards: the app's allowed paths are writable to DuckDB
    out.chmod(0o555)
    return {"set": set_name, "columns": new_cols}


def merged_sets(old: list[dict[str, Any]], new: dict[str, Any]) -> list[dict[str, Any]]:
    """The sets after ``new`` is added: its columns taken out of older sets, empty ones dropped."""
    lowered = {c.lower() for c in new["columns"]}
    kept = []
    for s in old:
        cols = [c for c in s["columns"] if c.lower() not in lowered]
        if cols:
            kept.append({"set": s["set"], "columns": cols})
    return [*kept, new]


def commit(name: str, root: Path | None, sets: list[dict[str, Any]]) -> None:
    """Record ``sets`` as current, then delete the folders of sets no longer listed."""
    base = folder(name, root)
    tmp = base / f".{INDEX}.tmp"
    tmp.write_text(json.dumps(sets, indent=1))
    os.replace(tmp, base / INDEX)
    live = {s["set"] for s in sets}
    for d in base.iterdir():
        if d.is_dir() and d.name not in live:
            drop(d)


def drop(d: Path) -> None:
    """Remove a set's folder (its files were left read-only)."""
    d.chmod(d.stat().st_mode | stat.S_IWUSR)
    shutil.rmtree(d, ignore_errors=True)


def create_view(con: duckdb.DuckDBPyConnection, name: str, root: Path | None,
                parts: list[str], sets: list[dict[str, Any]]) -> None:  # fmt: skip
    """``CREATE VIEW samples`` on a new (writable) store connection."""
    part_cols = [r[0] for r in con.execute(
        f"DESCRIBE SELECT * FROM read_parquet({_lit(parts[0])})").fetchall()]  # fmt: skip
    files = set_files(name, root, sets, parts)
    con.execute(f"CREATE VIEW samples AS {view_sql(parts, part_cols, sets, files)}")
    # What backend.rowfetch reads to fetch a page or a lookup by position (module docstring).
    con.execute(f"CREATE VIEW samples_base_at AS {base_sql(parts, part_cols, sets)}")
    con.execute(
        "CREATE VIEW samples_at AS " + view_sql(parts, part_cols, sets, files, positions=True)
    )
    taken = {c.lower() for s in sets for c in s["columns"]}
    own = [c for c in part_cols if c.lower() not in taken]
    rows = [(0, i, p, own) for i, p in enumerate(parts)]
    rows += [(j + 1, i, f, s["columns"]) for j, s in enumerate(sets)
             for i, f in enumerate(files[s["set"]])]  # fmt: skip
    con.execute("CREATE TABLE samples_files (source INTEGER, part INTEGER, path VARCHAR, "
                "columns VARCHAR[])")  # fmt: skip
    con.executemany("INSERT INTO samples_files VALUES (?, ?, ?, ?)", rows)
