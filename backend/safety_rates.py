"""Score rates per group on the Safety page: for each map cluster and each concept (from the
`concepts` step's caption hits, or ``concept…`` columns when a dataset has them), its rows in
the selection and the share each score's current threshold removes — where the problem rows
concentrate."""

from __future__ import annotations

from typing import Any

import duckdb
import numpy as np
import pandas as pd

from backend.browse import columns
from backend.safety_scores import Score, removed_sql
from backend.selection import Selection, is_numeric, quote_ident

CLUSTER = "cluster"
DOMAIN = "domain"
TOP_DOMAINS = 25  # the biggest domains of the selection get a row each
LANGUAGE = "language"
TOP_LANGUAGES = 25  # the commonest caption languages of the selection


def concept_columns(cols: dict[str, str]) -> list[str]:
    """Concept columns (``concept…``), boolean or 0–1 scores; none before the concepts step."""
    return [c for c in cols if c.startswith("concept")
            and (cols[c].upper() == "BOOLEAN" or is_numeric(cols[c]))]  # fmt: skip


def concept_member(col: str, duck_type: str) -> str:
    """A row has the concept: true, or a score of at least 0.5."""
    q = quote_ident(col)
    return (
        f"coalesce({q}, FALSE)"
        if duck_type.upper() == "BOOLEAN"
        else f"coalesce({q} >= 0.5, FALSE)"
    )


def _aggregates(thresholds: list[tuple[Score, float]]) -> tuple[str, list[Any]]:
    parts = ["count(*) AS rows"]
    params: list[Any] = []
    for i, (s, t) in enumerate(thresholds):
        parts.append(f"avg(({removed_sql(s)})::DOUBLE) AS r{i}")
        params.append(t)
    return ", ".join(parts), params


def _frame(rows: list[tuple], kind: str, thresholds: list[tuple[Score, float]]) -> pd.DataFrame:
    names = ["group", "rows"] + [s.flag_label(t) for s, t in thresholds]
    df = pd.DataFrame(rows, columns=names)
    df.insert(0, "kind", kind)
    return df


def _by_column(
    con: duckdb.DuckDBPyConnection,
    sel: Selection,
    thresholds: list[tuple[Score, float]],
    column: str,
    top: int | None = None,
) -> list[tuple]:
    """(value, rows, removed share per threshold…) per value of ``column`` in the selection,
    the ``top`` biggest when given (then biggest first); none when the column is absent."""
    cols = columns(con)
    if column not in cols:
        return []
    where, params = sel.where(cols)
    agg, more = _aggregates(thresholds)
    limit = "" if top is None else " ORDER BY rows DESC, g LIMIT ?"
    return con.execute(
        f"SELECT {quote_ident(column)} AS g, {agg} FROM samples "
        f"WHERE ({where}) AND {quote_ident(column)} IS NOT NULL GROUP BY g{limit}",
        [*more, *params, *([] if top is None else [top])],
    ).fetchall()


def _top_groups(
    con: duckdb.DuckDBPyConnection,
    sel: Selection,
    thresholds: list[tuple[Score, float]],
    column: str,
    top: int,
    kind: str,
) -> pd.DataFrame:
    """The ``top`` biggest values of ``column`` as a rates frame; empty when there is one value
    only (nothing to compare)."""
    got = _by_column(con, sel, thresholds, column, top)
    rows = [tuple(r) for r in got] if len(got) > 1 else []
    return _frame(rows, kind, thresholds)


def cluster_rates(
    con: duckdb.DuckDBPyConnection,
    sel: Selection,
    thresholds: list[tuple[Score, float]],
    labels: dict[int, str],
) -> pd.DataFrame:
    """One row per cluster present in the selection: "label (#id)", rows, share removed by
    each (score, threshold). Empty when the dataset has no map."""
    got = _by_column(con, sel, thresholds, CLUSTER)
    rows = [(f"{labels.get(int(g), 'cluster')} (#{int(g)})", *rest) for g, *rest in got]
    return _frame(rows, "cluster", thresholds)


