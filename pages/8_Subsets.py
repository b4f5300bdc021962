"""Subsets: save the current Selection under a name, manage and combine subsets, compare two."""

from __future__ import annotations

import streamlit as st

from backend import paths, subsets
from ui import page, selection_bar, state, style
from ui import subsets as view

name, con, info, sel = page.open_dataset(
    "Subsets", state.SUBSETS_PAGE, "Save, combine and compare named sets of rows.", "organise"
)
style.hero(
    f"Subsets · {name}",
    "Freeze the current selection as a named set of rows; combine and compare them.",
)
matched = selection_bar.live(name, con, info["rows"], sel)
if note := st.session_state.get(state.URL_NOTE):
    st.caption(note)
view.show_flash()
view.save_form(name, sel, matched)

found = subsets.list_subsets(name, paths.workspace())
if not found:
    st.markdown(
        style.empty_html(
            "bookmarks",
            "No subsets yet",
            "Filter rows on Browse, Search or the Map, then save them here under a name.",
        ),
        unsafe_allow_html=True,
    )
    st.stop()

saved, combine, compare = st.tabs([f"Saved ({len(found)})", "Combine", "Compare"])
with saved:
    view.table(found)
    view.actions(name, found)
with combine:
    view.combine_form(name, [s.name for s in found])
with compare:
    view.compare_view(name, found)
