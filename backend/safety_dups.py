"""Duplicate groups on the Safety page: the groups of one kind within the selection, biggest
first, and the "keep one per group" filter (``is_dup_rep = TRUE``) on the shared Selection."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import duckdb

from backend.browse import columns
from backend.safety_scores import card_rows, card_select
from backend.selection import Selection, quote_ident

REP = "is_dup_rep"


@dataclass(frozen=True)
class Kind:
    label: str
    column: str
    help: str


KINDS = (
    Kind("Exact", "dup_exact_group", "byte-identical files (same SHA-256)"),
    Kind("pHash", "dup_phash_group", "perceptual hash within 8 of 64 bits: re-encodes, resizes, "
         "small edits"),
    Kind("Semantic", "dup_semantic_group", "image embeddings with cosine ≥ 0.95: the same scene"),
    Kind("Caption", "dup_caption_group", "the same caption after normalising case, accents and "
         "punctuation (not part of keep-one-per-group)"),
)  # fmt: skip


def available(cols: dict[str, str]) -> list[Kind]:
    return [k for k in KINDS if k.column in cols]


def stats(con: duckdb.DuckDBPyConnection, sel: Selection, kinds: list[Kind]) -> dict[str, Any]:
    """Rows in the selection, and per kind: groups with two or more members in it and the rows
    in them; plus the rows keep-one-per-group drops (``None`` without ``is_dup_rep``)."""
    cols = columns(con)
    where, params = sel.where(cols)
    out: dict[str, Any] = {"kinds": {}}
    for k in kinds:
        g = quote_ident(k.column)
        n_groups, n_rows = con.execute(
            f"SELECT count(*), coalesce(sum(n), 0) FROM (SELECT count(*) AS n FROM samples "
            f"WHERE ({where}) AND {g} IS NOT NULL GROUP BY {g} HAVING count(*) > 1)",
            params,
        ).fetchone()
        out["kinds"][k.column] = {"groups": int(n_groups), "rows": int(n_rows)}
    total, dropped = con.execute(
        "SELECT count(*), "
        + (f"count(*) FILTER (WHERE NOT coalesce({REP}, TRUE))" if REP in cols else "NULL")
        + f" FROM samples WHERE {where}",
        params,
    ).fetchone()
    out["total"], out["dropped"] = int(total), None if dropped is None else int(dropped)
    return out


def groups(
    con: duckdb.DuckDBPyConnection, sel: Selection, kind: Kind, offset: int = 0, limit: int = 10,
    per_group: int = 6,
) -> list[dict[str, Any]]:  # fmt: skip
    """Groups of ``kind`` with two or more members in the selection, biggest first (then by
    group id): ``{"group", "size", "rows"}`` with up to ``per_group`` member rows, the
    representative (row id = group id) first when it is in the selection."""
    cols = columns(con)
    where, params = sel.where(cols)
    g = quote_ident(kind.column)
    heads = con.execute(
        f"SELECT {g}, count(*) AS n FROM samples WHERE ({where}) AND {g} IS NOT NULL "
        f"GROUP BY {g} HAVING count(*) > 1 ORDER BY n DESC, {g} LIMIT ? OFFSET ?",
        [*params, limit, offset],
    ).fetchall()
    if not heads:
        return []
    ids = [int(h[0]) for h in heads]
    members = card_rows(con.execute(
        f"SELECT {g} AS _grp, {card_select(cols)} FROM samples WHERE ({where}) AND {g} IN "
        f"(SELECT unnest(?::BIGINT[])) QUALIFY row_number() OVER (PARTITION BY {g} ORDER BY "
        f"row_id <> {g}, row_id) <= ? ORDER BY row_id <> {g}, row_id",
        [*params, ids, per_group],
    ))  # fmt: skip
    by_group: dict[int, list[dict[str, Any]]] = {i: [] for i in ids}
    for r in members:
        by_group[int(r.pop("_grp"))].append(r)
    return [
        {"group": i, "size": int(n), "rows": by_group[i]}
        for i, n in ((int(a), b) for a, b in heads)
    ]


def keep_one(sel: Selection, on: bool) -> Selection:
    """``sel`` with (or without) ``is_dup_rep = TRUE``: one image per exact/pHash/semantic
    group."""
    values = {c: v for c, v in sel.values.items() if c != REP}
    if on:
        values[REP] = [True]
    return replace(sel, values=values)


def keeps_one(sel: Selection) -> bool:
    return sel.values.get(REP) == [True]