def domain_rates(
    con: duckdb.DuckDBPyConnection,
    sel: Selection,
    thresholds: list[tuple[Score, float]],
    top: int = TOP_DOMAINS,
) -> pd.DataFrame:
    """One row per domain among the ``top`` biggest of the selection (the URL's registered
    domain, derived at ingest). Empty when the dataset has no URLs, or one domain only."""
    return _top_groups(con, sel, thresholds, DOMAIN, top, "domain")


def language_rates(
    con: duckdb.DuckDBPyConnection,
    sel: Selection,
    thresholds: list[tuple[Score, float]],
    top: int = TOP_LANGUAGES,
) -> pd.DataFrame:
    """One row per caption language among the ``top`` commonest of the selection (the
    ``language`` scorer's column). Empty before it ran, or when there is one language only."""
    return _top_groups(con, sel, thresholds, LANGUAGE, top, "language")


def concept_rates(
    con: duckdb.DuckDBPyConnection, sel: Selection, thresholds: list[tuple[Score, float]]
) -> pd.DataFrame:
    """One row per concept column with members in the selection (one query for all)."""
    cols = columns(con)
    concepts = concept_columns(cols)
    if not concepts:
        return _frame([], "concept", thresholds)
    where, params = sel.where(cols)
    agg, more = _aggregates(thresholds)
    parts, args = [], []
    for c in concepts:
        parts.append(f"SELECT ? AS g, {agg} FROM base WHERE {concept_member(c, cols[c])}")
        args += [c.removeprefix("concept_").removeprefix("concept"), *more]
    got = con.execute(
        f"WITH base AS (SELECT * FROM samples WHERE {where}) " + " UNION ALL ".join(parts),
        [*params, *args],
    ).fetchall()
    return _frame([r for r in got if r[1]], "concept", thresholds)


def hit_rates(
    con: duckdb.DuckDBPyConnection,
    sel: Selection,
    thresholds: list[tuple[Score, float]],
    hits: tuple[np.ndarray, np.ndarray, list[str]],
) -> pd.DataFrame:
    """One row per concept of a vocabulary with rows in the selection, from its caption hits
    ``(row ids, concept ids, concept names)``: the selection's removed flags come out of DuckDB
    once, the per-concept sums are numpy bincounts over the hits."""
    rows, ids, names = hits
    where, params = sel.where(columns(con))
    flags = "".join(f", ({removed_sql(s)})::INT AS r{i}" for i, (s, _) in enumerate(thresholds))
    got = con.execute(
        f"SELECT row_id{flags} FROM samples WHERE {where} ORDER BY row_id",
        [*(t for _, t in thresholds), *params],
    ).fetchnumpy()
    sel_ids = np.asarray(got["row_id"], dtype=np.int64)
    pos = np.searchsorted(sel_ids, rows)
    inside = pos < len(sel_ids)
    inside[inside] = sel_ids[pos[inside]] == rows[inside]
    cid, at = ids[inside].astype(np.int64), pos[inside]
    n = np.bincount(cid, minlength=len(names))
    shares = [np.bincount(cid, weights=np.asarray(got[f"r{i}"], dtype=np.float64)[at],
                          minlength=len(names)) / np.maximum(n, 1)
              for i in range(len(thresholds))]  # fmt: skip
    out = [(names[c], int(n[c]), *(float(sh[c]) for sh in shares)) for c in np.flatnonzero(n)]
    return _frame(out, "concept", thresholds)


def rates(
    con: duckdb.DuckDBPyConnection,
    sel: Selection,
    thresholds: list[tuple[Score, float]],
    labels: dict[int, str],
    hits: tuple[np.ndarray, np.ndarray, list[str]] | None = None,
) -> pd.DataFrame:
    """Clusters, concepts (columns, and ``hits`` of a vocabulary when given), the biggest
    domains and caption languages together, highest rate of the first score first."""
    parts = [cluster_rates(con, sel, thresholds, labels), concept_rates(con, sel, thresholds),
             domain_rates(con, sel, thresholds), language_rates(con, sel, thresholds)]  # fmt: skip
    if hits is not None:
        parts.append(hit_rates(con, sel, thresholds, hits))
    df = pd.concat([p for p in parts if len(p)] or parts[:1], ignore_index=True)
    if thresholds and len(df):
        first = thresholds[0][0].flag_label(thresholds[0][1])
        df = df.sort_values([first, "rows"], ascending=[False, False], kind="stable")
    return df.reset_index(drop=True)
