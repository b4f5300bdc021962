"""Read-side queries the Browse page needs: counts, keyset pages, one row, column facts.

Pages are keyset-paged (``row_id > last`` … ``LIMIT n``, or past the last row's sort value when
the Selection is sorted: :mod:`backend.keyset`): the cost of a page does not grow with how far
the user has paged, unlike ``OFFSET``. On a parquet-backed store that steps added columns to,
pages and lookups by id locate their rows on the shards and read just those rows
(:mod:`backend.rowfetch`): the joined view would read every row first.
"""

from __future__ import annotations

import time
from typing import Any

import duckdb

from backend import row_sample, rowfetch
from backend.keyset import keyset
from backend.selection import IDS_IN, Selection, is_numeric, quote_ident

# Columns the grid needs; the detail view reads all of them.
CARD_COLUMNS = ("row_id", "key", "caption", "url", "width", "height", "shard", "storage", "path",
                "byte_offset", "byte_size", "src_row", "format", "file_size")  # fmt: skip


def columns(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """Column name → DuckDB type of ``samples``, in table order."""
    rows = con.execute(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_name = 'samples' ORDER BY ordinal_position"
    ).fetchall()
    return dict(rows)


def numeric_columns(con: duckdb.DuckDBPyConnection) -> list[str]:
    return [c for c, t in columns(con).items() if is_numeric(t) and c not in ("row_id",)]


def column_range(con: duckdb.DuckDBPyConnection, column: str) -> tuple[float | None, float | None]:
    cols = columns(con)
    if column not in cols:
        raise KeyError(column)
    q = quote_ident(column)
    lo, hi = con.execute(f"SELECT min({q}), max({q}) FROM samples").fetchone()
    return lo, hi


def column_ranges(
    con: duckdb.DuckDBPyConnection, names: list[str], files: list[str] | None = None
) -> dict[str, tuple[float | None, float | None]]:
    """(min, max) of each column in one scan: over parquet shards each separate query is a
    scan of its own (10^8 rows: ~0.5 s a column), one query reads them all in one pass.
    ``files``: the parquet shards ``samples`` is exactly a view of; then the ranges come from
    their footers' row-group statistics (10^8: 18 ms against a 5.8 s scan), a scan only for a
    column some row group keeps no statistics for."""
    cols = columns(con)
    for c in names:
        if c not in cols:
            raise KeyError(c)
    out = _footer_ranges(con, files, {c: cols[c] for c in names}) if files and names else {}
    rest = [c for c in names if c not in out]
    if rest:
        parts = ", ".join(f"min({quote_ident(c)}), max({quote_ident(c)})" for c in rest)
        got = con.execute(f"SELECT {parts} FROM samples").fetchone()
        out.update({c: (got[2 * i], got[2 * i + 1]) for i, c in enumerate(rest)})
    return {c: out[c] for c in names}


def _footer_ranges(con: duckdb.DuckDBPyConnection, files: list[str],
                   types: dict[str, str]) -> dict[str, tuple[Any, Any]]:  # fmt: skip
    """(min, max) of the columns whose every row group has statistics, cast to the column's
    type (a float's statistic is its shortest exact text: the cast gives the stored value)."""
    aggs, params = [], []
    for c, t in types.items():
        for f in ("min", "max"):
            v, only = f"TRY_CAST(stats_{f}_value AS {t})", "FILTER (WHERE path_in_schema = ?)"
            aggs.append(f"{f}({v}) {only}, count({v}) {only}")
            params += [c, c]
    got = con.execute(f"SELECT count(DISTINCT (file_name, row_group_id)), {', '.join(aggs)} "
                      "FROM parquet_metadata(?)", [*params, files]).fetchone()  # fmt: skip
    out = {}
    for i, c in enumerate(types):
        lo, n_lo, hi, n_hi = got[1 + 4 * i : 5 + 4 * i]
        if n_lo == n_hi == got[0]:  # (a row group without statistics: scan the column)
            out[c] = (lo, hi)
    return out


def top_values(con: duckdb.DuckDBPyConnection, column: str, limit: int = 50
               ) -> list[tuple[str, int]]:  # fmt: skip
    """(value, rows) of the ``limit`` commonest non-NULL values of ``column`` (none when the
    store lacks it, e.g. before the step that adds it ran): a Browse facet's choices."""
    if column not in columns(con):
        return []
    col = quote_ident(column)
    return [(str(v), int(n)) for v, n in con.execute(
        f"SELECT {col}, count(*) AS n FROM samples WHERE {col} IS NOT NULL "
        f"GROUP BY {col} ORDER BY n DESC, {col} LIMIT ?", [limit]).fetchall()]  # fmt: skip


def shard_counts(con: duckdb.DuckDBPyConnection) -> list[tuple[str, int]]:
    return con.execute("SELECT shard, count(*) FROM samples GROUP BY 1 ORDER BY 1").fetchall()


def count(con: duckdb.DuckDBPyConnection, sel: Selection) -> int:
    where, params = sel.where(columns(con))
    return con.execute(f"SELECT count(*) FROM samples WHERE {where}", params).fetchone()[0]


def estimate(con: duckdb.DuckDBPyConnection, sel: Selection) -> tuple[int, int, float] | None:
    """The Selection's count estimated from the store's row sample, the sample's 1-in-m, and
    m times the seconds the sample took (what counting every row would take, about); None when
    the store has none (it is small enough to count exactly)."""
    src = row_sample.load(con)
    if src is None:
        return None
    where, params = sel.where(columns(con))
    t0 = time.perf_counter()
    n = con.execute(f"SELECT count(*) FROM {src.table} WHERE {where}", params).fetchall()[0][0]
    return src.scale(n), src.every, (time.perf_counter() - t0) * src.every


def _rows(cur: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def page(
    con: duckdb.DuckDBPyConnection,
    sel: Selection,
    after: int = -1,
    limit: int = 48,
    before: int | None = None,
    value: Any = None,
) -> list[dict[str, Any]]:
    """Up to ``limit`` rows of the selection just past row ``after``, in the Selection's order
    (``row_id``, or its ``sort`` column then ``row_id``: :mod:`backend.keyset`).

    With ``before`` set, the ``limit`` rows just before that row (for a Previous button).
    ``value``: the cursor row's value of the sort column, when sorted (each row of a sorted
    page carries it, for the next cursor).
    """
    cols = columns(con)
    where, params = sel.where(cols)
    ks = keyset(sel, cols, after, before, value)
    card = [c for c in dict.fromkeys([*CARD_COLUMNS, ks.sort_column or "row_id"]) if c in cols]
    sources = rowfetch.layout(con)
    # a sort or a join on the hits: find the ids, then read their rows
    by_ids = ks.sort_column is not None or any(sel.concepts.values())
    got: list[dict[str, Any]] = []
    for leg in ks.legs:
        if len(got) >= limit:
            break
        got += _leg_rows(con, sources, by_ids, f"({where}) AND {leg.where}",
                         [*params, *leg.params], f"{leg.order} LIMIT {int(limit) - len(got)}",
                         card)  # fmt: skip
    return list(reversed(got)) if ks.backwards else got


def _leg_rows(con: duckdb.DuckDBPyConnection, sources: list[rowfetch.Source] | None,
              by_ids: bool, where: str, params: list[Any], tail: str,
              card: list[str]) -> list[dict[str, Any]]:  # fmt: skip
    """The ``card`` columns of the rows ``where`` keeps, ordered and capped by ``tail``."""
    if sources is not None:  # shards + added column files: find the rows, then read them
        return rowfetch.rows(con, sources, where, params, tail, card)
    if by_ids:
        ids = _page_ids(con, where, params, tail)
        by_id = rows_by_id(con, ids, tuple(card))
        return [by_id[i] for i in ids if i in by_id]
    select = ", ".join(quote_ident(c) for c in card)
    return _rows(con.execute(f"SELECT {select} FROM samples WHERE {where} {tail}", params))


def _page_ids(con: duckdb.DuckDBPyConnection, where: str, params: list[Any],
              tail: str) -> list[int]:  # fmt: skip
    """The page's row ids alone (only the filter's and the order's columns read), for
    :func:`rows_by_id`: in one query DuckDB reads the card columns for every row it keeps
    before the LIMIT (a page of a rare concept at 10^7: 1.5 s in one query, 0.2 s in two)."""
    return [r[0] for r in con.execute(f"SELECT row_id FROM samples WHERE {where} {tail}",
                                      params).fetchall()]  # fmt: skip


def row(con: duckdb.DuckDBPyConnection, row_id: int) -> dict[str, Any] | None:
    """Every column of one row, or None when there is no such row."""
    sources = rowfetch.layout(con)
    if sources is not None:
        got = rowfetch.rows(con, sources, "row_id = ?", [int(row_id)], "", list(columns(con)))
        return got[0] if got else None
    cur = con.execute("SELECT * FROM samples WHERE row_id = ?", [int(row_id)])
    rows = _rows(cur)
    return rows[0] if rows else None


def rows_by_id(
    con: duckdb.DuckDBPyConnection, ids: list[int], names: tuple[str, ...] = CARD_COLUMNS
) -> dict[int, dict[str, Any]]:
    """Row id → ``names`` (those the store has) of the rows with these ids (a kNN result's
    rows, a page's); ids the store does not hold are left out. The ids' range bounds the scan
    too (row groups outside it are skipped)."""
    cols = columns(con)
    want = [c for c in dict.fromkeys(["row_id", *names]) if c in cols]
    if not ids:
        return {}
    ids = [int(i) for i in ids]
    where, params = f"row_id BETWEEN ? AND ? AND {IDS_IN}", [min(ids), max(ids), ids]
    sources = rowfetch.layout(con)
    if sources is not None:
        got = rowfetch.rows(con, sources, where, params, "", want)
    else:
        got = _rows(con.execute(f"SELECT {', '.join(quote_ident(c) for c in want)} FROM samples "
                                f"WHERE {where}", params))  # fmt: skip
    return {r["row_id"]: r for r in got}


def rejects(
    con: duckdb.DuckDBPyConnection,
    limit: int | None = None,
    reason: str | None = None,
    offset: int = 0,
) -> list[dict[str, Any]]:
    """Rejected items (all, or those with one ``reason``), ordered by reason, shard, key;
    ``limit`` rows from ``offset`` for one page (all of them when ``limit`` is None). The
    rejects table is a small fraction of a dataset, so OFFSET paging is cheap enough here."""
    where, params = ("reason = ?", [reason]) if reason else ("TRUE", [])
    sql = f"SELECT * FROM rejects WHERE {where} ORDER BY reason, shard, key, detail"
    if limit is not None:
        sql += f" LIMIT {max(0, int(limit))} OFFSET {max(0, int(offset))}"
    return _rows(con.execute(sql, params))


def reject_reasons(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Reject count by reason, most frequent first."""
    rows = con.execute("SELECT reason, count(*) FROM rejects GROUP BY 1 ORDER BY 2 DESC, 1")
    return dict(rows.fetchall())
