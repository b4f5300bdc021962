"""Browse: filter the active dataset and page through it as a grid of thumbnails."""

from __future__ import annotations

import streamlit as st

from backend.selection import BadSelection
from ui import cards, memo, page, pager, selection_bar, shared, state, style

PAGE_SIZES = (24, 48, 96)
GRID_COLUMNS = (4, 5, 6)
K_SIZE, K_COLS = "w.page_size", "w.grid_cols"
SIZE, COLS = "ts.page_size", "ts.grid_cols"

name, con, info, sel = page.open_dataset(
    "Browse", state.BROWSE_PAGE, "Page through a dataset's images and captions.", "browse"
)

facts = state.facts(name)  # column names and types, read once per store version
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


head, tools = st.columns([1, 1], vertical_alignment="bottom")
with head:
    source = shared.show_path(info["source"])  # no absolute server path for visitors
    style.hero(f"Browse · {name}", f"{info['format'] or 'unknown format'} · {source}")
with tools, st.container(horizontal=True, horizontal_alignment="right", gap="medium"):
    pager.sort_control(name, facts["numeric"])
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
    cur = pager.cursor()
    try:  # a sort can make a page slower than its count: the time limit's message, not a crash
        sort_column = (sel.sort_key(facts["columns"]) or (None,))[0]
        rows = memo.page(name, con, sel, after=cur.get("after", -1), before=cur.get("before"),
                         limit=limit, value=cur.get("value"))  # fmt: skip
        if not rows or ("before" in cur and len(rows) < limit):
            # Back at the start (or the store changed under the cursor): show the first page.
            state.reset_cursor()
            rows = memo.page(name, con, sel, limit=limit)
    except BadSelection as e:
        selection_bar.stop_bad_filter(name, e)
    with pager_slot:
        pager.bar("top", rows, limit, matched, got.exact, sort_column)
    if sort_column:  # each card shows the value it is sorted by
        rows = [{**r, "score": r[sort_column]} if r.get(sort_column) is not None else r
                for r in rows]  # fmt: skip
    cards.grid(name, rows, ncols, score_label=sort_column or "score", ranked=False)
    if len(rows) > ncols * 2:
        pager.bar("bottom", rows, limit, matched, got.exact, sort_column)


bar, pages_top = st.columns([1, 1], vertical_alignment="center")
with bar, st.container(horizontal=True, vertical_alignment="center", gap="small"):
    selection_bar.show_count(got, info["rows"])
    selection_bar.render(name, sel)
rows_part(pages_top)
