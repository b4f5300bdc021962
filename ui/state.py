"""Session state shared by every page: the active dataset, its Selection and the page cursor,
plus the cached read-only connection and summary of a dataset's store.

Canonical values live under ``ts.*`` keys; widgets use their own ``w.*`` keys and are seeded
from the canonical values each time they are drawn, so state survives page switches (Streamlit
drops the state of widgets that a page does not draw).
"""

from __future__ import annotations

import atexit
import gc
import threading
from pathlib import Path
from typing import Any

import duckdb
import streamlit as st
from streamlit.errors import StreamlitAPIException

from backend import browse, catalog, paths, rowfetch
from backend.embedding_sets import describe
from backend.search import Searcher
from backend.selection import BadSelection, Selection
from backend.store import parquet_parts
from ui import style
from ui.selection_url import decode_selection, encode_selection

DATASET = "ts.dataset"
SELECTIONS = "ts.selections"  # dataset name -> Selection
CURSOR = "ts.cursor"  # {"after": row_id} or {"before": row_id}
PAGE_NO = "ts.page_no"
W_DATASET = "w.dataset"
FILTER_PREFIX = "w.f."  # keys of the filter widgets on Browse
LIKE_ROW = "ts.search.row"  # row id of a "more like this" query; the Search page runs it
LAST_PAGE = "ts.last_page"  # the page of the previous run
GOTO = "ts.goto"  # a page a callback asked for (callbacks cannot switch pages themselves)

HOME_PAGE = "app.py"
BROWSE_PAGE = "pages/1_Browse.py"
SEARCH_PAGE = "pages/2_Search.py"
MAP_PAGE = "pages/3_Map.py"
CONCEPTS_PAGE = "pages/4_Concepts.py"
SAFETY_PAGE = "pages/5_Safety.py"
IMPACT_PAGE = "pages/6_Impact.py"
MIXTURE_PAGE = "pages/7_Mixtures.py"
SUBSETS_PAGE = "pages/8_Subsets.py"
EXPORT_PAGE = "pages/9_Export.py"
NAV = (
    (HOME_PAGE, "Datasets", ":material/dataset:"),
    (BROWSE_PAGE, "Browse", ":material/grid_view:"),
    (SEARCH_PAGE, "Search", ":material/search:"),
    (MAP_PAGE, "Map", ":material/scatter_plot:"),
    (CONCEPTS_PAGE, "Concepts", ":material/hub:"),
    (SAFETY_PAGE, "Safety", ":material/shield:"),
    (IMPACT_PAGE, "Impact", ":material/balance:"),
    (MIXTURE_PAGE, "Mixtures", ":material/tune:"),
    (SUBSETS_PAGE, "Subsets", ":material/bookmarks:"),
    (EXPORT_PAGE, "Export", ":material/download:"),
)


def go_to(page: str) -> None:
    """From a callback: switch to ``page`` at the start of the next run."""
    st.session_state[GOTO] = page


def setup_page(title: str, page: str) -> None:
    """Page config, theme CSS and the sidebar navigation; call first on every page (``page``:
    this page's path). Follows a switch to another page that a callback asked for."""
    target = st.session_state.pop(GOTO, None)
    if target and target != page:
        st.switch_page(target)
    if st.session_state.get(LAST_PAGE) != page:
        # Streamlit does not carry a widget's value to another page reliably (a value seeded
        # through session state was dropped on the switch, a typed one kept): on arrival,
        # every filter widget re-seeds from the canonical Selection instead.
        st.session_state[LAST_PAGE] = page
        clear_filter_widgets()
    st.set_page_config(
        page_title=f"{title} · Tailscope" if title != "Tailscope" else title,
        page_icon="🔭",
        layout="wide",
        initial_sidebar_state="expanded",
    )
    style.inject()
    with st.sidebar:
        st.html(style.brand_html())
        for path, label, icon in NAV:
            if not (paths.REPO_ROOT / path).is_file():
                continue
            try:
                st.page_link(path, label=label, icon=icon)
            except StreamlitAPIException:  # a page run on its own (tests): no other pages known
                break


# -- the store ---------------------------------------------------------------------------------


def store_file(name: str) -> Path:
    return paths.store_path(name, paths.workspace())


def store_mtime(name: str) -> int:
    try:
        return store_file(name).stat().st_mtime_ns
    except FileNotFoundError:
        return 0


