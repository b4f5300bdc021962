"""The Map page's Streamlit parts: cached map queries, the chart's selection callback, the
side panel of a selection, and the "no map yet" state with its build button."""

from __future__ import annotations

import inspect
import json
from dataclasses import replace
from typing import Any

import plotly.graph_objects as go
import streamlit as st

from backend import mapview, paths, polygon
from backend.selection import BadSelection, Selection
from ui import cards, fmt, memo, selection_bar, shared, state, style
from ui.map_figure import CONTEXT, LABELS, PER_CELL, POINTS, figure, thin

CHART = "map-chart"  # the chart widget's key
ROLES = "ts.map.roles"  # role of each trace of the chart on screen, by curve number
ERROR = "ts.map.error"  # a message for the next run (a degenerate lasso…)
COLOR = "ts.map.color"
W_COLOR = "w.map.color"
W_CLUSTER = "w.map.cluster"
CONCEPT = "ts.map.concept"
W_CONCEPT = "w.map.concept"
BY_CONCEPT = "concept"  # the colour choice that colours by one concept's rows
WARMED = "ts.map.warmed"  # this session drew the placeholder map (plotly.js is loaded)
GRID_ROWS = 6  # thumbnails in the side panel
GRID_COLS = 2


def _key(sel: Selection) -> str:
    """A cache key for a (resolved) Selection."""
    return json.dumps(sel.to_dict(), sort_keys=True, default=str) + str(
        hash(sel.keyword_ids) if sel.keyword_ids is not None else ""
    )


@st.cache_data(max_entries=16, show_spinner="Reading the map…")
def _points(
    store: str, mtime: int, key: str, color: str | None, limit: int, _sel: Selection, name: str
) -> mapview.MapPoints:
    if color and color.startswith(BY_CONCEPT + ":"):  # concept:<vocabulary>:<concept>
        from backend import concepts

        _, vocab, concept = color.split(":", 2)
        res = concepts.load(name, vocab, paths.workspace())
        members = concepts.selection_for(res, [concept])  # a join on the hits, not their ids
        return mapview.points(state.connection(name), _sel, None, limit, (concept, members))
    return mapview.points(state.connection(name), _sel, color, limit)


@st.cache_data(max_entries=16, show_spinner=False)
def _density(
    store: str, mtime: int, key: str, frame: tuple[float, ...], _sel: Selection, name: str
) -> mapview.Density:
    return mapview.density(state.connection(name), _sel, frame)  # type: ignore[arg-type]


@st.cache_data(max_entries=16, show_spinner=False)
def _extent(store: str, mtime: int, name: str) -> tuple[float, float, float, float] | None:
    return mapview.extent(state.connection(name))


@st.cache_data(max_entries=8, show_spinner=False)
def _view(store: str, mtime: int, name: str) -> tuple[float, ...] | None:
    return mapview.view(state.connection(name))


@st.cache_data(max_entries=16, show_spinner=False)
def _clusters(store: str, mtime: int, key: str, _sel: Selection, name: str) -> list[dict]:
    labels = mapview.load_labels(name, paths.workspace())
    return mapview.clusters(state.connection(name), _sel, labels)


@st.cache_data(max_entries=32, show_spinner="Finding the words of this selection…")
def _terms(store: str, mtime: int, key: str, _sel: Selection, name: str) -> list[str]:
    return mapview.top_terms(state.connection(name), _sel)


_BUILT: dict[tuple, None] = {}  # keys of the figures _chart made in this process (newest last)


def _chart_key(name: str, sel: Selection, color: str | None, limit: int) -> tuple:
    return memo.build_stamp(name), memo.selection_key(sel), color, limit


def chart_ready(name: str, sel: Selection, color: str | None,
                limit: int = mapview.DRAW_LIMIT) -> bool:  # fmt: skip
    """Whether this figure was made already (so the page need not draw the placeholder map
    while it waits: the placeholder's own draw cost ~0.3 s of a 3.9 s open on the demo)."""
    return _chart_key(name, sel, color, limit) in _BUILT


