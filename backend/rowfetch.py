"""Pages and lookups by row id on a parquet-backed store that steps have added columns to.

Such a store's ``samples`` joins each shard with its column files by position
(:mod:`backend.column_files`). DuckDB pushes no filter through that ``POSITIONAL JOIN`` and
materialises no column late across it, so a page in row order or a row by id read every column
of every row first: at 10^7 rows 3.7 s for the first Browse page (90 ms on the shards alone).
Here the same answer comes in two short steps instead:

1. **locate**: the row ids and (shard, position) of the rows the filter keeps, in order, from
   ``samples_base_at`` (the shards alone, one scan over them all, so the filter and the row-id
   bounds prune row groups and the wanted shard columns are read late, as they are without
   added columns). A filter that names an added column does not bind there; it runs on
   ``samples_at`` (the joined view with positions), reading only the narrow columns it names.
2. **fetch**: the wanted columns not read yet, of just those positions, from each column file
   (and each shard file, after the joined view), near positions read together
   (``file_row_number BETWEEN lo AND hi``, which skips the row groups outside).

Same rows, same order, same values and column order as a query on ``samples`` (tests/
test_rowfetch.py); every query runs inside the caller's bounded deadline when it has one.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any

import duckdb

from backend.selection import quote_ident

# Positions of one shard closer than this are read by one range (a DuckDB row group is 122,880
# rows: a gap below that reads at most the row group between them). Column files are narrow:
# one range a shard reads them faster than many (10^7, 48 spread ids: 8 ms against 70 ms).
GAP = 131_072
GAP_COLUMN_FILES = 1 << 22


@dataclass(frozen=True)
class Source:
    """One kind of file: the shards themselves (``source == 0``) or one column set."""

    columns: tuple[str, ...]
    paths: tuple[str, ...]  # one per shard, in shard order


def layout(con: Any) -> list[Source] | None:
    """The store's files by source, or None when ``samples`` is not shards plus column files
    (a DuckDB table, plain shards, or a store written before this existed)."""
    try:
        rows = con.execute("SELECT source, part, path, columns FROM samples_files "
                           "ORDER BY source, part").fetchall()  # fmt: skip
    except duckdb.CatalogException:
        return None
    by: dict[int, list[tuple[str, list[str]]]] = defaultdict(list)
    for source, _, path, cols in rows:
        by[source].append((path, cols))
    return [Source(tuple(got[0][1]), tuple(p for p, _ in got)) for _, got in sorted(by.items())]


@contextmanager
def _deadline(con: Any) -> Iterator[None]:
    """The caller's time limit around both steps (a :class:`backend.bounded.Bounded`)."""
    with con.deadline() if hasattr(con, "deadline") else nullcontext():
        yield


Located = list[tuple[int, int, int]]  # (row_id, shard, position)
Known = dict[tuple[int, int], dict[str, Any]]  # (shard, position) → column → value


def locate(con: Any, sources: list[Source], where: str, params: list[Any], tail: str,
           columns: list[str]) -> tuple[Located, Known]:  # fmt: skip
    """``(row_id, shard, position)`` of the rows ``where`` keeps, ordered and capped by
    ``tail`` (``ORDER BY … LIMIT …``), and, when the filter binds on the shards alone, their
    values of the wanted ``columns`` the shards hold (read late by DuckDB, as without added
    columns), keyed by (shard, position)."""
    own = {c.lower() for c in sources[0].columns}
    mine = [c for c in columns if c.lower() in own]
    # Each view is named ``samples`` in the query: a SQL filter may say ``samples.nsfw``.
    rest = " WHERE " + where + " " + tail  # (no str.format: the filter may hold braces)
    try:
        extra = "".join(f", {quote_ident(c)}" for c in mine)
        base = "SELECT row_id, _file, _pos" + extra + " FROM samples_base_at AS samples"
        got = con.execute(base + rest, params).fetchall()
    except duckdb.BinderException:  # the filter names a column the steps added: positions only
        got = con.execute(
            "SELECT row_id, _part, _pos FROM samples_at AS samples" + rest, params
        ).fetchall()
        return [tuple(g) for g in got], {}
    part = {p: i for i, p in enumerate(sources[0].paths)}
    at = [(g[0], part[g[1]], g[2]) for g in got]
    vals = {
        (p, q): dict(zip(mine, g[3:], strict=True)) for (_, p, q), g in zip(at, got, strict=True)
    }
    return at, vals


def _ranges(positions: list[int], gap: int) -> list[list[int]]:
    """Sorted positions cut where the gap to the next reaches ``gap``."""
    out: list[list[int]] = []
    for p in sorted(set(positions)):
        if out and p - out[-1][-1] < gap:
            out[-1].append(p)
        else:
            out.append([p])
    return out


def _lit(path: str) -> str:
    return "'" + path.replace("'", "''") + "'"


def _read(con: Any, src: Source, cols: list[str], wanted: dict[int, list[int]],
          gap: int) -> dict[tuple[int, int], tuple]:  # fmt: skip
    """``cols`` of ``src`` at the wanted positions, keyed by (shard, position)."""
    select = ", ".join(quote_ident(c) for c in cols)
    branches = []
    for part, positions in sorted(wanted.items()):
        path = _lit(src.paths[part])
        for r in _ranges(positions, gap):
            branches.append(
                f"SELECT {part}, file_row_number, {select} FROM read_parquet({path}, "
                f"file_row_number = true) WHERE file_row_number BETWEEN {r[0]} AND {r[-1]} "
                f"AND file_row_number IN ({', '.join(str(p) for p in r)})")  # fmt: skip
    got = con.execute(" UNION ALL ".join(branches)).fetchall()
    return {(g[0], g[1]): g[2:] for g in got}


def fetch(con: Any, sources: list[Source], at: Located, columns: list[str],
          known: Known | None = None) -> list[dict[str, Any]]:  # fmt: skip
    """``columns`` of the located rows ``at``, in ``at``'s order, as column → value dicts;
    ``known`` holds values already read (then no file of the sources that hold them is read)."""
    if not at:
        return []
    values: dict[tuple[int, int], dict[str, Any]] = defaultdict(dict)
    for key, vals in (known or {}).items():
        values[key].update(vals)
    have = {c.lower() for v in (known or {}).values() for c in v} if known else set()
    wanted: dict[int, list[int]] = defaultdict(list)
    for _, part, pos in at:
        wanted[part].append(pos)
    lowered = {c.lower(): c for c in columns}
    for n, src in enumerate(sources):
        cols = [lowered[c.lower()] for c in src.columns
                if c.lower() in lowered and c.lower() not in have]  # fmt: skip
        if not cols:
            continue
        gap = GAP if n == 0 else GAP_COLUMN_FILES
        for key, vals in _read(con, src, cols, wanted, gap).items():
            values[key].update(zip(cols, vals, strict=True))
    return [{c: values[(part, pos)].get(c) for c in columns} for _, part, pos in at]


def rows(con: Any, sources: list[Source], where: str, params: list[Any], tail: str,
         columns: list[str]) -> list[dict[str, Any]]:  # fmt: skip
    """:func:`locate` then :func:`fetch` (only the column files, when the filter bound on the
    shards), under one deadline."""
    with _deadline(con):
        at, known = locate(con, sources, where, params, tail, columns)
        return fetch(con, sources, at, columns, known)