class _Connections:
    """One read-only connection per store file, shared by every session of the server.

    Each build has its own store file (``store.duckdb`` is a symlink to it), so when the
    store's mtime changes a new connection is opened; the old one is dropped, not closed, so
    queries other sessions are running on it finish on the old file.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.held: dict[str, tuple[int, duckdb.DuckDBPyConnection]] = {}

    def cursor(self, name: str, store: Path, mtime_ns: int) -> duckdb.DuckDBPyConnection:
        from backend.store import connect

        key = str(store)
        with self.lock:
            held = self.held.get(key)
            if held is None or held[0] != mtime_ns:
                self.held[key] = (mtime_ns, connect(name, store.parent.parent))
            return self.held[key][1].cursor()


@st.cache_resource(show_spinner=False)
def _connections() -> _Connections:
    return _Connections()


@atexit.register
def _drop_cached_connections() -> None:
    """Close the cached store connections before the interpreter tears modules down: DuckDB's
    binding (nanobind) otherwise lists every object still alive then as a "leak" on stderr,
    a page of noise at the end of every pytest run and server stop."""
    try:
        st.cache_resource.clear()
    except Exception:  # noqa: BLE001 - exiting: nothing left to tell anyone
        pass
    gc.collect()


def connection(name: str) -> duckdb.DuckDBPyConnection:
    """A cursor on the shared connection of ``name``'s store (one cursor per script run).

    Raises :class:`backend.store.StoreMissing` when the dataset is not built. Every query on
    it is bounded in time and memory (:mod:`backend.bounded`).
    """
    from backend import bounded

    return bounded.wrap(_connections().cursor(name, store_file(name), store_mtime(name)))


@st.cache_data(max_entries=64, show_spinner=False)
def _summary(name: str, store: str, mtime_ns: int) -> dict[str, Any]:
    return catalog.summary(name, Path(store).parent.parent)


def summary(name: str) -> dict[str, Any]:
    connection(name).close()  # first retire a stale connection, or the summary reads old data
    return _summary(name, str(store_file(name)), store_mtime(name))


@st.cache_data(max_entries=64, show_spinner=False)
def _facts(name: str, store: str, mtime_ns: int) -> dict[str, Any]:
    """Column facts the filter widgets need, read once per store version."""
    con = connection(name)
    numeric = browse.numeric_columns(con)
    # a view of exactly the parquet shards (no column files): ranges from their footers
    files = parquet_parts(name, Path(store).parent.parent) if rowfetch.layout(con) is None else []
    ranges = browse.column_ranges(con, numeric, files or None)
    return {
        "columns": browse.columns(con),
        "numeric": numeric,
        "ranges": ranges,
        "shards": browse.shard_counts(con),
    }


def facts(name: str) -> dict[str, Any]:
    return _facts(name, str(store_file(name)), store_mtime(name))


def manifest_mtime(name: str) -> int:
    try:
        return paths.manifest_path(name, paths.workspace()).stat().st_mtime_ns
    except FileNotFoundError:
        return 0


@st.cache_data(max_entries=64, show_spinner=False)
def _embed_info(name: str, root: str, mtime_ns: int) -> dict[str, Any]:
    return describe(name, Path(root))


def embed_info(name: str) -> dict[str, Any]:
    """The embed step's record of ``name`` (empty before it ran), read once per manifest."""
    return _embed_info(name, str(paths.workspace()), manifest_mtime(name))


def has_image_vectors(name: str) -> bool:
    """Whether "more like this" can run: the dataset has image embeddings."""
    return bool(embed_info(name).get("kinds", {}).get("img"))


@st.cache_resource(max_entries=8, show_spinner=False)
def _searcher(name: str, root: str, store_mtime_ns: int, manifest_mtime_ns: int) -> Searcher:
    return Searcher(name, Path(root))


def _tiny_png() -> bytes:
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (8, 8), "gray").save(out, format="PNG")
    return out.getvalue()


@st.cache_resource(
    max_entries=32, show_spinner="Loading the search model and index (once per server)…"
)
def _warm(name: str, root: str, store_mtime_ns: int, manifest_mtime_ns: int, kind: str) -> bool:
    """Load what a kind of query needs by running a throwaway one, so that the first real
    query's latency is the query's own. Errors are not cached: the real query reports them."""
    s = _searcher(name, root, store_mtime_ns, manifest_mtime_ns)
    if kind in ("meaning", "hybrid"):
        s.text("warm up", k=1)
    elif kind == "row":
        s.like_row(0, k=1)
    elif kind == "image":
        s.image(_tiny_png(), k=1)
    return True  # keywords: the index opens in milliseconds


