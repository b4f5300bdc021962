"""Where the next (or previous) page starts, in a Selection's order: keyset paging.

A page is the ``limit`` rows just past the last row shown, in the order the Selection asks for:
``row_id``, or its ``sort`` column then ``row_id`` (the order :meth:`Selection.order_limit`
gives Export and Subsets, NULLs last). The cursor is the last (or first) row shown: its id and,
when sorted, its value of the sort column. The condition "past that row" keeps the cost of a
page flat however far the user has paged, as ``row_id > last`` does, where ``OFFSET`` would
grow with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from backend.selection import Selection, quote_ident


@dataclass(frozen=True)
class Keyset:
    """A page's bound past the cursor (SQL and its parameters) and the ``ORDER BY`` it is read
    in: reversed for a Previous page (the caller reverses the rows it gets)."""

    where: str
    params: list[Any]
    order: str
    backwards: bool
    sort_column: str | None  # the column whose value the cursor keeps, when sorted


def keyset(sel: Selection, columns: dict[str, str], after: int = -1, before: int | None = None,
           value: Any = None) -> Keyset:  # fmt: skip
    """The bound and order of the page after row ``after`` (or before row ``before``) in
    ``sel``'s order. ``value``: that row's value of the sort column (None for a NULL or when
    unsorted); ``after=-1`` is the first page. Raises BadSelection for an unknown sort column."""
    back = before is not None
    anchor = int(before if back else after)
    key = sel.sort_key(columns)
    if key is None:
        order = "ORDER BY row_id DESC" if back else "ORDER BY row_id"
        return Keyset(f"row_id {'<' if back else '>'} ?", [anchor], order, back, None)
    col, desc = key
    q = quote_ident(col)
    # Forward: the sort column ascending (or descending), NULLs last, then row_id; backwards:
    # all of it reversed.
    way = "DESC" if desc != back else "ASC"
    order = f"ORDER BY {q} {way} NULLS {'FIRST' if back else 'LAST'}, row_id"
    order += " DESC" if back else ""
    if not back and anchor < 0:
        return Keyset("TRUE", [], order, back, col)
    past = "<" if desc != back else ">"  # a value further along in the direction of travel
    ids = "<" if back else ">"
    if value is None:  # the anchor is among the NULLs, which come last
        where = f"(({q} IS NULL AND row_id {ids} ?) OR {q} IS NOT NULL)" if back \
            else f"({q} IS NULL AND row_id {ids} ?)"  # fmt: skip
        return Keyset(where, [anchor], order, back, col)
    where = f"({q} {past} ? OR ({q} = ? AND row_id {ids} ?){'' if back else f' OR {q} IS NULL'})"
    return Keyset(where, [value, value, anchor], order, back, col)
