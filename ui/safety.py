"""The Safety page's queries and drawing: flag counts over the current selection, and the rows
a chosen score ranks first, as thumbnail cards."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import duckdb
import streamlit as st

from backend.browse import CARD_COLUMNS, columns
from backend.selection import Selection, quote_ident
from ui import cards, style


@dataclass(frozen=True)
class Check:
    label: str
    column: str  # the score column it needs
    flagged: str  # SQL condition for a flagged row
    order: str  # how the "worst first" list is ordered
    help: str


CHECKS = (
    Check("Offensive captions", "toxicity", "toxicity > 0.5", "toxicity DESC",
          "caption toxicity > 0.5 (alt-profanity-check)"),
    Check("NSFW images", "nsfw", "nsfw > 0.5", "nsfw DESC", "open_nsfw probability > 0.5"),
    Check("Text / watermark", "text_overlay", "text_overlay >= 0.01", "text_overlay DESC",
          "OCR text over ≥ 1% of the image (a proxy for overlays)"),
    Check("Blurriest", "blur", "blur < 50", "blur ASC",
          "variance of the Laplacian < 50 at 512 px"),
    Check("Grayscale", "grayscale", "grayscale", "contrast ASC", "no colour"),
    Check("Duplicates", "is_dup_rep", "NOT is_dup_rep", "row_id ASC",
          "rows WHERE is_dup_rep would drop (one kept per group)"),
    Check("Low CLIP agreement", "clip_similarity", "clip_similarity < 0.2",
          "clip_similarity ASC", "image–caption cosine < 0.2"),
)  # fmt: skip


def available(cols: dict[str, str]) -> list[Check]:
    """The checks whose score column this dataset has."""
    return [c for c in CHECKS if c.column in cols]


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


def draw(name: str, con: duckdb.DuckDBPyConnection, sel: Selection) -> None:
    checks = available(columns(con))
    if not checks:
        missing_help(name)
        return
    total, flagged = counts(con, sel, checks)
    st.caption(f"{total:,} rows in the current selection")
    metrics = st.columns(len(checks))
    for col, c in zip(metrics, checks, strict=True):
        share = f"{flagged[c.label] / total:.1%}" if total else "–"
        col.metric(c.label, f"{flagged[c.label]:,}", share, delta_color="off",
                   delta_arrow="off", help=c.help, border=True)  # fmt: skip
    missing = [c.label for c in CHECKS if c not in checks]
    if missing:
        st.caption("Not scored yet: " + ", ".join(missing) + f" (`python -m backend score {name} "
                   "--scorers …`, `python -m backend dedup …`)")  # fmt: skip
    labels = [c.label for c in checks]
    choice = st.segmented_control("Show", labels, default=labels[0], key="w.safety_check")
    check = next((c for c in checks if c.label == choice), checks[0])
    rows = worst(con, sel, check)
    if not rows:
        st.success(f"No row in the selection is flagged: {check.help}.", icon=":material/check:")
        return
    st.caption(f"{check.help}; lowest row first" if check.column == "is_dup_rep" else
               f"{check.help}; worst first (the number on a card is its `{check.column}`)")
    cards.grid(name, rows, 6, score_label=check.column)