def chart_data(
    name: str, sel: Selection, color: str | None, limit: int = mapview.DRAW_LIMIT
) -> tuple[go.Figure, mapview.MapPoints, list[dict[str, Any]]]:
    """The figure of ``name``'s map for ``sel``: one object shared by every session, per
    build and Selection (building a 50k-point figure costs ~0.5 s; a rerun reuses it)."""
    key = _chart_key(name, sel, color, limit)
    got = _chart(*key, sel, name)
    _BUILT[key] = None
    while len(_BUILT) > 64:  # (bounded; an evicted figure only means one extra placeholder)
        del _BUILT[next(iter(_BUILT))]
    fig, roles, pts, clusters = got
    st.session_state[ROLES] = roles
    return fig, pts, clusters


@st.cache_resource(max_entries=8, show_spinner=False)
def _chart(
    stamp: str, sel_key: str, color: str | None, limit: int, _sel: Selection, name: str
) -> tuple[go.Figure, list[str], mapview.MapPoints, list[dict[str, Any]]]:
    """Never mutated by callers: st.plotly_chart serialises a copy."""
    store, mtime = str(state.store_file(name)), state.store_mtime(name)
    ctx = mapview.context(_sel)
    pts = _points(store, mtime, _key(_sel), color, limit, _sel, name)
    frame = _extent(store, mtime, name)
    dens = _density(store, mtime, _key(ctx), frame, ctx, name) if pts.sampled and frame else None
    clusters = _clusters(store, mtime, _key(ctx), ctx, name)
    view = _view(store, mtime, name)
    if dens is not None:  # sampled: the shading shows the mass, the points need not
        pts = thin(pts, dens)
    fig, roles = figure(pts, frame, color, clusters, dens, _sel.polygon, view)
    return fig, roles, pts, clusters


# -- callbacks ---------------------------------------------------------------------------------


def _set(name: str, sel: Selection) -> None:
    state.set_selection(name, sel)
    state.clear_filter_widgets()  # the sidebar re-seeds from the Selection (a cluster range)


def select_cluster(name: str, cluster: int | None) -> None:
    """Make ``cluster`` the map's selection (None: drop it)."""
    sel = mapview.context(state.selection(name))
    if cluster is not None:
        sel = replace(sel, ranges={**sel.ranges, mapview.CLUSTER: (cluster, cluster)})
    _set(name, sel)


def _scalar(v: Any) -> Any:
    return v[0] if isinstance(v, list | tuple) and v else v


def on_chart_select(name: str) -> None:
    """Callback of the chart: a box or lasso → the Selection's polygon (from its geometry);
    a click on a cluster label → that cluster; a click on a point → its detail dialog;
    an emptied selection (double click) → no map selection."""
    event = st.session_state.get(CHART) or {}
    chosen = event.get("selection") or {}
    has_shape = bool(chosen.get("box") or chosen.get("lasso"))
    if has_shape:
        try:
            poly = polygon.polygon_from_event(chosen)
        except BadSelection as e:
            st.session_state[ERROR] = str(e)
            return
        _set(name, replace(mapview.context(state.selection(name)), polygon=poly))
        return
    points = chosen.get("points") or []
    roles = st.session_state.get(ROLES) or []
    if len(points) == 1:
        p = points[0]
        curve = int(p.get("curve_number", -1))
        role = roles[curve] if 0 <= curve < len(roles) else None
        value = _scalar(p.get("customdata"))
        if role == LABELS and value is not None:
            select_cluster(name, int(value))
        elif role in (POINTS, CONTEXT) and value is not None:
            cards.open_detail(int(value))
        return
    if not points:
        _set(name, mapview.context(state.selection(name)))


def on_cluster_pick(name: str) -> None:
    select_cluster(name, st.session_state.get(W_CLUSTER))


# -- widgets -----------------------------------------------------------------------------------


def color_options(facts: dict[str, Any], name: str | None = None) -> list[str]:
    """Colour choices: cluster (when present), a concept (when concepts were counted), shard,
    then every other numeric column."""
    skip = {mapview.MAP_X, mapview.MAP_Y, mapview.CLUSTER, "row_id", "src_row", "byte_offset",
            "byte_size"}  # fmt: skip
    out = [mapview.CLUSTER] if mapview.CLUSTER in facts["columns"] else []
    if name is not None and _vocabs(name):
        out.append(BY_CONCEPT)
    out.append("shard")
    out += [c for c in facts["numeric"] if c not in skip]
    return out


