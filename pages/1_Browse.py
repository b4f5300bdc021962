"""Browse: filter the active dataset and page through it as a grid of thumbnails."""

from __future__ import annotations

import math

import streamlit as st

from backend.selection import BadSelection
from ui import cards, memo, page, selection_bar, shared, state, style

PAGE_SIZES = (24, 48, 96)
GRID_COLUMNS = (4, 5, 6)
K_SIZE, K_COLS = "w.page_size", "w.grid_cols"
SIZE, COLS = "ts.page_size", "ts.grid_cols"

name, con, info, sel = page.open_dataset(
    "Browse", state.BROWSE_PAGE, "Page through a dataset's images and captions.", "browse"
)

ss = st.session_state
ss.setdefault(SIZE, 48)
ss.setdefault(COLS, 6)
if K_SIZE not in ss:
    ss[K_SIZE] = ss[SIZE]
if K_COLS not in ss:
    ss[K_COLS] = ss[COLS]


def _on_size() -> None:
    ss[SIZE] = ss[K_SIZE] or ss[SIZE]
    state.reset_cursor()


def _on_cols() -> None:
    ss[COLS] = ss[K_COLS] or ss[COLS]


head, tools = st.columns([3, 2], vertical_alignment="bottom")
with head:
    source = shared.show_path(info["source"])  # no absolute server path for visitors
    style.hero(f"Browse · {name}", f"{info['format'] or 'unknown format'} · {source}")
with tools, st.container(horizontal=True, horizontal_alignment="right", gap="medium"):
    st.segmented_control("Per page", PAGE_SIZES, key=K_SIZE, on_change=_on_size, required=True)
    st.segmented_control("Columns", GRID_COLUMNS, key=K_COLS, on_change=_on_cols, required=True)
limit, ncols = int(ss[SIZE]), int(ss[COLS])

try:
    # cached: a rerun that changed nothing runs no query; a big store shows an estimate first
    got = memo.quick_count(name, con, sel)
    matched = got.n
except BadSelection as e:
    selection_bar.stop_bad_filter(name, e)

if matched == 0:
    with st.container(horizontal=True, vertical_alignment="center", gap="small"):
        selection_bar.show_count(got, info["rows"])
        selection_bar.render(name, sel)
    with st.container(border=True):
        st.markdown(
            style.empty_html(
                "search_off",
                "No rows match",
                "Nothing in this dataset satisfies every filter. Loosen a filter in the sidebar, "
                "or clear them all.",
            ),
            unsafe_allow_html=True,
        )
        selection_bar.clear_button(name, "empty-clear")
    st.stop()

canon = state.selection(name)  # as the sidebar left it (before keywords were resolved)


@st.fragment
def rows_part(pager_slot) -> None:
    """The pager and the grid: a page turn, a card's Details or Reveal reruns only this part.
    A click here that changes more (a "Similar" that switches page) reruns the whole page."""
    if state.selection(name) != canon or st.session_state.get(state.GOTO):
        st.rerun()
    con = state.connection(name)
    cur = state.cursor()
    try:  # a sort can make a page slower than its count: the time limit's message, not a crash
        rows = memo.page(name, con, sel, after=cur.get("after", -1), before=cur.get("before"),
                         limit=limit)  # fmt: skip
        if not rows or ("before" in cur and len(rows) < limit):
            # Back at the start (or the store changed under the cursor): show the first page.
            state.reset_cursor()
            rows = memo.page(name, con, sel, limit=limit)
    except BadSelection as e:
        selection_bar.stop_bad_filter(name, e)
    page_no, pages = state.page_no(), max(1, math.ceil(matched / limit), state.page_no())
    with pager_slot:
        pager("top", rows, page_no, pages)
    cards.grid(name, rows, ncols)
    if len(rows) > ncols * 2:
        pager("bottom", rows, page_no, pages)


def pager(where: str, rows: list, page_no: int, pages: int) -> None:
    first_shown = (page_no - 1) * limit + 1
    # (an estimate may be short of the rows there are: then a full page is enough)
    has_next = len(rows) == limit and (page_no * limit < matched or not got.exact)
    with st.container(
        horizontal=True,
        vertical_alignment="center",
        gap="small",
        horizontal_alignment="right",
        key=f"pager-{where}",
    ):
        st.markdown(
            f'<div class="ts-meta" style="font-size:.84rem;height:auto">Page <b>{page_no:,}</b>'
            f" of {'' if got.exact else '≈ '}{pages:,} · rows {first_shown:,}–"
            f"{first_shown + len(rows) - 1:,}</div>",
            unsafe_allow_html=True,
            width="content",
        )
        st.button(
            "First",
            key=f"pg-first-{where}",
            icon=":material/first_page:",
            disabled=page_no <= 1,
            on_click=state.reset_cursor,
        )
        st.button(
            "Previous",
            key=f"pg-prev-{where}",
            icon=":material/chevron_left:",
            disabled=page_no <= 1,
            on_click=state.go_previous,
            args=(rows[0]["row_id"],),
        )
        st.button(
            "Next",
            key=f"pg-next-{where}",
            icon=":material/chevron_right:",
            icon_position="right",
            disabled=not has_next,
            on_click=state.go_next,
            args=(rows[-1]["row_id"],),
        )


bar, pages_top = st.columns([3, 2], vertical_alignment="center")
with bar, st.container(horizontal=True, vertical_alignment="center", gap="small"):
    selection_bar.show_count(got, info["rows"])
    selection_bar.render(name, sel)
rows_part(pages_top)
