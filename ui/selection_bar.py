"""The compact bar above the grid: how many rows match, and one removable chip per part of the
Selection (filters, subset membership, SQL, sort, limit); every page that shows rows draws it."""

from __future__ import annotations

from collections.abc import Callable

import streamlit as st

from backend import exact_counts
from backend.exact_counts import Count
from backend.selection import BadSelection, Selection
from ui import fmt, state, style


def _parts(sel: Selection) -> list[tuple[str, Selection]]:
    """(label, the selection without that part) for every part; labels come from the backend."""
    return sel.parts()


def _set(name: str, sel: Selection) -> None:
    state.set_selection(name, sel)
    state.clear_filter_widgets()


def stop_bad_filter(name: str, error: Exception) -> None:
    """Say why the Selection cannot be applied, offer to clear it, and stop the page."""
    st.error(f"This filter cannot be applied: {error}", icon=":material/filter_alt_off:")
    st.button(
        "Clear filters",
        icon=":material/filter_alt_off:",
        on_click=state.clear_selection,
        args=(name,),
        key="bad-clear",
    )
    st.stop()


def clear_button(name: str, key: str) -> None:
    """A centred "Clear filters" button, for empty results."""
    _, mid, _ = st.columns([2, 1, 2])
    mid.button(
        "Clear filters",
        icon=":material/filter_alt_off:",
        type="primary",
        width="stretch",
        on_click=state.clear_selection,
        args=(name,),
        key=key,
    )


def count_html(matched: int | None, total: int, got: Count | None = None) -> str:
    """The count line; ``got`` an estimate: "≈" and, on hover and below, where it came from."""
    if matched is None:
        return f'<div class="ts-count"><span>{fmt.num(total)} rows</span></div>'
    if got is not None and not got.exact:
        note = style.esc(got.note)
        return (
            f'<div class="ts-count" title="{note}"><b>≈ {fmt.num(matched)}</b> <span>of '
            f"{fmt.num(total)} rows match (≈ {fmt.pct(matched, total)})</span>"
            f'<div class="ts-meta" style="height:auto;font-size:.78rem">{note}</div></div>'
        )
    if matched == total:
        return f'<div class="ts-count"><b>{fmt.num(total)}</b> <span>rows</span></div>'
    return (
        f'<div class="ts-count"><b>{fmt.num(matched)}</b> <span>of {fmt.num(total)} rows match '
        f"({fmt.pct(matched, total)})</span></div>"
    )


def show_count(got: Count, total: int) -> None:
    """The count line, polled until the exact count replaces an estimate."""
    st.markdown(count_html(got.n, total, got), unsafe_allow_html=True, width="content")
    if got.pending:
        _await_exact(got.job)


@st.fragment(run_every=1.0)
def _await_exact(job: str) -> None:
    """Each second while an exact count runs in the background (backend.exact_counts):
    nothing to draw; once it is in, the whole page reruns and shows it."""
    if exact_counts.finished(job):
        st.rerun()


def render(name: str, sel: Selection) -> None:
    """Chips for the parts of ``sel``; clicking one removes that filter."""
    parts = _parts(sel)
    if not parts:
        st.markdown(
            '<div class="ts-meta" style="height:auto">· no filters, every row</div>',
            unsafe_allow_html=True,
            width="content",
        )
        return
    with st.container(
        horizontal=True, key="selbar", gap="xsmall", vertical_alignment="center", width="content"
    ):
        for i, (label, rest) in enumerate(parts):
            st.button(
                label,
                key=f"selbar-{i}",
                icon=":material/close:",
                icon_position="right",
                help="Remove this filter",
                on_click=_set,
                args=(name, rest),
            )
        st.button(
            "Clear all",
            key="selbar-clear",
            type="tertiary",
            icon=":material/filter_alt_off:",
            on_click=state.clear_selection,
            args=(name,),
        )


def live(name: str, con, total: int, sel: Selection) -> Count | None:
    """The live row count (exact, or an estimate at first on a big store) and the chips in
    one row; None (with the reason shown) when the Selection cannot be applied."""
    from ui import memo

    try:
        got: Count | None = memo.quick_count(name, con, sel)
    except BadSelection as e:
        st.error(f"This selection cannot be applied: {e}", icon=":material/filter_alt_off:")
        got = None
    with st.container(horizontal=True, vertical_alignment="center", gap="small"):
        if got is not None:
            show_count(got, total)
        render(name, sel)
    return got


def live_view(name: str, con, total: int, sel: Selection, view: Callable[..., None]) -> None:
    """The live bar, then ``view(name, con, sel)``: the body of a page that analyses the
    Selection. A query past its time limit (backend.bounded) shows its message, not a crash."""
    live(name, con, total, sel)
    try:
        view(name, con, sel)
    except BadSelection as e:
        stop_bad_filter(name, e)
