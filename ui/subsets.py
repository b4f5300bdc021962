"""The Subsets page's parts: save the Selection, the list with its actions, set operations and a
side-by-side comparison. Every action goes through :mod:`backend.subsets`; errors are shown
inline and nothing is changed when an action fails."""

from __future__ import annotations

from typing import Any

import streamlit as st

from backend import paths, subsets
from backend.exact_counts import Count
from backend.selection import Selection
from ui import fmt, state

K_NAME, K_NOTE = "w.sub.name", "w.sub.note"
K_PICK, K_NEW_NAME = "w.sub.pick", "w.sub.rename"
K_A, K_B, K_OP, K_AS = "w.sub.a", "w.sub.b", "w.sub.op", "w.sub.as"
K_CMP_A, K_CMP_B, K_CMP_COL = "w.sub.cmp_a", "w.sub.cmp_b", "w.sub.cmp_col"
FLASH = "ts.sub.flash"  # (kind, message) shown once on the next run
OP_LABELS = {"union": "A ∪ B  (either)", "intersection": "A ∩ B  (both)",
             "difference": "A − B  (A, not B)"}  # fmt: skip


def _flash(kind: str, message: str) -> None:
    st.session_state[FLASH] = (kind, message)


def show_flash() -> None:
    kind, message = st.session_state.pop(FLASH, (None, None))
    if kind == "success":
        st.success(message, icon=":material/check_circle:")
    elif kind == "error":
        st.error(message, icon=":material/error:")


def _root():
    return paths.workspace()


# -- callbacks (they run before the page redraws, so the list is fresh) -----------------------


def _save(name: str, sel: Selection) -> None:
    ss = st.session_state
    subset, note = (ss.get(K_NAME) or "").strip(), (ss.get(K_NOTE) or "").strip()
    if not subset:
        _flash("error", "Give the subset a name.")
        return
    try:
        s = subsets.save(name, subset, sel, _root(), note=note)
    except ValueError as e:
        _flash("error", f"Not saved: {e}")
        return
    ss[K_NAME] = ss[K_NOTE] = ""
    ss[K_PICK] = s.name
    _flash("success", f"Saved subset **{s.name}**: {fmt.num(s.count)} rows.")


def _use(name: str, subset: str) -> None:
    state.set_selection(name, Selection(subsets_all=[subset]))
    state.clear_filter_widgets()
    state.go_to(state.BROWSE_PAGE)


def _rename(name: str, subset: str) -> None:
    new = (st.session_state.get(K_NEW_NAME) or "").strip()
    try:
        subsets.rename(name, subset, new, _root())
    except ValueError as e:
        _flash("error", f"Not renamed: {e}")
        return
    st.session_state[K_PICK] = new
    st.session_state[K_NEW_NAME] = ""
    _flash("success", f"Renamed **{subset}** to **{new}**.")


def _delete(name: str, subset: str) -> None:
    try:
        subsets.delete(name, subset, _root())
    except ValueError as e:
        _flash("error", f"Not deleted: {e}")
        return
    st.session_state.pop(K_PICK, None)
    _flash("success", f"Deleted subset **{subset}**.")


def _combine(name: str) -> None:
    ss = st.session_state
    a, b, op, new = ss.get(K_A), ss.get(K_B), ss.get(K_OP), (ss.get(K_AS) or "").strip()
    if not new:
        _flash("error", "Give the new subset a name.")
        return
    try:
        s = subsets.combine(name, a, b, op, new, _root())
    except ValueError as e:
        _flash("error", f"Not combined: {e}")
        return
    ss[K_AS] = ""
    ss[K_PICK] = s.name
    _flash("success", f"Saved **{s.name}** = {a} {op} {b}: {fmt.num(s.count)} rows.")


# -- drawing -----------------------------------------------------------------------------------


def save_form(name: str, sel: Selection, matched: Count | None) -> None:
    """Name + note + Save for the current Selection."""
    with st.container(border=True):
        st.markdown("##### Save the current selection")
        what = "every row" if sel.is_empty() else ", ".join(sel.describe())
        about = "" if matched is None or matched.exact else "≈ "
        rows = "" if matched is None else f" · {about}{fmt.num(matched.n)} rows"
        st.caption(f"{what}{rows}")
        with st.container(horizontal=True, vertical_alignment="bottom", gap="small"):
            st.text_input("Subset name", key=K_NAME, placeholder="e.g. wide_cats", max_chars=64)
            st.text_input("Note", key=K_NOTE, placeholder="why these rows (optional)")
            st.button(
                "Save subset",
                key="sub-save",
                icon=":material/bookmark_add:",
                type="primary",
                disabled=matched is None,
                on_click=_save,
                args=(name, sel),
            )


def table(found: list[subsets.Subset]) -> None:
    rows = [
        {
            "Subset": s.name,
            "Rows": s.count,
            "Created": fmt.when(s.created),
            "Note": s.note,
            "Build": "older build ⚠" if s.stale else "current",
            "Recipe": ", ".join(s.selection.describe()) or "every row",
        }
        for s in found
    ]
    st.dataframe(rows, hide_index=True, width="stretch")