def color_picker(options: list[str], name: str | None = None) -> str:
    ss = st.session_state
    if ss.get(COLOR) not in options:
        ss[COLOR] = options[0]
    if ss.get(W_COLOR) not in options:
        ss[W_COLOR] = ss[COLOR]

    def _on() -> None:
        ss[COLOR] = ss[W_COLOR]

    st.selectbox("Colour by", options, key=W_COLOR, on_change=_on)
    if ss[COLOR] == BY_CONCEPT and name is not None:
        return _concept_picker(name)
    return ss[COLOR]


def _vocabs(name: str) -> list[str]:
    from backend import concepts

    return concepts.list_vocabs(name, paths.workspace())


@st.cache_data(max_entries=8, show_spinner=False)
def _concept_names(name: str, vocab: str, stamp: float) -> list[str]:
    """The vocabulary's concepts that occur, most frequent first."""
    from backend import concepts

    res = concepts.load(name, vocab, paths.workspace())
    counts = sorted(res.count_of().items(), key=lambda kv: -kv[1])
    return [c for c, n in counts if n > 0]


def _concept_picker(name: str) -> str:
    """Which concept's rows to colour: ``concept:<vocabulary>:<concept>``."""
    from backend.concepts.run import concepts_dir

    vocab = _vocabs(name)[0]
    stamp = (concepts_dir(name, paths.workspace()) / vocab / "summary.json").stat()
    names = _concept_names(name, vocab, stamp.st_mtime)
    if not names:
        return "shard"
    ss = st.session_state
    if ss.get(W_CONCEPT) not in names:
        ss[W_CONCEPT] = ss.get(CONCEPT) if ss.get(CONCEPT) in names else names[0]
    picked = st.selectbox(f"Concept ({vocab}, most frequent first)", names, key=W_CONCEPT)
    ss[CONCEPT] = picked
    return f"{BY_CONCEPT}:{vocab}:{picked}"


def cluster_picker(name: str, clusters: list[dict[str, Any]], sel: Selection) -> None:
    """A list of the clusters, with labels and sizes; picking one selects it."""
    current = sel.ranges.get(mapview.CLUSTER)
    picked = int(current[0]) if current and current[0] == current[1] else None
    ids = [c["cluster"] for c in clusters]
    if st.session_state.get(W_CLUSTER) != picked:
        st.session_state[W_CLUSTER] = picked if picked in ids else None
    by_id = {c["cluster"]: c for c in clusters}
    st.selectbox(
        "Select a cluster",
        ids,
        index=None,
        key=W_CLUSTER,
        format_func=lambda k: f"{k} · {by_id[k]['label']} ({fmt.num(by_id[k]['size'])} rows)",
        placeholder=f"pick one of {len(ids)} clusters, or click its label on the map",
        on_change=on_cluster_pick,
        args=(name,),
    )


def layout_note(name: str) -> None:
    """Which vectors and model laid the map out, from the map step's record (and the demo
    CLIP's note when it is that model): a layout by caption vectors groups captions, not
    pictures."""
    from backend.provenance import map_layout

    info = map_layout(name, paths.workspace())
    if info:
        st.caption(f":material/scatter_plot: {info['line']}"
                   + (f" · **{info['demo_note']}**" if info["demo_note"] else ""))  # fmt: skip


def sampled_note(pts: mapview.MapPoints) -> None:
    if pts.estimated:  # a filtered map of a big store: drawn from the build's row sample
        st.caption(
            f"About {fmt.num(pts.total)} rows, estimated (as is the shading) from the "
            f"build's row sample; {fmt.num(len(pts.row_id))} are drawn as points, 1 row in "
            f"{fmt.num(pts.every)} by hashed id. The count beside the map and the rows below "
            "are exact, over all rows."
        )
    elif pts.sampled:
        st.caption(
            f"{fmt.num(pts.total)} rows: the shading shows all of them; "
            f"{fmt.num(len(pts.row_id))} are drawn as points (of the rows whose hashed id "
            f"is 0 mod {pts.every}, about {PER_CELL} per 1/40 of the map's width where the "
            "shading is dark). Selections and counts always cover all rows."
        )


