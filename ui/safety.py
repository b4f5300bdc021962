"""The Safety page's drawing: flag counts over the current selection, and the rows a chosen
score ranks first, as thumbnail cards (the checks and their queries: backend.safety_checks)."""

from __future__ import annotations

import duckdb
import streamlit as st

from backend import not_run, paths
from backend.safety_checks import Check, available, counts, sources_line, worst
from backend.selection import Selection
from ui import cards, safety_measured, selection_bar, state, style

OPTIONAL = {  # score columns of optional scorers: (scorer, what it needs)
    "text_overlay": ("ocr", "needs rapidocr-onnxruntime; about 1 s per image"),
    "clip_similarity": ("clip", "needs CLIP weights, or the dataset embedded with CLIP"),
}
VIEWS = ("Flagged rows", "Thresholds", "By cluster / concept", "Duplicates")
AGREEMENT = "Shipped vs computed"  # a view only when a score exists both ways
K_VIEW = "w.safety.view"


def safety_pairs(cat: dict[str, dict]) -> list[tuple[str, str]]:
    from backend.scores import pairs

    return pairs(cat)


def shipped_columns(name: str) -> set[str]:
    """The score columns the pool shipped (they do not mean `score` ran)."""
    from ui import safety_view

    return {c for c, v in safety_view.catalog(name).items() if v.get("source") == "shipped"}


def missing_help(name: str) -> None:
    st.markdown(
        style.empty_html(
            "shield",
            "No safety scores yet",
            "Run the scorers and the duplicate finder, then reload this page:<br>"
            f"<code>python -m backend score {style.esc(name)}</code> (add "
            "<code>--scorers ocr</code> for watermarks; slow)<br>"
            f"<code>python -m backend dedup {style.esc(name)}</code>",
        ),
        unsafe_allow_html=True,
    )


def not_run_note(
    name: str, cols: dict[str, str], skipped: dict[str, dict[str, str]] | None = None
) -> str | None:
    """What did not run, why when a step recorded it (``skipped``: :mod:`backend.not_run`),
    and the command that adds it; None when every step ran."""
    skipped = skipped or {}
    notes = []
    computed = set(cols) - shipped_columns(name)  # a pool's nsfw does not mean `score` ran
    if not {"toxicity", "nsfw", "nsfw_computed", "blur"} & computed:
        notes.append(f"scores: `python -m backend score {name}`")
    for col, info in skipped.items():
        if col.startswith("dup_") or col not in cols:
            notes.append(f"{info['what']} (`{col}`): {info['why'].rstrip('.')} — "
                         f"`{info['command']}`")  # fmt: skip
    for col, (scorer, needs) in OPTIONAL.items():
        if col not in cols and col not in skipped:
            notes.append(f"`{col}`: `python -m backend score {name} --scorers {scorer}` "
                         f"({needs})")  # fmt: skip
    if "is_dup_rep" not in cols:
        notes.append(f"duplicates: `python -m backend dedup {name}`")
    return "Not run — " + "; ".join(notes) if notes else None


def flagged_view(name: str, con: duckdb.DuckDBPyConnection, sel: Selection,
                 checks: list[Check]) -> None:  # fmt: skip
    """The worst rows of one check, as cards (the page's first view)."""
    from backend.safety_scores import blurred
    from ui.safety_view import nsfw_threshold

    labels = [c.label for c in checks]
    choice = st.segmented_control("Show", labels, default=labels[0], key="w.safety_check")
    check = next((c for c in checks if c.label == choice), checks[0])
    from ui import memo

    key = f"{memo.selection_key(sel)}|{check.column}|{check.flagged}|{check.order}"
    rows = memo.memo(name, "safety.worst", key, lambda: worst(con, sel, check))
    if not rows:
        st.success(f"No row in the selection is flagged: {check.help}.", icon=":material/check:")
        return
    st.caption(f"{check.help}; lowest row first" if check.column == "is_dup_rep" else
               f"{check.help}; worst first (the number on a card is its `{check.column}`)")
    cards.grid(name, rows, 6, score_label=check.column, blurred=blurred(rows, nsfw_threshold()))


def draw(name: str, con: duckdb.DuckDBPyConnection, sel: Selection, total_rows: int) -> None:
    from ui import safety_view

    cols = state.facts(name)["columns"]  # cached per store version (columns(con) is not)
    cat = safety_view.catalog(name)
    checks = available(cols, cat)
    if not checks:
        missing_help(name)
        return
    if selection_bar.live(name, con, total_rows, sel) is None:
        return
    from ui import memo

    key = memo.selection_key(sel) + "|" + "|".join(f"{c.label}:{c.flagged}" for c in checks)
    total, flagged = memo.memo(name, "safety.counts", key, lambda: counts(con, sel, checks))
    metrics = st.columns(len(checks))
    for col, c in zip(metrics, checks, strict=True):
        share = f"{flagged[c.label] / total:.1%}" if total else "–"
        col.metric(c.label, f"{flagged[c.label]:,}", share, delta_color="off",
                   delta_arrow="off", help=c.help, border=True)  # fmt: skip
    sources = sources_line(checks, cat)
    if sources:
        st.caption(sources)
    measured = safety_measured.check_line([c.column for c in checks])
    if measured:
        st.caption(measured)
    demo = safety_measured.demo_clip_line(state.embed_info(name), list(cols))
    if demo:
        st.caption(demo)
    note = not_run_note(name, cols, not_run.skipped(name, paths.workspace()))
    if note:
        st.caption(note)
    views = VIEWS + ((AGREEMENT,) if safety_pairs(cat) else ())
    if st.session_state.get(K_VIEW) not in views:
        st.session_state[K_VIEW] = views[0]
    view = st.segmented_control("View", views, key=K_VIEW, required=True,
                                label_visibility="collapsed")  # fmt: skip
    if view == AGREEMENT:
        from ui import safety_agree

        safety_agree.view(name, con, sel, cat)
    elif view == "Thresholds":
        safety_view.threshold_view(name, con, sel)
    elif view == "By cluster / concept":
        safety_view.rates_view(name, con, sel)
    elif view == "Duplicates":
        safety_view.dups_view(name, con, sel)
    else:
        flagged_view(name, con, sel, checks)
