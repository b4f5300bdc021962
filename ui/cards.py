"""The thumbnail grid and the detail dialog of one row."""

from __future__ import annotations

import base64
from collections.abc import Collection
from typing import Any

import streamlit as st

from backend import browse, media
from ui import fmt, shared, state
from ui.style import esc, icon, safe_href

THUMB_SIZE = 320  # longer side of grid thumbnails, in pixels (crisp on 2x screens)
PREVIEW_SIZE = 1280  # longer side of the image in the detail view
CAPTION_CHARS = 280  # the card clamps to two lines; the full caption is in the tooltip
OPEN = "ts.open_detail"  # set by a card's button; consumed when the dialog opens
DETAIL = "ts.detail_rid"  # the row the open dialog shows
PAGE_IDS = "ts.page_ids"  # row ids of the page on screen, for Previous/Next in the dialog
BLUR_CSS = (  # a blurred card's image (NSFW above the threshold) until its "Reveal" is on
    "<style>.ts-thumb.ts-blur{overflow:hidden;border-radius:.4rem}"
    ".ts-thumb.ts-blur img{filter:blur(22px) saturate(.6)}</style>"
)


def _image(row: dict[str, Any], size: int) -> tuple[bytes | None, str | None]:
    try:
        return media.thumb(row, size), None
    except media.MediaError as e:
        return None, str(e)
    except (OSError, ValueError) as e:  # undecodable after all (PIL raises OSError subclasses)
        return None, f"cannot decode the image: {e}"


@st.cache_data(max_entries=4000, show_spinner=False)
def thumb(
    store: str, row_id: int, mtime_ns: int, _row: dict[str, Any]
) -> tuple[bytes | None, str | None]:
    """Grid thumbnail as JPEG bytes (None for url-only rows) and an error text, cached per
    (store file, row id, store version); ``_row`` is not part of the key."""
    return _image(_row, THUMB_SIZE)


@st.cache_data(max_entries=64, show_spinner=False)
def preview(
    store: str, row_id: int, mtime_ns: int, _row: dict[str, Any]
) -> tuple[bytes | None, str | None]:
    return _image(_row, PREVIEW_SIZE)


# -- the grid ----------------------------------------------------------------------------------


def img_html(data: bytes, row: dict[str, Any], box: str = "ts-thumb") -> str:
    """JPEG bytes inline (a data URI) in a ``box`` div: no media request, on screen with the
    page's HTML (st.image's came ~1 s after the run ended on the demo's 48-card page)."""
    src = "data:image/jpeg;base64," + base64.b64encode(data).decode()
    return f'<div class="{box}"><img src="{src}" alt="{esc((row.get("caption") or "")[:200])}">'\
        "</div>"  # fmt: skip


def placeholder_html(row: dict[str, Any], error: str | None) -> str:
    if error:
        return (
            f'<div class="ts-ph ts-err">{icon("broken_image")}'
            f"<b>Image unavailable</b><span>{esc(error[:160])}</span></div>"
        )
    url = row.get("url")
    href = safe_href(url)
    link = (
        f'<a href="{esc(href)}" target="_blank" rel="noopener noreferrer nofollow">'
        f"{esc(str(url)[:120])}</a>"
        if href
        else esc(str(url or "")[:120])
    )
    return (
        f'<div class="ts-ph">{icon("link")}'
        f"<b>URL only · no image bytes</b><span>{link or 'no url either'}</span></div>"
    )


