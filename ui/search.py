"""The Search page's state and pieces: the query in session state, the cached run of it, the
capability banner, the query header and the friendly states for problems.

The query's canonical values live under ``ts.search.*`` (they survive page switches); the
widgets use ``w.search.*`` keys and are seeded from them.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

import streamlit as st

from backend.search import Result
from backend.selection import Selection
from ui import fmt, selection_bar, state, uploads
from ui.style import empty_html, esc, icon

MODE, TEXT, IMAGE, K = "ts.search.mode", "ts.search.text", "ts.search.image", "ts.search.k"
UPLOAD_REFUSED = "ts.search.refused"  # why the last upload was refused
LAST = "ts.search.last"  # {"key": …, "result": Result}: reruns (a dialog, a click) reuse it
W_MODE, W_TEXT, W_UPLOAD, W_K = "w.search.mode", "w.search.text", "w.search.upload", "w.search.k"

MODES = {
    "meaning": ":material/psychology: Meaning",
    "keywords": ":material/match_word: Keywords",
    "hybrid": ":material/join: Both",
    "image": ":material/image_search: Find look-alikes",
}
K_CHOICES = (12, 24, 48, 96)
IMAGE_TYPES = uploads.IMAGE_TYPES
SCORE_LABELS = {
    "meaning": "cosine similarity of the query and the caption (1 = same meaning)",
    "keywords": "BM25 relevance of the caption to the keywords",
    "hybrid": "reciprocal-rank fusion of the keyword and meaning ranks (higher = better in both)",
    "image": "cosine similarity of the image features (1 = same image)",
    "row": "cosine similarity of the image features (1 = same image)",
}
COMMAND = re.compile(r"`(python -m backend [^`]+)`")


# -- the query in session state ----------------------------------------------------------------


def seed() -> None:
    """Defaults for the canonical values, then the widgets seeded from them."""
    ss = st.session_state
    ss.setdefault(MODE, "meaning")
    ss.setdefault(TEXT, "")
    ss.setdefault(K, 24)
    for wkey, key in ((W_MODE, MODE), (W_TEXT, TEXT), (W_K, K)):
        if wkey not in ss:
            ss[wkey] = ss[key]


def on_mode() -> None:
    ss = st.session_state
    ss[MODE] = ss[W_MODE] or ss[MODE]
    ss.pop(state.LIKE_ROW, None)


def on_text() -> None:
    """The text box was submitted (Enter, or the Search button): a new text query."""
    ss = st.session_state
    ss[TEXT] = ss[W_TEXT]
    ss.pop(state.LIKE_ROW, None)


def on_upload() -> None:
    """A new query image: kept when its type, size and content pass, else refused with why."""
    ss = st.session_state
    up = ss.get(W_UPLOAD)
    ss.pop(UPLOAD_REFUSED, None)
    if up is None:
        ss.pop(IMAGE, None)
    else:
        data = up.getvalue()
        why = uploads.image_refusal(up.name, data)
        if why:
            ss.pop(IMAGE, None)
            ss[UPLOAD_REFUSED] = why
        else:
            ss[IMAGE] = {"name": up.name, "data": data, "preview": _preview(data)}
    ss.pop(state.LIKE_ROW, None)


def _preview(data: bytes) -> bytes | None:
    """A small JPEG of an upload for the query header; None when it is not an image (the
    search itself then says why)."""
    from backend.images import BadImage, probe, thumbnail

    try:
        probe(data)
        return thumbnail(data, 320)
    except (BadImage, OSError, ValueError):
        return None


def on_k() -> None:
    ss = st.session_state
    ss[K] = ss[W_K] or ss[K]


def clear_like() -> None:
    st.session_state.pop(state.LIKE_ROW, None)


def clear_image() -> None:
    st.session_state.pop(IMAGE, None)
    st.session_state.pop(W_UPLOAD, None)


def current() -> tuple[str, Any]:
    """(kind, query) to run: ``row`` (more like this) wins over the mode's own query; the
    query is None when there is nothing to search for yet."""
    ss = st.session_state
    if ss.get(state.LIKE_ROW) is not None:
        return "row", int(ss[state.LIKE_ROW])
    mode = ss[MODE]
    if mode == "image":
        return mode, ss.get(IMAGE)
    text = str(ss.get(TEXT) or "").strip()
    return mode, text or None


# -- running it --------------------------------------------------------------------------------


def run(name: str, kind: str, query: Any, k: int, sel: Selection) -> Result:
    """The search, or the result of the same search earlier in this session.

    Raises what the backend raises; the page turns that into a message.
    """
    ident = (
        hashlib.sha1(query["data"]).hexdigest() if kind == "image" else query
    )  # uploads by content
    key = (name, state.store_mtime(name), state.manifest_mtime(name), kind, ident, k, repr(sel))
    last = st.session_state.get(LAST)
    if last and last["key"] == key:
        return last["result"]
    s = state.searcher(name, ready_for=kind)
    with st.spinner("Searching…", show_time=True):
        if kind == "row":
            result = s.like_row(query, k, sel)
        elif kind == "meaning":
            result = s.text(query, k, sel)
        elif kind == "keywords":
            result = s.keywords(query, k, sel)
        elif kind == "hybrid":
            result = s.hybrid(query, k, sel)
        else:
            result = s.image(query["data"], k, sel)
    st.session_state[LAST] = {"key": key, "result": result}
    return result


def took(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.1f} s"


def summary_html(result: Result, within: int | None, total: int, text: str | None = None) -> str:
    """'24 results for “espresso” from captions (semantic…) in 38 ms', and what part of the
    dataset was searched."""
    n = len(result.hits)
    what = f" for “{esc(text)}”" if text else ""
    scope = (
        f" · within {fmt.num(within)} of {fmt.num(total)} rows"
        if within is not None and within != total
        else ""
    )
    return (
        f'<div class="ts-count"><b>{n:,}</b> <span>result{"s" if n != 1 else ""}{what} from '
        f"{esc(result.space)} in {took(result.seconds)}{scope}</span></div>"
    )


def provenance_md(result: Result) -> str | None:
    """Which vectors and model answered, e.g. "Searched image vectors of open_clip:…", with the
    demo CLIP's note where it did; None for results without a model."""
    from backend.provenance import SYNTHETIC_NOTE, demo_note, synthetic_phrase, vectors_phrase

    if not result.model:
        return None
    what = vectors_phrase(result.vectors, result.model) if result.vectors else result.model
    if SYNTHETIC_NOTE in result.notes:  # backend.synth_vectors: never "image vectors of" a model
        what = synthetic_phrase(result.model)
    if result.vectors and result.space.startswith("keywords"):  # hybrid: both lists fused
        what = f"caption keywords (BM25) and {what}"
    note = demo_note(result.model)
    return f":material/neurology: Searched {what}" + (f" · **{note}**" if note else "")


