"""Which rows an export writes: a Selection, a saved subset, explicit row ids or every row,
compiled to one parameterised query over the store and read back in Arrow record batches.

The recipe (what was asked for) and the source fingerprint (which build it ran on) are kept
with the plan, so the manifest can say how to get exactly these rows again.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

from backend import bounded, paths
from backend.browse import columns as table_columns
from backend.manifest import read_manifest
from backend.selection import Selection, quote_ident
from backend.store import connect

BATCH_ROWS = 8192


class ExportError(ValueError):
    """An export that cannot run as asked: the message says why and what to do."""


@dataclass
class Plan:
    """An open read-only store plus the WHERE clause of the rows to export."""

    name: str
    root: Path | None
    con: duckdb.DuckDBPyConnection
    columns: dict[str, str]
    where: str
    params: list[Any]
    recipe: dict[str, Any]
    source: dict[str, Any]
    total: int = 0
    notes: list[str] = field(default_factory=list)

    def select(self, wanted: Sequence[str] | None) -> list[str]:
        """The columns to write, checked against the store (all when ``wanted`` is empty)."""
        if not wanted:
            return list(self.columns)
        unknown = [c for c in wanted if c not in self.columns]
        if unknown:
            raise ExportError(
                f"no column(s) {', '.join(map(repr, unknown))} in {self.name!r}; "
                f"it has: {', '.join(self.columns)}"
            )
        return list(dict.fromkeys(wanted))

    @property
    def plain_scan(self) -> bool:
        """True when the WHERE has no subquery: a filtered scan of ``samples`` (stored in row-id
        order) then returns rows in row-id order without a sort. Id lists (keywords, subsets,
        limits) are semi-joins, which do not keep that order."""
        return "SELECT" not in self.where.upper()

    def batches(
        self,
        cols: Sequence[str],
        after: int = -1,
        extra_where: str = "",
        batch_rows: int = BATCH_ROWS,
        computed: dict[str, str] | None = None,
    ) -> Iterator[pa.RecordBatch]:
        """The selected rows with ``row_id > after`` in row-id order, ``batch_rows`` at a time.

        Never a sort of the whole selection (its memory grows with the export): a plain filter
        streams in storage order, checked as it goes; otherwise the selected row ids (8 bytes a
        row) are listed first and the rows read back one sorted chunk of ids at a time.
        ``computed`` adds columns by SQL expression (name → expression).
        """
        computed = computed or {}
        sel = ", ".join([*(quote_ident(c) for c in dict.fromkeys(["row_id", *cols])),
                         *(f"{e} AS {quote_ident(n)}" for n, e in computed.items())])  # fmt: skip
        cols = [*cols, *computed]
        where = f"({self.where}) AND row_id > ?" + (f" AND ({extra_where})" if extra_where else "")
        if self.plain_scan:
            cur = self.con.cursor()
            try:
                query = f"SELECT {sel} FROM samples WHERE {where}"
                q = cur.sql(query, params=[*self.params, after])
                last = after
                for b in q.to_arrow_reader(batch_rows):
                    ids = b.column("row_id").to_numpy()
                    if not _increasing(ids, last):
                        raise ExportError("the store returned rows out of row-id order: rebuild it")
                    last = ids[-1] if len(ids) else last
                    yield b.select(cols)
            finally:
                cur.close()
            return
        ids = self.con.sql(f"SELECT row_id FROM samples WHERE {where} ORDER BY row_id",
                           params=[*self.params, after]).fetchnumpy()["row_id"]  # fmt: skip
        for i in range(0, len(ids), batch_rows):
            chunk = np.asarray(ids[i : i + batch_rows], dtype=np.int64)
            cur = self.con.cursor()
            try:
                table = cur.sql(
                    f"SELECT {sel} FROM samples WHERE row_id BETWEEN ? AND ? "
                    "AND row_id IN (SELECT unnest(?::BIGINT[])) ORDER BY row_id",
                    params=[int(chunk[0]), int(chunk[-1]), chunk.tolist()],
                ).to_arrow_table()
            finally:
                cur.close()
            yield from table.select(cols).to_batches(batch_rows)

    def count(self, extra_where: str = "") -> int:
        where = f"({self.where})" + (f" AND ({extra_where})" if extra_where else "")
        return self.con.execute(f"SELECT count(*) FROM samples WHERE {where}", self.params)\
            .fetchall()[0][0]

    def row_ids(self) -> np.ndarray:
        """Every selected row id, sorted (for recipe checks)."""
        res = self.con.execute(
            f"SELECT row_id FROM samples WHERE {self.where} ORDER BY row_id", self.params
        ).fetchnumpy()
        return np.asarray(res["row_id"], dtype=np.int64)

    def close(self) -> None:
        self.con.close()


def _increasing(ids: np.ndarray, last: int) -> bool:
    return not len(ids) or (ids[0] > last and bool((ids[1:] > ids[:-1]).all()))


def fingerprint(name: str, root: Path | None, con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    """Which build of ``name`` this is: its store file (a new one per build or column step),
    the manifest's ``built_at`` and the row count."""
    store = paths.store_path(name, root)
    manifest = read_manifest(paths.manifest_path(name, root))
    return {
        "dataset": name,
        "build_id": store.resolve().name,
        "built_at": manifest.get("built_at"),
        "rows": con.execute("SELECT count(*) FROM samples").fetchall()[0][0],
    }