def _text_html(row: dict[str, Any], score_html: str = "") -> str:
    caption = row.get("caption")
    if caption:
        cap = f'<div class="ts-cap" title="{esc(caption)}">{esc(caption[:CAPTION_CHARS])}</div>'
    else:
        cap = '<div class="ts-cap ts-none">no caption</div>'
    meta = (
        f'<div class="ts-meta" title="key {esc(row.get("key"))}">{score_html}'
        f"<code>{esc(row.get('key'))}"
        f"</code> · {esc(fmt.dims(row.get('width'), row.get('height')))}"
        + (f" · {esc(str(row.get('format')).upper())}" if row.get("format") else "")
        + "</div>"
    )
    href = safe_href(row.get("url"))
    if href and row.get("storage") != "url":  # url-only cards show the url in the image box
        second = (
            f'<div class="ts-meta">{icon("link")}<a href="{esc(href)}" title="{esc(href)}" '
            f'target="_blank" rel="noopener noreferrer nofollow">{esc(href)}</a></div>'
        )
    else:
        second = (
            f'<div class="ts-meta" title="source shard">{icon("inventory_2")}'
            f"{esc(row.get('shard'))}</div>"
        )
    return f'<div class="ts-text">{cap}{meta}{second}</div>'


def open_detail(row_id: int) -> None:
    """Callback: open the detail dialog of ``row_id`` on this run."""
    st.session_state[OPEN] = int(row_id)


def _score_html(row: dict[str, Any], rank: int | None, label: str) -> str:
    """The rank and score of a search hit, or the value a sorted Browse page is sorted by
    (empty for a Browse card in row order)."""
    if "score" not in row:
        return ""
    score = float(row["score"])
    if isinstance(row["score"], int):  # a sorted Browse page's width, votes…: as it is
        shown = f"{row['score']:,}"
    elif abs(score) > 1:
        shown = f"{score:.1f}"
    elif score == 0 or abs(score) >= 0.1:
        shown = f"{score:.2f}"
    else:  # small scores (nsfw 0.004, text overlay 0.012): two significant digits, not 0.00
        shown = f"{score:.2g}"
    return (
        f'<span class="ts-score" title="#{rank or "?"} · {esc(label)}">'
        f"{f'<i>#{rank}</i>' if rank else ''}<b>{shown}</b></span>"
    )


def _similar_from_dialog(row_id: int) -> None:
    """Callback: "more like this" from the dialog, as a full rerun (a dialog's button reruns
    only the dialog), which closes it and switches to Search."""
    state.search_like(row_id)
    st.rerun()


def card(
    name: str,
    row: dict[str, Any],
    store: str,
    mtime_ns: int,
    similar: bool = False,
    rank: int | None = None,
    score_label: str = "score",
    blurred: bool = False,
) -> None:
    """One card; ``blurred``: the image is blurred (CSS) until the card's "Reveal" toggle is
    on (draw :data:`BLUR_CSS` once on the page: :func:`grid` does)."""
    rid = int(row["row_id"])
    reveal = f"reveal-{rid}"
    with st.container(border=True, key=f"card-{rid}"):
        data, error = thumb(store, rid, mtime_ns, row)
        hide = blurred and not st.session_state.get(reveal, False)
        picture = img_html(data, row, "ts-thumb ts-blur" if hide else "ts-thumb") if data \
            else placeholder_html(row, error)  # fmt: skip
        st.markdown(picture + _text_html(row, _score_html(row, rank, score_label)),
                    unsafe_allow_html=True)  # fmt: skip
        with st.container(horizontal=True, gap="xsmall", key=f"acts-{rid}"):
            st.button(
                "Details",
                key=f"detail-{rid}",
                icon=None if similar else ":material/open_in_full:",  # two fit without icons
                width="stretch",
                on_click=open_detail,
                args=(rid,),
            )
            if similar:
                st.button(
                    "≈ Similar",
                    key=f"similar-{rid}",
                    width="stretch",
                    help="More like this: images that look like this one",
                    on_click=state.search_like,
                    args=(rid,),
                )
        if blurred and data:
            st.toggle("Reveal", key=reveal, help="The image is blurred: NSFW score above the "
                      "threshold. Reveal shows it.")  # fmt: skip


