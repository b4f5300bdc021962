"""The Safety page's checks: each a score column, the SQL condition of a flagged row and the
order of its "worst first" list; how many rows of a Selection each flags, and its worst rows.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import duckdb

from backend import safety_scores
from backend.browse import CARD_COLUMNS, columns
from backend.safety.toxicity import FLAGGED as TOXIC
from backend.safety.toxicity import THRESHOLD as TOXIC_T
from backend.scores import COMPUTED_SUFFIX
from backend.selection import Selection, quote_ident


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
    return safety_scores.card_rows(cur)