def _ids_clause(ids: Any) -> tuple[str, list[Any]]:
    arr = np.unique(np.asarray(ids, dtype=np.int64))
    return "row_id IN (SELECT unnest(?::BIGINT[]))", [arr.tolist()]


def plan(
    name: str,
    *,
    selection: Selection | None = None,
    subset: str | None = None,
    row_ids: Any = None,
    root: Path | None = None,
) -> Plan:
    """Open ``name`` and compile what to export; exactly one of selection/subset/row_ids, or
    none of them for every row. A keyword filter is resolved against the full-text index."""
    given = [x is not None for x in (selection, subset, row_ids)]
    if sum(given) > 1:
        raise ExportError("give one of a selection, a subset or row ids, not several")
    recipe: dict[str, Any] = {"selection": None, "subset": None, "sql": None, "row_ids": None}
    notes: list[str] = []
    con = bounded.wrap(connect(name, root))  # the user's filters: bounded (the CLI: no time limit)
    try:
        cols = table_columns(con)
        if subset is not None:
            from backend import subsets  # lands with the subsets work; imported only when used

            sub = subsets.get(name, subset, root)
            if getattr(sub, "stale", False):
                raise ExportError(
                    f"subset {subset!r} was saved on another build of {name!r}: its row ids may "
                    "now be other rows; save it again from its recipe before exporting"
                )
            where, params = _ids_clause(sub.row_ids)
            recipe.update(subset=sub.name, selection=sub.selection.to_dict(),
                          sql=getattr(sub.selection, "sql", None) or None)  # fmt: skip
        elif row_ids is not None:
            ids = np.unique(np.asarray(row_ids, dtype=np.int64))
            where, params = _ids_clause(ids)
            recipe["row_ids"] = {"count": int(len(ids))}
        else:
            sel = _resolved(name, selection or Selection(), root)
            where, params = sel.where(cols)
            if getattr(sel, "limit", None) is not None:  # the rows shown: top `limit` by sort
                tail = sel.order_limit(cols)
                where = f"row_id IN (SELECT row_id FROM samples WHERE {where} {tail})"
            if getattr(sel, "sort", ""):
                notes.append("rows are written in row-id order, not in the selection's sort")
            recipe["selection"] = sel.to_dict()
            recipe["sql"] = getattr(sel, "sql", None) or None
        source = fingerprint(name, root, con)
        p = Plan(name, root, con, cols, where, params, recipe, source, notes=notes)
        p.total = p.count()
        return p
    except BaseException:
        con.close()
        raise


def _resolved(name: str, sel: Selection, root: Path | None) -> Selection:
    """Keywords and subset membership turned into row ids (they come from files, not SQL)."""
    try:
        from backend.subsets import resolve
    except ImportError:  # an older tree without saved subsets
        from backend.search import resolve_keywords as resolve
    return resolve(name, sel, root)


def replay(name: str, recipe: dict[str, Any], root: Path | None = None) -> np.ndarray:
    """The row ids a manifest's recipe selects on the current build of ``name``.

    A subset replays its frozen row ids; a selection is compiled again (so on the same build it
    gives the same rows, and on a rebuilt dataset the rows that match now)."""
    if recipe.get("subset"):
        p = plan(name, subset=recipe["subset"], root=root)
    elif recipe.get("row_ids"):
        raise ExportError("this export was made from explicit row ids: its recipe has no query")
    else:
        p = plan(name, selection=Selection.from_dict(recipe.get("selection") or {}), root=root)
    try:
        return p.row_ids()
    finally:
        p.close()