def grid(
    name: str,
    rows: list[dict[str, Any]],
    ncols: int,
    score_label: str = "score",
    blurred: Collection[int] = (),
    ranked: bool = True,
    key: str = "tsgrid",
) -> None:
    """Cards in rows of ``ncols`` (every row is its own set of columns, so cards line up).

    Search hits (rows with a ``score``) show their rank (unless ``ranked`` is False) and score
    (``score_label`` says what the number is); every card has a "Similar" button when the
    dataset has image embeddings. Rows whose id is in ``blurred`` show a blurred image with a
    "Reveal" toggle. ``key`` names the grid's container (unique per page run).
    """
    store, mtime = str(state.store_file(name)), state.store_mtime(name)
    similar = state.has_image_vectors(name)
    st.session_state[PAGE_IDS] = [int(r["row_id"]) for r in rows]
    hidden = set(blurred)
    if hidden:
        st.html(BLUR_CSS)
    with st.container(key=key):
        for start in range(0, len(rows), ncols):
            cols = st.columns(ncols, gap="small")
            for i, (col, row) in enumerate(
                zip(cols, rows[start : start + ncols], strict=False), start=start + 1
            ):
                with col:
                    rank = i if "score" in row and ranked else None
                    card(name, row, store, mtime, similar, rank, score_label,
                         int(row["row_id"]) in hidden)  # fmt: skip
    maybe_open_detail(name)


# -- the detail view ---------------------------------------------------------------------------


def _source_html(row: dict[str, Any]) -> str:
    storage, path = row.get("storage"), shared.show_path(row.get("path"))  # no server path
    if storage == "tar":
        off, size = row.get("byte_offset") or 0, row.get("byte_size") or 0
        return (
            f"tar member at byte offset {off:,} ({esc(fmt.size(size))}) of <code>{esc(path)}</code>"
        )
    if storage == "file":
        return f"image file <code>{esc(path)}</code>"
    if storage == "parquet":
        return f"row {esc(row.get('src_row'))} of parquet <code>{esc(path)}</code>"
    return "none: the source gave only a URL (Tailscope never fetches from the web)"


def _step(delta: int) -> None:
    ids = st.session_state.get(PAGE_IDS) or []
    rid = st.session_state.get(DETAIL)
    if rid in ids:
        i = ids.index(rid) + delta
        if 0 <= i < len(ids):
            st.session_state[DETAIL] = ids[i]


def _facts_html(row: dict[str, Any]) -> str:
    items = [
        ("Size", esc(fmt.dims(row.get("width"), row.get("height")))),
        ("Format", esc((row.get("format") or "—").upper())),
        ("File size", esc(fmt.size(row.get("file_size")))),
        ("Shard", f"<code>{esc(row.get('shard'))}</code>"),
        ("Bytes", _source_html(row)),
    ]
    href = safe_href(row.get("url"))
    if href:
        items.append(
            (
                "URL",
                f'<a href="{esc(href)}" target="_blank" '
                f'rel="noopener noreferrer nofollow">{esc(href)}</a>',
            )
        )
    elif row.get("url"):
        items.append(("URL", esc(row.get("url"))))
    if row.get("sha256"):
        items.append(("SHA-256", f"<code>{esc(str(row['sha256'])[:16])}…</code>"))
    return (
        '<div class="ts-kv">'
        + "".join(f"<div>{k}</div><div>{v}</div>" for k, v in items)
        + ("</div>")
    )


@st.dialog("Row details", width="large")
def _detail(name: str) -> None:
    rid = st.session_state.get(DETAIL)
    con = state.connection(name)
    row = browse.row(con, rid)
    if row is None:
        st.warning(f"Row {rid} is no longer in `{name}` (was the dataset rebuilt?).")
        return
    _detail_head(rid, row)
    _detail_body(name, int(rid), row)
    _columns_table(name, row)


