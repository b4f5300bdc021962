"""The compact bar above the grid: how many rows match, and one removable chip per filter."""

from __future__ import annotations

from dataclasses import replace

import streamlit as st

from backend.selection import Selection
from ui import fmt, state


def _parts(sel: Selection) -> list[tuple[str, Selection]]:
    """(label, the selection without that part) for every part; labels come from the backend."""
    out: list[tuple[str, Selection]] = []
    words = sel.text.split()
    for i, w in enumerate(words):
        label = Selection(text=w).describe()[0]
        out.append((label, replace(sel, text=" ".join(words[:i] + words[i + 1 :]))))
    for col, r in sorted(sel.ranges.items()):
        label = Selection(ranges={col: r}).describe()[0]
        rest = {c: v for c, v in sel.ranges.items() if c != col}
        out.append((label, replace(sel, ranges=rest)))
    if sel.shards:
        label = Selection(shards=sel.shards).describe()[0]
        out.append((label, replace(sel, shards=[])))
    if sel.keywords.strip():
        label = Selection(keywords=sel.keywords).describe()[0]
        out.append((label, replace(sel, keywords="", keyword_ids=None)))
    if sel.polygon:
        out.append((Selection(polygon=sel.polygon).describe()[0], replace(sel, polygon=())))
    return out


def _set(name: str, sel: Selection) -> None:
    state.set_selection(name, sel)
    state.clear_filter_widgets()


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


def count_html(matched: int | None, total: int) -> str:
    if matched is None:
        return f'<div class="ts-count"><span>{fmt.num(total)} rows</span></div>'
    if matched == total:
        return f'<div class="ts-count"><b>{fmt.num(total)}</b> <span>rows</span></div>'
    return (
        f'<div class="ts-count"><b>{fmt.num(matched)}</b> <span>of {fmt.num(total)} rows match '
        f"({fmt.pct(matched, total)})</span></div>"
    )


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
