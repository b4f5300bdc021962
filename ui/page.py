"""The opening every dataset page shares: set up, pick the dataset, open it, read filters."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import duckdb
import streamlit as st

from backend import keyword, keyword_errors, keyword_stale, paths
from backend.selection import Selection
from backend.store import StoreMissing
from ui import filters, state, style


def open_dataset(
    title: str, page: str, blurb: str, verb: str
) -> tuple[str, duckdb.DuckDBPyConnection, dict[str, Any], Selection]:
    """(dataset name, connection, summary, current Selection); stops the page with a clear
    message when there is no dataset to ``verb`` or its store is missing."""
    state.setup_page(title, page)
    name = state.dataset_picker()
    if name is None:
        style.hero(title, blurb)
        st.info(
            f"There is no dataset to {verb} yet. Build one from the home page, or run "
            "`python -m backend demo`.",
            icon=":material/info:",
        )
        st.page_link(state.HOME_PAGE, label="Go to Datasets", icon=":material/arrow_back:")
        st.stop()
    try:
        con = state.connection(name)
        info = state.summary(name)
    except StoreMissing as e:
        st.error(str(e), icon=":material/error:")
        st.stop()
    sel = filters.sidebar(name)
    state.set_selection(name, sel)
    return name, con, info, _resolved(name, sel)


def _resolved(name: str, sel: Selection) -> Selection:
    """The Selection with its keyword filter matched against the full-text index and its
    concept filter pointed at the result sets' hits files (a join, not ids)."""
    from backend.concepts import resolve as resolve_concepts
    from backend.search import SearchError
    from backend.selection import BadSelection

    try:
        sel = resolve_concepts(name, sel, paths.workspace())
    except BadSelection as e:
        st.sidebar.error(str(e), icon=":material/error:")
        sel = replace(sel, concepts={})
    if not sel.keywords.strip():
        return sel
    try:
        ix_dir = keyword.index_dir(name, paths.workspace())
        index_build = f"{ix_dir.resolve()}|{keyword_stale.store_build(ix_dir)}"  # either may change
        ids = _keyword_ids(name, sel.keywords, index_build)
    except (keyword_errors.KeywordError, SearchError) as e:
        st.sidebar.error(str(e), icon=":material/error:")
        return replace(sel, keywords="")
    return replace(sel, keyword_ids=ids)


@st.cache_data(max_entries=32, show_spinner=False)
def _keyword_ids(name: str, keywords: str, index_build: str) -> tuple[int, ...]:
    from backend.search import resolve_keywords

    resolved = resolve_keywords(name, Selection(keywords=keywords), paths.workspace())
    return resolved.keyword_ids or ()
