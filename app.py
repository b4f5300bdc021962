"""Tailscope home: the datasets of the workspace, what each holds, and what was rejected."""

from __future__ import annotations

import streamlit as st

from ui import home, state, style

state.setup_page("Tailscope", state.HOME_PAGE)
active = state.dataset_picker()

style.hero(
    "Tailscope",
    "Explore and audit image–text pretraining data: browse, filter and inspect every row, "
    "and see exactly what ingest dropped and why.",
)
names = state.datasets()
if not names:
    home.empty_state()
    st.stop()

home.workspace_line(names)
for name in names:
    home.dataset_card(name, active=name == active)