def shown_elsewhere(note: str) -> bool:
    """Notes the page already says: the CLIP banner, the demo CLIP's note (provenance line)."""
    from backend.democlip import DEMO_CLIP_NOTE
    from backend.provenance import SYNTHETIC_NOTE

    return note.startswith("Text→image search needs CLIP") or note in (SYNTHETIC_NOTE,) or (
        DEMO_CLIP_NOTE in note)  # fmt: skip


# -- what the page says ------------------------------------------------------------------------


def clip_banner(name: str, embed: dict[str, Any]) -> None:
    if embed.get("synthetic"):  # backend.synth_vectors: no CLIP pair, but not caption meaning
        st.info(
            f"**{name}'s image vectors are synthetic (bench only):** seeded random clusters in "
            "the demo CLIP's space, written by `python -m backend synth-vectors`, not embeddings "
            "of its rows' images. *Meaning* encodes your text with the demo CLIP and returns the "
            "rows of the nearest vectors: which rows means nothing, only how fast.",
            icon=":material/science:",
        )
        return
    if any(v.get("given_by_source") for v in embed.get("kinds", {}).values()):
        st.info(_shipped_banner(name, embed), icon=":material/info:")
        return
    why = embed.get("clip_unavailable") or "the dataset was embedded with the packaged models."
    why = why.strip().replace("[", "(").replace("]", ")")  # it goes inside :small[…]
    st.info(
        "**Text→image search needs CLIP, which this dataset was not embedded with.** So "
        "*Meaning* searches the captions' meaning (MiniLM sentence embeddings), not the pixels: "
        "an image whose caption misdescribes it will not be found this way.\n\n"
        f"**To get CLIP:** `python -m backend embed {name} --rebuild --clip-checkpoint PATH` "
        f"with a local open_clip weights file, or `python -m backend embed {name} --rebuild` "
        f"once with internet access.\n\n"
        f":small[**Why no CLIP:** {why}]",
        icon=":material/info:",
    )


def _shipped_banner(name: str, embed: dict[str, Any]) -> str:
    """What Meaning searches when the dataset's vectors were shipped with it (no CLIP pair)."""
    from backend.embedding_sets import words

    kinds = embed.get("kinds", {})
    img, text = kinds.get("img"), kinds.get("text")
    if img and not text:
        return (
            f"**{name} ships image vectors only** ({words(img)}). *Meaning* and *Both* need "
            "text vectors of the same model: name the model "
            f"(`python -m backend embeddings {name} --model ViT-B-32/openai`) so its text tower "
            f"can load, or compute caption vectors (`python -m backend embed {name}`: caption "
            "meaning, not pixels). **≈ Similar** on any card works now, from the shipped vectors."
        )
    return (
        f"**Image and caption vectors come from different models:** images {words(img or {})}; "
        f"captions {words(text or {})}. So *Meaning* searches the captions' meaning, not the "
        "pixels."
    )


def problem(message: str, setup: bool) -> None:
    """A search that could not run: the backend's message, and its command ready to copy.

    ``setup``: something must be built first (an error), else the query needs fixing (a
    warning).
    """
    show = st.error if setup else st.warning
    show(message, icon=":material/build:" if setup else ":material/edit:")
    for cmd in dict.fromkeys(COMMAND.findall(message)):
        st.code(cmd, language="bash")