def actions(name: str, found: list[subsets.Subset]) -> None:
    """Pick one subset: use it as the selection, rename it, delete it."""
    names = [s.name for s in found]
    if st.session_state.get(K_PICK) not in names:
        st.session_state[K_PICK] = names[0]
    with st.container(horizontal=True, vertical_alignment="bottom", gap="small"):
        picked = st.selectbox("Subset", names, key=K_PICK, width=260)
        st.button(
            "Use as selection",
            key="sub-use",
            icon=":material/filter_alt:",
            type="primary",
            on_click=_use,
            args=(name, picked),
            help="Show these rows on Browse (and every page): the selection becomes 'in subset …'.",
        )
        with st.popover("Rename", icon=":material/edit:"):
            st.text_input("New name", key=K_NEW_NAME)
            st.button("Rename", key="sub-rename", on_click=_rename, args=(name, picked))
        with st.popover("Delete", icon=":material/delete:"):
            st.markdown(f"Delete subset **{picked}**? Its saved row ids are removed for good.")
            st.button(
                f"Delete {picked}",
                key="sub-delete",
                type="primary",
                on_click=_delete,
                args=(name, picked),
            )
    s = next(x for x in found if x.name == picked)
    if s.stale:
        st.warning(
            f"**{s.name}** was saved on an older build of this dataset. Its row ids are kept, but "
            "they may now point at other rows: check, or save it again from its recipe.",
            icon=":material/warning:",
        )


def combine_form(name: str, names: list[str]) -> None:
    if len(names) < 2:
        st.caption("Save two subsets to combine them.")
        return
    st.session_state.setdefault(K_OP, "union")
    with st.container(horizontal=True, vertical_alignment="bottom", gap="small"):
        st.selectbox("A", names, key=K_A, width=200)
        st.selectbox("Operation", list(OP_LABELS), key=K_OP, format_func=OP_LABELS.get, width=220)
        st.selectbox("B", names, key=K_B, index=1, width=200)
        st.text_input("Save as", key=K_AS, placeholder="new subset name", width=220)
        st.button("Combine", key="sub-combine", icon=":material/join:", on_click=_combine,
                  args=(name,))  # fmt: skip


@st.cache_data(max_entries=16, show_spinner="Comparing…")
def _compare(name: str, a: str, b: str, root: str, stamp: tuple) -> dict[str, Any]:
    from pathlib import Path

    return subsets.compare(name, a, b, Path(root))


def compare_view(name: str, found: list[subsets.Subset]) -> None:
    names = [s.name for s in found]
    if len(names) < 2:
        st.caption("Save two subsets to compare them.")
        return
    with st.container(horizontal=True, gap="small"):
        a = st.selectbox("A", names, key=K_CMP_A, width=220)
        b = st.selectbox("B", names, key=K_CMP_B, index=1, width=220)
    stamp = tuple((s.name, s.created, s.count) for s in found if s.name in (a, b))
    try:
        c = _compare(name, a, b, str(_root()), stamp)
    except ValueError as e:
        st.error(str(e), icon=":material/error:")
        return
    m = st.columns(5)
    m[0].metric(f"A · {a}", fmt.num(c["sizes"][a]))
    m[1].metric(f"B · {b}", fmt.num(c["sizes"][b]))
    m[2].metric("In both", fmt.num(c["overlap"]))
    m[3].metric("Only A / only B", f"{fmt.num(c['only_a'])} / {fmt.num(c['only_b'])}")
    m[4].metric("Jaccard", f"{c['jaccard']:.2f}")
    hists = c["histograms"]
    if hists:
        cols = list(hists)
        default = "aesthetic" if "aesthetic" in cols else cols[0]
        st.session_state.setdefault(K_CMP_COL, default)
        if st.session_state[K_CMP_COL] not in cols:
            st.session_state[K_CMP_COL] = default
        col = st.selectbox("Column", cols, key=K_CMP_COL, width=260)
        st.plotly_chart(_histogram(hists[col], a, b, col), width="stretch", key="sub-hist")
    for what, tops in c["top"].items():
        st.markdown(f"**Top {what}**")
        left, right = st.columns(2)
        for box, sub in ((left, a), (right, b)):
            rows = [{what: str(v), "rows": n} for v, n in tops.get(sub, [])]
            box.caption(sub)
            box.dataframe(
                rows, hide_index=True, width="stretch", height=min(38 + 35 * len(rows), 250)
            )


def _histogram(h: dict[str, Any], a: str, b: str, col: str):
    import plotly.graph_objects as go

    edges = h["edges"]
    mids = [(lo + hi) / 2 for lo, hi in zip(edges[:-1], edges[1:], strict=True)]
    width = (edges[1] - edges[0]) if len(edges) > 1 else 1
    fig = go.Figure()
    for sub, colour in ((a, "#4f46e5"), (b, "#0ea5e9")):
        fig.add_bar(x=mids, y=h[sub], name=sub, width=width * 0.9, marker_color=colour, opacity=0.6)
    fig.update_layout(
        barmode="overlay", height=300, margin={"l": 10, "r": 10, "t": 30, "b": 10},
        title={"text": f"{col}: rows per bin", "font": {"size": 14}},
        legend={"orientation": "h", "y": 1.12, "x": 1, "xanchor": "right"},
    )  # fmt: skip
    return fig
