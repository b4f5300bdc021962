"""The Safety page's queries and drawing: flag counts over the current selection, and the rows
a chosen score ranks first, as thumbnail cards."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import duckdb
import streamlit as st

from backend import not_run, paths, safety_scores
from backend.browse import CARD_COLUMNS, columns
from backend.safety.toxicity import FLAGGED as TOXIC
from backend.safety.toxicity import THRESHOLD as TOXIC_T
from backend.scores import COMPUTED_SUFFIX
from backend.selection import Selection, quote_ident
from ui import cards, safety_measured, selection_bar, state, style


@dataclass(frozen=True)
class Check:
    label: str
    column: str  # the score column it needs
    flagged: str  # SQL condition for a flagged row
    order: str  # how the "worst first" list is ordered
    help: str


CHECKS = (
    Check("Offensive captions", "toxicity", TOXIC, "toxicity DESC",
          f"caption toxicity > {TOXIC_T:g} (alt-profanity-check) or a listed profane word "
          "(better-profanity's list); thresholds from the demo's planted truth"),
    Check("NSFW images", "nsfw", "nsfw > 0.5", "nsfw DESC", "NSFW probability > 0.5"),
    Check("Watermarks", "watermark", "watermark > 0.5", "watermark DESC",
          "watermark probability > 0.5"),
    Check("Text / watermark", "text_overlay", "text_overlay >= 0.02", "text_overlay DESC",
          "OCR text over ≥ 2% of the image (a proxy for overlays)"),
    Check("Blurriest", "blur", "blur < 50", "blur ASC",
          "variance of the Laplacian < 50 at 512 px"),
    Check("Grayscale", "grayscale", "grayscale", "contrast ASC", "no colour"),
    Check("Duplicates", "is_dup_rep", "NOT is_dup_rep", "row_id ASC",
          "rows WHERE is_dup_rep would drop (one kept per group)"),
    Check("Low CLIP agreement", "clip_similarity", "clip_similarity < 0.2",
          "clip_similarity ASC", "image–caption cosine < 0.2"),
    Check("Faces", "faces", "faces > 0", "faces DESC", "one face or more in the image"),
)  # fmt: skip


def available(cols: dict[str, str], cat: dict[str, dict] | None = None) -> list[Check]:
    """The checks whose score column this dataset has, each followed by its computed twin when
    the pool shipped the score too; ``cat`` (the score catalog) adds each one's provenance to
    its help ("… — shipped: LAION's CLIP-based NSFW detector (punsafe)")."""
    out = []
    for c in CHECKS:
        twin = c.column + COMPUTED_SUFFIX
        for col, suffix in ((c.column, ""), (twin, " · computed")):
            if col not in cols:
                continue
            flagged = c.flagged
            if flagged == TOXIC and "profanity" not in cols:  # toxicity without the word list
                flagged = f"toxicity > {TOXIC_T}"
            out.append(replace(c, label=c.label + suffix, column=col,
                               flagged=flagged.replace(c.column, col),
                               order=c.order.replace(c.column, col),
                               help=safety_scores.with_source(c.help, col, cat)))  # fmt: skip
    return out


def sources_line(checks: list[Check], cat: dict[str, dict]) -> str | None:
    """One line naming where each shown score came from, or None when none is known."""
    parts = [f"`{c.column}` {cat[c.column]['label']}" for c in checks if c.column in cat]
    return "Sources — " + " · ".join(parts) if parts else None


def counts(
    con: duckdb.DuckDBPyConnection, sel: Selection, checks: list[Check]
) -> tuple[int, dict[str, int]]:
    """Rows in the selection, and how many of them each check flags (one query)."""
    where, params = sel.where(columns(con))
    parts = ", ".join(f"count(*) FILTER (WHERE {c.flagged})" for c in checks)
    got = con.execute(f"SELECT count(*), {parts} FROM samples WHERE {where}", params).fetchone()
    return int(got[0]), {c.label: int(v) for c, v in zip(checks, got[1:], strict=True)}


def worst(
    con: duckdb.DuckDBPyConnection, sel: Selection, check: Check, limit: int = 24
) -> list[dict[str, Any]]:
    """The flagged rows of the selection, worst first, with the check's value as ``score``
    (duplicates: lowest row first, no score)."""
    cols = columns(con)
    where, params = sel.where(cols)
    select = ", ".join(quote_ident(c) for c in CARD_COLUMNS if c in cols)
    value = "" if check.column == "is_dup_rep" else (  # a flag: no number to show
        f", CAST({quote_ident(check.column)} AS DOUBLE) AS score")
    cur = con.execute(
        f"SELECT {select}{value} FROM samples WHERE ({where}) AND {check.flagged} "
        f"ORDER BY {check.order}, row_id LIMIT ?",
        [*params, limit],
    )
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


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