def needs_embeddings(name: str) -> None:
    with st.container(border=True, key="search-setup"):
        st.markdown(
            empty_html(
                "model_training",
                "Search needs embeddings",
                f"<code>{esc(name)}</code> has no image or caption embeddings yet. Embedding "
                "also builds the vector and keyword indexes Search uses (a few minutes for "
                "thousands of rows on a CPU).",
            ),
            unsafe_allow_html=True,
        )
        _, mid, _ = st.columns([1, 2, 1])
        mid.code(f"python -m backend embed {name}", language="bash")


def prompt(kind: str, rows: int) -> None:
    """The state before the first query of a mode."""
    body = {
        "meaning": "Describe what you are looking for in your own words, e.g. "
        "<i>a cup of espresso</i>; the closest captions come first, even without a shared "
        "word.",
        "keywords": "Exact words in the captions, ranked by BM25. Quote a phrase, "
        "<code>+</code> a word that must appear, <code>-</code> one that must not, and end "
        "a word with <code>*</code> for any ending.",
        "hybrid": "Words and meaning together: rows that rank well by both keywords (BM25) "
        "and caption meaning come first (reciprocal-rank fusion).",
        "image": "Drop an image above to find the rows whose images look like it: "
        "near-duplicates, re-encodes and crops come first.",
    }[kind]
    title = "Upload an image to search" if kind == "image" else "Type something to search for"
    with st.container(border=True, key="search-prompt"):
        st.markdown(
            empty_html(
                "image_search" if kind == "image" else "search",
                title,
                f"Searching {fmt.num(rows)} rows of this dataset, within the filters in the "
                f"sidebar. {body}",
            ),
            unsafe_allow_html=True,
        )


def no_results(name: str, kind: str, filtered: bool) -> None:
    why = {
        "keywords": "No caption matches these keywords.",
        "row": "No other row is left to compare with.",
    }.get(kind, "Nothing was found.")
    tip = " The filters in the sidebar may be hiding matches: loosen or clear them." if filtered \
        else " Try other words, or the other search mode."  # fmt: skip
    with st.container(border=True, key="search-none"):
        st.markdown(empty_html("search_off", "No results", esc(why + tip)), unsafe_allow_html=True)
        if filtered:
            selection_bar.clear_button(name, "search-none-clear")


def _head(key: str, image: bytes | None, placeholder: str, text_html: str) -> Any:
    """A bordered header: the query image, its text, and a column for buttons (returned)."""
    with st.container(border=True, key=key):
        pic, text, acts = st.columns([1.4, 7, 1.8], vertical_alignment="center")
        with pic, st.container(key=f"qimg-{key}"):
            if image:
                st.image(image, width="content")
            else:
                st.markdown(placeholder, unsafe_allow_html=True)
        text.markdown(text_html, unsafe_allow_html=True)
    return acts


def like_row_head(name: str, rid: int, row: dict[str, Any] | None) -> None:
    """'Images like row 571' with the row's image and caption, at the top of the results."""
    from ui import cards

    if row is None:
        st.warning(f"Row {rid} is not in `{name}` (was the dataset rebuilt?).")
        st.button("Back to search", icon=":material/arrow_back:", on_click=clear_like)
        return
    data, error = cards.thumb(str(state.store_file(name)), rid, state.store_mtime(name), row)
    caption = row.get("caption") or ""
    acts = _head(
        "qhead-row",
        data,
        cards.placeholder_html(row, error),
        '<div class="ts-qhead">More like this</div>'
        f'<div class="ts-qtitle">Images like row {rid}</div>'
        f'<div class="ts-qcap">{esc(caption) or "<i>no caption</i>"}</div>'
        f'<div class="ts-meta"><code>{esc(row.get("key"))}</code> · '
        f"{esc(fmt.dims(row.get('width'), row.get('height')))} · {esc(row.get('shard'))}</div>",
    )
    with acts:
        st.button(
            "Details",
            icon=":material/open_in_full:",
            key="qhead-detail",
            width="stretch",
            on_click=cards.open_detail,
            args=(rid,),
        )
        st.button(
            "New search",
            icon=":material/close:",
            key="qhead-clear",
            width="stretch",
            on_click=clear_like,
            help="Leave “more like this” and go back to your own query",
        )


def upload_head(image: dict[str, Any]) -> None:
    size = fmt.size(len(image["data"]))
    acts = _head(
        "qhead-upload",
        image.get("preview"),
        f'<div class="ts-ph ts-err">{icon("broken_image")}<b>Not an image</b></div>',
        '<div class="ts-qhead">Find look-alikes</div>'
        '<div class="ts-qtitle">Images like your upload</div>'
        f'<div class="ts-meta"><code>{esc(image["name"])}</code> · {esc(size)}</div>',
    )
    acts.button(
        "Remove",
        icon=":material/close:",
        key="qhead-remove",
        width="stretch",
        on_click=clear_image,
    )
