"""How well a shipped score and the same score computed here agree, over a selection.

A pool's own filter scores (LAION's ``punsafe``, COYO's ``watermark_score``) decided what
millions of rows look like; whether they agree with an independent model is the first thing an
audit asks. Everything is counted in DuckDB over the rows that have both values: correlations,
the 2x2 table of flags at a threshold, a bounded sample for a scatter plot, and the rows where
the two disagree most.
"""

from __future__ import annotations

from typing import Any

import duckdb

from backend import safety_scores
from backend.selection import quote_ident

SCATTER_ROWS = 4000


def _both(a: str, b: str) -> str:
    return f"{quote_ident(a)} IS NOT NULL AND {quote_ident(b)} IS NOT NULL"


def summary(con: duckdb.DuckDBPyConnection, where: str, params: list[Any], a: str, b: str,
            threshold: float) -> dict[str, Any]:  # fmt: skip
    """Rows with both values, Pearson and Spearman correlation, and the counts of rows each
    flags (above ``threshold``): both, only ``a``, only ``b``, neither."""
    qa, qb = quote_ident(a), quote_ident(b)
    got = con.execute(
        f"WITH s AS (SELECT {qa}::DOUBLE AS x, {qb}::DOUBLE AS y FROM samples "
        f"WHERE ({where}) AND {_both(a, b)}), "
        "r AS (SELECT x, y, rank() OVER (ORDER BY x) AS rx, rank() OVER (ORDER BY y) AS ry "
        "FROM s) "
        "SELECT count(*), corr(x, y), corr(rx, ry), "
        "count(*) FILTER (WHERE x > ? AND y > ?), count(*) FILTER (WHERE x > ? AND y <= ?), "
        "count(*) FILTER (WHERE x <= ? AND y > ?), count(*) FILTER (WHERE x <= ? AND y <= ?) "
        "FROM r",
        [*params, *([threshold] * 8)],
    ).fetchone()
    n, pearson, spearman, both, only_a, only_b, neither = got
    return {"rows": int(n), "pearson": _num(pearson), "spearman": _num(spearman),
            "both": int(both), "only_a": int(only_a), "only_b": int(only_b),
            "neither": int(neither),
            "agree": (int(both) + int(neither)) / int(n) if n else None}  # fmt: skip


def _num(v: Any) -> float | None:
    return None if v is None or v != v else float(v)


def scatter(con: duckdb.DuckDBPyConnection, where: str, params: list[Any], a: str, b: str,
            limit: int = SCATTER_ROWS) -> tuple[list[float], list[float]]:  # fmt: skip
    """Up to ``limit`` (a, b) pairs, a hash sample of the rows with both (stable per row)."""
    qa, qb = quote_ident(a), quote_ident(b)
    got = con.execute(
        f"SELECT {qa}::DOUBLE, {qb}::DOUBLE FROM samples WHERE ({where}) AND {_both(a, b)} "
        "ORDER BY hash(row_id) LIMIT ?",
        [*params, limit],
    ).fetchall()
    return [r[0] for r in got], [r[1] for r in got]


def disagreements(con: duckdb.DuckDBPyConnection, where: str, params: list[Any], a: str, b: str,
                  select: str, limit: int = 12) -> list[dict[str, Any]]:  # fmt: skip
    """The rows where ``a`` and ``b`` differ most (ties by row id), with ``select``'s columns
    and the gap as ``score``."""
    qa, qb = quote_ident(a), quote_ident(b)
    cur = con.execute(
        f"SELECT {select}, abs({qa}::DOUBLE - {qb}::DOUBLE) AS score FROM samples "
        f"WHERE ({where}) AND {_both(a, b)} ORDER BY score DESC, row_id LIMIT ?",
        [*params, limit],
    )
    return safety_scores.card_rows(cur)


def disagreement_cards(con: duckdb.DuckDBPyConnection, where: str, params: list[Any], a: str,
                       b: str, limit: int = 12) -> list[dict[str, Any]]:  # fmt: skip
    """:func:`disagreements` as cards: the card columns (and NSFW, to blur), ``a`` as
    ``shipped`` and ``b`` as ``computed``: the Safety page's "where they disagree most"."""
    from backend.browse import columns

    pick = (f"{safety_scores.card_select(columns(con))}, {quote_ident(a)} AS shipped, "
            f"{quote_ident(b)} AS computed")
    return disagreements(con, where, params, a, b, pick, limit)