def _detail_head(rid: int, row: dict[str, Any]) -> None:
    """The row's key and its place on the page, with Previous/Next through the page's rows."""
    ids = st.session_state.get(PAGE_IDS) or []
    pos = ids.index(rid) if rid in ids else -1
    head, nav = st.columns([3, 2], vertical_alignment="center")
    head.markdown(
        f'<div class="ts-key">{esc(row.get("key"))} <span>row_id {rid}'
        + (f" · {pos + 1} of {len(ids)} on this page" if pos >= 0 else "")
        + "</span></div>",
        unsafe_allow_html=True,
    )
    with nav, st.container(horizontal=True, horizontal_alignment="right", gap="small"):
        st.button(
            "Previous",
            icon=":material/chevron_left:",
            key="dlg-prev",
            disabled=pos <= 0,
            on_click=_step,
            args=(-1,),
        )
        st.button(
            "Next",
            icon=":material/chevron_right:",
            icon_position="right",
            key="dlg-next",
            disabled=pos < 0 or pos >= len(ids) - 1,
            on_click=_step,
            args=(1,),
        )


def _detail_body(name: str, rid: int, row: dict[str, Any]) -> None:
    """The image (or its placeholder) beside the caption, facts and the row's actions."""
    left, right = st.columns([11, 9], gap="medium")
    with left:
        data, error = preview(str(state.store_file(name)), int(rid), state.store_mtime(name), row)
        if data:  # inline, like the cards: on screen with the dialog, no media request
            st.markdown(img_html(data, row, "ts-preview"), unsafe_allow_html=True)
        else:
            st.markdown(
                placeholder_html(row, error).replace('"ts-ph', '"ts-ph ts-ph-big'),
                unsafe_allow_html=True,
            )
    with right:
        st.markdown(
            '<div class="ts-meta" style="margin-bottom:.2rem">CAPTION</div>'
            f'<div class="ts-caption-full">{esc(row.get("caption")) or "—"}</div>',
            unsafe_allow_html=True,
        )
        st.markdown(_facts_html(row), unsafe_allow_html=True)
        with st.container(horizontal=True, gap="small"):
            if data:
                st.download_button(
                    "Download original",
                    data=lambda: media.image_bytes(row) or b"",
                    file_name=_file_name(row),
                    icon=":material/download:",
                    on_click="ignore",
                    key="dlg-download",
                )
            if state.has_image_vectors(name):
                st.button(
                    "Similar images",
                    icon=":material/image_search:",
                    key="dlg-similar",
                    help="More like this: images that look like this one",
                    on_click=_similar_from_dialog,
                    args=(int(rid),),
                )


def _columns_table(name: str, row: dict[str, Any]) -> None:
    """Every column of the row, with its type, as a small scrolling table: plain HTML, since
    a data grid costs its script's load and a canvas in each new dialog (bench/pages.py,
    "open details") for a few dozen short rows; the text stays selectable."""
    types = state.facts(name)["columns"]
    cells = "".join(
        f'<tr><td class="c">{esc(k)}</td><td class="v">'
        f"{'—' if v is None else esc(shared.show_path(v) if k == 'path' else str(v))}</td>"
        f'<td class="t">{esc(types.get(k, ""))}</td></tr>'
        for k, v in row.items()
    )  # the path relative to the workspace
    st.markdown(
        f'<div class="ts-meta" style="margin-top:.4rem">ALL {len(row)} COLUMNS</div>'
        '<div class="ts-cols"><table><thead><tr><th>Column</th><th>Value</th><th>Type</th>'
        f"</tr></thead><tbody>{cells}</tbody></table></div>",
        unsafe_allow_html=True,
    )


def _file_name(row: dict[str, Any]) -> str:
    ext = {"jpeg": "jpg"}.get((row.get("format") or "").lower(), row.get("format") or "bin")
    key = str(row.get("key") or row.get("row_id")).replace("/", "_")
    return f"{key}.{ext}"


def maybe_open_detail(name: str) -> None:
    """Open the dialog when a card's button asked for it (once; closing it ends it)."""
    rid = st.session_state.pop(OPEN, None)
    if rid is not None:
        st.session_state[DETAIL] = rid
        _detail(name)
