"""Map: every row placed by its embedding, coloured by cluster, score or shard; a box, a lasso
or a cluster becomes the shared Selection (Browse, Search and Export then show those rows)."""

from __future__ import annotations

from functools import partial

import streamlit as st

from backend import mapview
from backend.selection import BadSelection
from ui import cards, page, selection_bar, state, style
from ui import mapview as view
from ui.map_figure import placeholder

name, con, info, sel = page.open_dataset(
    "Map", state.MAP_PAGE, "See a dataset's rows laid out by meaning, and select regions.", "map"
)
facts = state.facts(name)

if not mapview.has_map(facts["columns"]):
    style.hero(f"Map · {name}", "Rows laid out by their embeddings, grouped into clusters.")
    view.needs_map(name)
    st.stop()

head, tools = st.columns([3, 2], vertical_alignment="bottom")
with head:
    style.hero(
        f"Map · {name}",
        "Drag a box or a lasso to select a region; click a cluster label to select it.",
    )
with tools:
    color = view.color_picker(view.color_options(facts, name), name)
view.layout_note(name)

problem = st.session_state.pop(view.ERROR, None)
if problem:
    st.warning(f"That selection cannot be used: {problem}", icon=":material/gesture:")

left, right = st.columns([3, 2], gap="medium")
with left:
    bar = st.container(horizontal=True, vertical_alignment="center", gap="small")
    empty_note = st.empty()
    slot = st.empty()
    # the session's first map, when its figure is not made yet: an empty one first, so
    # plotly.js loads while the queries run (a made figure comes at once: no placeholder)
    if not st.session_state.get(view.WARMED) and not view.chart_ready(name, sel, color):
        st.session_state[view.WARMED] = True
        slot.plotly_chart(placeholder(), key="map-warm", config={"displaylogo": False,
                          "staticPlot": True}, width="stretch")  # fmt: skip

try:
    fig, pts, clusters = view.chart_data(name, sel, color)
except BadSelection as e:
    slot.empty()
    with left:
        st.error(f"This filter cannot be applied: {e}", icon=":material/filter_alt_off:")
        selection_bar.clear_button(name, "bad-clear")
    st.stop()

with left:
    with bar:
        selection_bar.render(name, sel)
    if pts.total == 0:
        empty_note.info("No row with map coordinates matches the filters.",
                        icon=":material/search_off:")  # fmt: skip
    slot.plotly_chart(
        fig,
        key=view.CHART,
        on_select=partial(view.on_chart_select, name),
        selection_mode=("box", "lasso", "points"),
        config={"displaylogo": False, "scrollZoom": True},
        width="stretch",
    )
    view.sampled_note(pts)
    if clusters:
        view.cluster_picker(name, clusters, sel)
with right:
    try:
        view.side_panel(name, sel, info["rows"])
    except BadSelection as e:  # a filter that ran past its time limit (backend.bounded)
        st.error(f"This filter cannot be applied: {e}", icon=":material/filter_alt_off:")
cards.maybe_open_detail(name)
