"""Search: rows by caption meaning, by keywords, like an uploaded image, or like a row, always
within the filters of the sidebar (the same Selection as Browse)."""

from __future__ import annotations

import streamlit as st

from backend import browse
from backend.index import VectorIndexError
from backend.keyword_errors import KeywordIndexMissing, KeywordQueryError
from backend.models import ModelUnavailable
from backend.search import SearchError
from backend.selection import BadSelection
from ui import cards, page, pager, search, selection_bar, state, style, uploads

name, con, info, sel = page.open_dataset(
    "Search", state.SEARCH_PAGE, "Find rows by meaning, keywords or a look-alike image.", "search"
)
embed = state.embed_info(name)
search.seed()
ss = st.session_state

head, tools = st.columns([3, 2], vertical_alignment="bottom")
with head:
    style.hero(
        f"Search · {name}",
        "By caption meaning, by keywords, or by a look-alike image, within the sidebar filters.",
    )
with tools, st.container(horizontal=True, horizontal_alignment="right", gap="medium"):
    st.segmented_control(
        "Results", search.K_CHOICES, key=search.W_K, on_change=search.on_k, required=True
    )

if not embed.get("kinds"):
    search.needs_embeddings(name)
    st.stop()

st.segmented_control(
    "Search by",
    list(search.MODES),
    format_func=search.MODES.get,
    key=search.W_MODE,
    on_change=search.on_mode,
    required=True,
    label_visibility="collapsed",
)
mode = ss[search.MODE]
if mode == "image":
    st.file_uploader(
        "Find look-alikes of an image",
        type=search.IMAGE_TYPES,
        key=search.W_UPLOAD,
        on_change=search.on_upload,
        max_upload_size=uploads.IMAGE_MB,
        help="The image stays on this server, in your session only.",
    )
    if ss.get(search.UPLOAD_REFUSED):
        st.error(ss[search.UPLOAD_REFUSED], icon=":material/broken_image:")
else:
    with st.container(horizontal=True, vertical_alignment="bottom", gap="small"):
        st.text_input(
            "Query",
            key=search.W_TEXT,
            on_change=search.on_text,
            placeholder="describe it, e.g. a cup of espresso"
            if mode == "meaning"
            else 'words or "a phrase", e.g. "grace hopper"',
            label_visibility="collapsed",
            icon=":material/search:",
        )
        st.button("Search", type="primary", key="search-go", on_click=search.on_text)
    if mode == "keywords":
        st.markdown(
            '<div class="ts-hint">Syntax: <code>"exact phrase"</code> <code>+must</code> '
            "<code>-not</code> <code>prefix*</code> · every other word may match, best first"
            "</div>",
            unsafe_allow_html=True,
        )
    elif not embed.get("cross_modal"):
        search.clip_banner(name, embed)

kind, query = search.current()
k = int(ss[search.K])
if kind == "row":
    search.like_row_head(name, query, browse.row(con, query))
elif kind == "image" and query:
    search.upload_head(query)

if query is None:
    search.prompt(kind, info["rows"])
    st.stop()

try:
    result = search.run(name, kind, query, k, sel)
except BadSelection as e:
    selection_bar.stop_bad_filter(name, e)
except (SearchError, KeywordQueryError) as e:
    search.problem(str(e), setup="python -m backend" in str(e))
    st.stop()
except (VectorIndexError, KeywordIndexMissing, ModelUnavailable, FileNotFoundError) as e:
    search.problem(str(e), setup=True)
    st.stop()

try:
    within = None if sel.is_empty() else browse.count(con, sel)
except BadSelection as e:  # a filter that ran past its time limit (backend.bounded)
    selection_bar.stop_bad_filter(name, e)
with st.container(horizontal=True, vertical_alignment="center", gap="small"):
    st.markdown(
        search.summary_html(
            result, within, info["rows"], query if isinstance(query, str) else None
        ),
        unsafe_allow_html=True,
        width="content",
    )
    selection_bar.render(name, sel)
if provenance := search.provenance_md(result):
    st.caption(provenance)
for note in result.notes:
    if not search.shown_elsewhere(note):  # the banner above already says it, with what to do
        st.caption(note)
if sel.sort.strip():  # the chip says "sorted by …": say what it does not order here
    st.caption(f"Results are ranked by the search's score. The sort ({pager.sort_label(sel.sort)}) "
               "orders Browse, Export and saved subsets, not these results.")  # fmt: skip

if not result.hits:
    search.no_results(name, kind, filtered=not sel.is_empty())
    cards.maybe_open_detail(name)
    st.stop()
cards.grid(name, result.hits, int(ss.get("ts.grid_cols", 6)), search.SCORE_LABELS[kind])