def searcher(name: str, ready_for: str | None = None) -> Searcher:
    """The dataset's Searcher, shared by every session of the server; its models and indexes
    load once (with a spinner, for the kind of query ``ready_for`` names) and stay loaded
    until the store or the manifest changes."""
    key = (name, str(paths.workspace()), store_mtime(name), manifest_mtime(name))
    if ready_for:
        try:
            _warm(*key, ready_for)
        except Exception:  # noqa: BLE001 - the real query raises it again, with its message
            pass
    return _searcher(*key)


def search_like(row_id: int) -> None:
    """Callback: show the rows like ``row_id`` on the Search page (switching to it)."""
    st.session_state[LIKE_ROW] = int(row_id)
    go_to(SEARCH_PAGE)


# -- the active dataset ------------------------------------------------------------------------


def datasets() -> list[str]:
    return paths.list_datasets(paths.workspace())


def set_active(name: str) -> None:
    """Make ``name`` active (from a callback): the picker is re-seeded on the next run."""
    if st.session_state.get(DATASET) != name:
        st.session_state[DATASET] = name
        clear_filter_widgets()
        reset_cursor()
    st.session_state.pop(W_DATASET, None)


def _on_pick() -> None:
    set_active(st.session_state[W_DATASET])


def _shown(path: Path) -> str:
    from ui.shared import show_path  # relative, or in full with TAILSCOPE_SHOW_PATHS=1

    return show_path(path)


def dataset_picker() -> str | None:
    """The sidebar selector of the active dataset; returns its name, or None if there is none."""
    names = datasets()
    ss = st.session_state
    with st.sidebar:
        if not names:
            st.caption(f"No datasets in `{_shown(paths.workspace())}` yet.")
            return None
        if ss.get(DATASET) not in names:
            wanted = st.query_params.get(URL_DATASET) or st.query_params.get("dataset")
            ss[DATASET] = wanted if wanted in names else names[0]
            clear_filter_widgets()
            reset_cursor()
            if wanted == ss[DATASET] and URL_SELECTION in st.query_params:
                _selection_from_url(ss[DATASET], st.query_params[URL_SELECTION])
        if ss.get(W_DATASET) not in names:
            ss[W_DATASET] = ss[DATASET]
        st.selectbox(
            "Active dataset",
            names,
            key=W_DATASET,
            on_change=_on_pick,
            help="Shared by every page. Add datasets with `python -m backend build`.",
        )
        name = ss[DATASET]
        st.caption(f"Workspace `{_shown(paths.workspace())}`")
    if st.query_params.get(URL_DATASET) != name:
        st.query_params[URL_DATASET] = name
    if "dataset" in st.query_params:  # the old name of the parameter
        del st.query_params["dataset"]
    return name


# -- the page address: ?ds=NAME&sel=<recipe> reopens the same view -----------------------------

URL_DATASET, URL_SELECTION = "ds", "sel"
URL_NOTE = "ts.url_note"  # why the address does not hold the whole Selection, when it does not


def _selection_from_url(name: str, token: str) -> None:
    try:
        sel = decode_selection(token)
    except BadSelection as e:
        st.toast(f"Could not reopen the linked selection: {e}", icon=":material/link_off:")
        return
    st.session_state.setdefault(SELECTIONS, {})[name] = sel


def _write_url(sel: Selection) -> None:
    token, note = encode_selection(sel)
    st.session_state[URL_NOTE] = note
    try:
        if not token or token == "e30":  # {} : no selection, no parameter
            if URL_SELECTION in st.query_params:
                del st.query_params[URL_SELECTION]
        elif st.query_params.get(URL_SELECTION) != token:
            st.query_params[URL_SELECTION] = token
    except StreamlitAPIException:  # outside a script run: the next run writes it
        pass


# -- the selection and the cursor --------------------------------------------------------------


def selection(name: str) -> Selection:
    return st.session_state.setdefault(SELECTIONS, {}).get(name) or Selection()


def set_selection(name: str, sel: Selection) -> None:
    """Store ``sel`` for ``name``; a changed selection starts again at the first page."""
    sels = st.session_state.setdefault(SELECTIONS, {})
    if sels.get(name) != sel:
        sels[name] = sel
        reset_cursor()
    if st.session_state.get(DATASET) == name:
        _write_url(sel)


def clear_filter_widgets() -> None:
    for key in [k for k in st.session_state if str(k).startswith(FILTER_PREFIX)]:
        del st.session_state[key]


def clear_selection(name: str) -> None:
    """Callback: drop every filter of ``name``."""
    set_selection(name, Selection())
    clear_filter_widgets()


def reset_cursor() -> None:
    st.session_state[CURSOR] = {"after": -1}
    st.session_state[PAGE_NO] = 1
