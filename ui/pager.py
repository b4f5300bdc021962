"""Browse's paging: the cursor, the First / Previous / Next bar, and the sort control.

The cursor is the row shown last (Next) or first (Previous) and, when the Selection is sorted,
that row's value of the sort column: :mod:`backend.keyset` turns it into "the rows past it".
A change of sort is a change of the Selection, so every page, Export and Subsets follow it.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import streamlit as st

from backend.selection import sort_parts
from ui import state

K_SORT = "w.sort"
ROW_ORDER = ""  # the Selection's sort when unsorted
# Numbers that locate or label a row rather than measure it: no order worth offering.
NOT_MEASURES = ("byte_offset", "byte_size", "src_row", "map_x", "map_y", "cluster", "phash")


def cursor() -> dict[str, Any]:
    """``{"after": row_id}`` or ``{"before": row_id}``, with ``"value"`` (that row's value of
    the sort column) when the page is sorted."""
    return st.session_state.get(state.CURSOR) or {"after": -1}


def page_no() -> int:
    return int(st.session_state.get(state.PAGE_NO, 1))


def _key(row: dict[str, Any], sort_column: str | None) -> tuple[int, Any] | tuple[int]:
    """What the cursor keeps of a row: its id, and its sort value when the page is sorted."""
    rid = int(row["row_id"])
    return (rid, row.get(sort_column)) if sort_column else (rid,)


def _at(where: str, key: tuple) -> dict[str, Any]:
    return {where: key[0], "value": key[1]} if len(key) > 1 else {where: key[0]}


def go_next(key: tuple) -> None:
    """Callback: the page after the row shown last (its :func:`_key`)."""
    st.session_state[state.CURSOR] = _at("after", key)
    st.session_state[state.PAGE_NO] = page_no() + 1


def go_previous(key: tuple) -> None:
    """Callback: the page before the row shown first (its :func:`_key`)."""
    st.session_state[state.CURSOR] = _at("before", key)
    st.session_state[state.PAGE_NO] = max(1, page_no() - 1)


def sort_label(sort: str) -> str:
    if not sort:
        return "Row order"
    col, desc = sort_parts(sort)
    return f"{col} {'↓ high first' if desc else '↑ low first'}"


def _on_sort(name: str) -> None:
    state.set_selection(name, replace(state.selection(name), sort=st.session_state[K_SORT]))


def sort_control(name: str, numeric: list[str]) -> None:
    """A select of the order: row order, or a numeric column high-first or low-first. It shows
    the Selection's sort as another page, the URL or a removed chip left it."""
    current = state.selection(name).sort
    measures = [c for c in numeric if c not in NOT_MEASURES and not c.startswith("dup_")]
    options = [ROW_ORDER, *(f"{c} {d}" for c in measures for d in ("DESC", "ASC"))]
    if current not in options:  # a sort set elsewhere (CLI, saved subset, URL)
        options.append(current)
    st.session_state[K_SORT] = current
    st.selectbox(
        "Sort",
        options,
        key=K_SORT,
        format_func=sort_label,
        on_change=_on_sort,
        args=(name,),
        width=190,
        help="The order of the rows here, in Export and in a saved subset. Rows without a "
        "value come last.",
    )


def bar(where: str, rows: list[dict[str, Any]], limit: int, matched: int, exact: bool,
        sort_column: str | None) -> None:  # fmt: skip
    """Page k of n, the rows shown, and First / Previous / Next."""
    no = page_no()
    pages = max(1, -(-matched // limit), no)
    first_shown = (no - 1) * limit + 1
    # (an estimate may be short of the rows there are: then a full page is enough)
    has_next = len(rows) == limit and (no * limit < matched or not exact)
    with st.container(horizontal=True, vertical_alignment="center", gap="small",
                      horizontal_alignment="right", key=f"pager-{where}"):  # fmt: skip
        st.markdown(
            f'<div class="ts-meta" style="font-size:.84rem;height:auto">Page <b>{no:,}</b>'
            f" of {'' if exact else '≈ '}{pages:,} · rows {first_shown:,}–"
            f"{first_shown + len(rows) - 1:,}</div>",
            unsafe_allow_html=True,
            width="content",
        )
        st.button("First", key=f"pg-first-{where}", icon=":material/first_page:",
                  disabled=no <= 1, on_click=state.reset_cursor)  # fmt: skip
        st.button("Previous", key=f"pg-prev-{where}", icon=":material/chevron_left:",
                  disabled=no <= 1, on_click=go_previous,
                  args=(_key(rows[0], sort_column),))  # fmt: skip
        st.button("Next", key=f"pg-next-{where}", icon=":material/chevron_right:",
                  icon_position="right", disabled=not has_next, on_click=go_next,
                  args=(_key(rows[-1], sort_column),))  # fmt: skip