def side_panel(name: str, sel: Selection, total_rows: int) -> None:
    """The selection's count, its words, and a grid of its thumbnails."""
    con = state.connection(name)
    got = memo.quick_count(name, con, sel)
    matched = got.n
    store, mtime = str(state.store_file(name)), state.store_mtime(name)
    selection_bar.show_count(got, total_rows)
    if not mapview.marks(sel):
        st.caption("Drag a box or a lasso on the map, or click a cluster's label, to select.")
    else:
        with st.container(horizontal=True, gap="small"):
            st.button(
                "Clear map selection",
                icon=":material/deselect:",
                key="map-clear",
                on_click=_set,
                args=(name, mapview.context(sel)),
            )
            st.page_link(state.BROWSE_PAGE, label="Open in Browse", icon=":material/grid_view:")
    if matched == 0:
        st.info("No rows in this selection.", icon=":material/search_off:")
        return
    if mapview.marks(sel) or not sel.is_empty():
        terms = _terms(store, mtime, _key(sel), sel, name)
        if terms:
            st.markdown(terms_html(terms), unsafe_allow_html=True)
    rows = memo.page(name, con, sel, limit=GRID_ROWS)
    cards.grid(name, rows, GRID_COLS)


TERM_STYLE = (
    "display:inline-block;margin:0 .3rem .3rem 0;padding:.1rem .55rem;"
    "border-radius:999px;background:#eef0fd;color:#3b36b5;font-size:.82rem"
)


def terms_html(terms: list[str]) -> str:
    """The selection's distinctive caption words as chips."""
    chips = "".join(f'<span style="{TERM_STYLE}">{style.esc(t)}</span>' for t in terms)
    return (
        '<div class="ts-meta" style="height:auto;margin-bottom:.25rem" title="c-TF-IDF of a '
        "sample of the selection's captions against a sample of the whole dataset\">"
        f'WORDS THAT SET IT APART</div><div class="ts-terms">{chips}</div>'
    )


def needs_map(name: str) -> None:
    """No map yet: the command, and a button that builds it here when embeddings exist."""
    embedded = bool(state.embed_info(name).get("kinds"))
    with st.container(border=True, key="map-setup"):
        st.markdown(
            style.empty_html(
                "scatter_plot",
                "This dataset has no map yet",
                "The map places every row by its embedding and groups similar rows into "
                "labelled clusters. Build it with:"
                if embedded
                else "The map is made from embeddings, and this dataset has none yet. First "
                "embed it, then build the map:",
            ),
            unsafe_allow_html=True,
        )
        if not embedded:
            st.code(f"python -m backend embed {name}", language="bash")
        st.code(f"python -m backend map {name}", language="bash")
        if not shared.builds_allowed():
            shared.cli_instead(f"python -m backend map {name}")
            return
        if embedded and st.button("Build the map now", type="primary", key="map-build",
                                  icon=":material/play_arrow:"):  # fmt: skip
            _build(name)


def _build(name: str) -> None:
    try:
        from backend.map import build_map
    except ImportError:
        st.error("The map step is not installed in this version.", icon=":material/error:")
        return
    with st.status("Building the map…", expanded=True) as status:
        bar = st.progress(0.0)
        kwargs: dict[str, Any] = {}
        if "progress" in inspect.signature(build_map).parameters:

            def progress(phase: str, done: int, total: int) -> None:
                frac = done / total if total else 0.0
                bar.progress(min(max(frac, 0.0), 1.0), text=f"{phase} {done:,}/{total:,}")

            kwargs["progress"] = progress
        try:
            build_map(name, paths.workspace(), **kwargs)
        except Exception as e:  # noqa: BLE001 - shown, with the command to run it by hand
            status.update(label="The map could not be built", state="error")
            st.error(f"{type(e).__name__}: {e}", icon=":material/error:")
            return
        bar.progress(1.0)
        status.update(label="Map built", state="complete")
    st.rerun()
