"""Score thresholds on the Safety page: which score columns a dataset has, what a threshold
removes from the selection, the rows at its margin, and the range it adds to the Selection.

Data in, data out (a connection and a Selection in; numbers and row dicts out): the drawing is
in :mod:`ui.safety_view`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import duckdb

from backend.browse import CARD_COLUMNS, columns
from backend.scores import COMPUTED_SUFFIX
from backend.selection import Selection, is_numeric, quote_ident


@dataclass(frozen=True)
class Score:
    column: str
    label: str
    keep_below: bool  # True: high is bad (keep rows at or below the threshold)
    default: float  # the threshold a page opens with
    help: str

    @property
    def op(self) -> str:
        """The comparison a kept row satisfies (what the Selection's range means)."""
        return "<=" if self.keep_below else ">="

    def flag_label(self, t: float) -> str:
        """What a removed row is, e.g. "toxicity > 0.5"."""
        return f"{self.column} {'>' if self.keep_below else '<'} {t:g}"


SCORES = (
    Score("toxicity", "Caption toxicity", True, 0.8,
          "alt-profanity-check probability that the caption is offensive (it rates colour "
          "words such as “white” 0.5–0.7: 0.8 is chosen from the demo's planted truth)"),
    Score("profanity", "Profane words", True, 0.0,
          "listed profane words or phrases in the caption (better-profanity's list)"),
    Score("nsfw", "NSFW", True, 0.5, "probability that the image is not safe for work"),
    Score("watermark", "Watermark", True, 0.5, "probability that the image carries a watermark"),
    Score("text_overlay", "Text / watermark", True, 0.02,
          "OCR confidence × share of the image covered by text (a proxy for overlays)"),
    Score("clip_similarity", "Image–caption agreement", False, 0.2,
          "CLIP cosine of image and caption: low means the caption does not describe the image"),
    Score("clip_similarity_l14", "Image–caption agreement (L/14)", False, 0.2,
          "CLIP ViT-L/14 cosine of image and caption: low means the caption does not describe "
          "the image"),
    Score("blur", "Sharpness", False, 50.0,
          "variance of the Laplacian at 512 px: low means blurry"),
    Score("brightness", "Brightness", False, 0.1, "mean luminance, 0–1: low means nearly black"),
    Score("contrast", "Contrast", False, 0.05, "luminance standard deviation: low means flat"),
    Score("aspect", "Aspect ratio", True, 3.0, "width / height: far from 1 means a banner"),
    Score("aesthetic", "Aesthetic score", False, 5.0,
          "the source's aesthetic predictor: high is good"),
    Score("faces", "Faces", True, 0.0, "faces found in the image: above 0, a person may be "
          "identifiable"),
)  # fmt: skip
NSFW = "nsfw"
MARGIN = 6  # rows shown on each side of a threshold


def available(cols: dict[str, str], cat: dict[str, dict] | None = None) -> list[Score]:
    """The scores this dataset has as numeric columns, in :data:`SCORES` order, each followed
    by its computed twin when the pool shipped it too (``nsfw_computed``). ``cat``: the
    dataset's score catalog (:func:`backend.scores.catalog`), whose provenance ("shipped:
    LAION's … (punsafe)" / "computed here: …") joins each help text."""
    out = []
    for s in SCORES:
        for col, suffix in ((s.column, ""), (s.column + COMPUTED_SUFFIX, " · computed here")):
            if col in cols and is_numeric(cols[col]):
                out.append(replace(s, column=col, label=s.label + suffix,
                                   help=with_source(s.help, col, cat)))  # fmt: skip
    return out


def with_source(text: str, column: str, cat: dict[str, dict] | None) -> str:
    """``text`` followed by where ``column``'s values came from, when that is known."""
    source = (cat or {}).get(column, {}).get("label")
    return f"{text} — {source}" if source else text


def by_column(column: str) -> Score | None:
    base = column.removesuffix(COMPUTED_SUFFIX)
    spec = next((s for s in SCORES if s.column == base), None)
    return replace(spec, column=column) if spec and base != column else spec


def slider_bounds(lo: float, hi: float, default: float | None = None) -> tuple[float, float, float]:
    """(min, max, step) of a threshold slider over values in [lo, hi]: [0, 1] for
    probabilities, otherwise rounded out to a 1-2-5 step of about 1/400 of the span (finer
    when that misses ``default``, so the default threshold is a slider position)."""
    lo, hi = float(lo), float(hi)
    if 0 <= lo and hi <= 1:
        return 0.0, 1.0, 0.001
    span = hi - lo if hi > lo else max(abs(hi), 1.0)
    raw = span / 400
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    for finer in (step, step / 2, step / 5, step / 10, step / 20, step / 50, step / 100):
        if default is None or abs(default / finer - round(default / finer)) < 1e-9:
            step = finer
            break
    digits = max(0, 1 - math.floor(math.log10(step))) + 2  # no 0.8300000000000001
    return (round(math.floor(lo / step) * step, digits), round(math.ceil(hi / step) * step, digits),
            step)  # fmt: skip


def _kept(score: Score) -> str:
    return f"{quote_ident(score.column)} {score.op} ?"


def removed_sql(score: Score) -> str:
    """Rows the threshold's range drops: beyond the threshold, or without a value (a range
    never matches NULL). One parameter: the threshold."""
    return f"NOT coalesce({_kept(score)}, FALSE)"


def removed(
    con: duckdb.DuckDBPyConnection, sel: Selection, score: Score, t: float
) -> tuple[int, int, int]:
    """(rows in the selection, rows the threshold removes, of those without a value)."""
    where, params = sel.where(columns(con))
    got = con.execute(
        f"SELECT count(*), count(*) FILTER (WHERE {removed_sql(score)}), "
        f"count(*) FILTER (WHERE {quote_ident(score.column)} IS NULL) "
        f"FROM samples WHERE {where}",
        [t, *params],
    ).fetchone()
    return int(got[0]), int(got[1]), int(got[2])


def histogram(
    con: duckdb.DuckDBPyConnection, sel: Selection, score: Score,
    lo: float, hi: float, bins: int = 60,
) -> list[tuple[float, float, int]]:  # fmt: skip
    """(left edge, right edge, rows) of ``bins`` equal bins over [lo, hi], counted in SQL (no
    values leave the database); empty bins included."""
    width = (hi - lo) / bins if hi > lo else 1.0
    where, params = sel.where(columns(con))
    q = quote_ident(score.column)
    got = dict(con.execute(
        f"SELECT least(greatest(floor(({q} - ?) / ?), 0), ?)::BIGINT AS b, count(*) "
        f"FROM samples WHERE ({where}) AND {q} IS NOT NULL AND isfinite({q}::DOUBLE) "
        "GROUP BY b",
        [lo, width, bins - 1, *params],
    ).fetchall())  # fmt: skip
    return [(lo + i * width, lo + (i + 1) * width, int(got.get(i, 0))) for i in range(bins)]


def card_rows(cur: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def card_select(cols: dict[str, str], value: str | None = None) -> str:
    """The card columns, the NSFW score (to blur) and ``value`` as ``score`` when given."""
    picked = [c for c in CARD_COLUMNS if c in cols]
    if NSFW in cols and NSFW not in picked:
        picked.append(NSFW)
    out = ", ".join(quote_ident(c) for c in picked)
    return out + (f", CAST({quote_ident(value)} AS DOUBLE) AS score" if value else "")


def margin(
    con: duckdb.DuckDBPyConnection, sel: Selection, score: Score, t: float, n: int = MARGIN
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(kept, removed): the ``n`` rows of the selection nearest the threshold on each side,
    nearest first (ties by row id) — where judgement is needed."""
    cols = columns(con)
    where, params = sel.where(cols)
    q = quote_ident(score.column)
    near = f"abs({q}::DOUBLE - ?), row_id"
    sides = []
    for cond in (_kept(score), f"NOT ({_kept(score)})"):
        sides.append(card_rows(con.execute(
            f"SELECT {card_select(cols, score.column)} FROM samples "
            f"WHERE ({where}) AND {cond} ORDER BY {near} LIMIT ?",
            [*params, t, t, n],
        )))  # fmt: skip
    return sides[0], sides[1]


def keep(sel: Selection, score: Score, t: float) -> Selection:
    """``sel`` with the threshold as a range on the score's column (intersected with a range
    already there), so it composes with every other filter and with Export."""
    lo, hi = sel.ranges.get(score.column, (None, None))
    if score.keep_below:
        hi = t if hi is None else min(hi, t)
    else:
        lo = t if lo is None else max(lo, t)
    if lo is not None and hi is not None and lo > hi:  # the old range excluded the new one:
        lo, hi = (None, hi) if score.keep_below else (lo, None)  # the new bound wins
    return replace(sel, ranges={**sel.ranges, score.column: (lo, hi)})


def blurred(rows: list[dict[str, Any]], nsfw_threshold: float) -> set[int]:
    """Row ids whose NSFW score is above the threshold: their images start blurred."""
    return {int(r["row_id"]) for r in rows
            if r.get(NSFW) is not None and float(r[NSFW]) > nsfw_threshold}  # fmt: skip
