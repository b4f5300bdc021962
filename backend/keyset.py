"""Where the next (or previous) page starts, in a Selection's order: keyset paging.

A page is the ``limit`` rows just past the last row shown, in the order the Selection asks for:
``row_id``, or its ``sort`` column then ``row_id`` (the order :meth:`Selection.order_limit`
gives Export and Subsets, NULLs last). The cursor is the last (or first) row shown: its id and,
when sorted, its value of the sort column. The condition "past that row" keeps the cost of a
page flat however far the user has paged, as ``row_id > last`` does, where ``OFFSET`` would
grow with it.

A sorted order is read in legs, each a plain condition DuckDB pushes into the scan, until the
page is full: the rows that tie with the cursor's value and come after it (``v = 0.37 AND
row_id > 1724``, in row-id order, so the scan stops early), the rows further along (``v <
0.37``), then the NULLs; backwards, the other way round. One condition (``v < 0.37 OR (v =
0.37 AND row_id > 1724) OR v IS NULL``) is evaluated on every row: 10^8 rows, a sorted second
page 2.0 s; ``bench/sort.py`` times both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from backend.selection import Selection, quote_ident


@dataclass(frozen=True)
class Leg:
    """Rows past the cursor (SQL and its parameters), in ``order``: read until a page is full."""

    where: str
    params: list[Any]
    order: str


@dataclass(frozen=True)
class Keyset:
    """A page's legs, read in turn; ``backwards`` (a Previous page): they run in reverse order
    and the caller reverses the rows it gets. ``sort_column``: the column whose value the
    cursor keeps, when sorted."""

    legs: list[Leg]
    backwards: bool
    sort_column: str | None


def keyset(sel: Selection, columns: dict[str, str], after: int = -1, before: int | None = None,
           value: Any = None) -> Keyset:  # fmt: skip
    """The legs of the page after row ``after`` (or before row ``before``) in ``sel``'s order.
    ``value``: that row's value of the sort column (None for a NULL or when unsorted);
    ``after=-1`` is the first page. Raises BadSelection for an unknown sort column."""
    back = before is not None
    anchor = int(before if back else after)
    key = sel.sort_key(columns)
    ids = "<" if back else ">"
    by_id = "ORDER BY row_id DESC" if back else "ORDER BY row_id"
    if key is None:
        return Keyset([Leg(f"row_id {ids} ?", [anchor], by_id)], back, None)
    col, desc = key
    q = quote_ident(col)
    rising = desc == back  # does the value grow in the direction of travel?
    by_value = f"ORDER BY {q} {'ASC' if rising else 'DESC'}, {by_id.removeprefix('ORDER BY ')}"
    every_value = Leg(f"{q} IS NOT NULL", [], by_value)
    if not back and anchor < 0:  # the first page
        return Keyset([every_value, Leg(f"{q} IS NULL", [], by_id)], back, col)
    if value is None:  # the cursor is among the NULLs, which come last
        nulls = Leg(f"{q} IS NULL AND row_id {ids} ?", [anchor], by_id)
        return Keyset([nulls, every_value] if back else [nulls], back, col)
    ties = Leg(f"{q} = ? AND row_id {ids} ?", [value, anchor], by_id)
    further = Leg(f"{q} {'>' if rising else '<'} ?", [value], by_value)
    return Keyset([ties, further] if back else [ties, further, Leg(f"{q} IS NULL", [], by_id)],
                  back, col)  # fmt: skip
