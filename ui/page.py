"""The opening every dataset page shares: set up, pick the dataset, open it, read filters."""

from __future__ import annotations

from typing import Any

import duckdb
import streamlit as st

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
    return name, con, info, sel
