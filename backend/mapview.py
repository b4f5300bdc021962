"""Read-side queries of the Map page: the points to draw, a density grid, cluster facts, and the
conversion of a chart's box/lasso into the Selection's polygon. No Streamlit here.

The page must stay light at any row count: at most ``limit`` points travel to the browser (a
deterministic sample, ``hash(row_id) % m = 0``, so the same rows are drawn on every run), and
every row is still shown by a density grid binned in DuckDB (one small array, whatever N).
The map always draws the *context* of a selection (the sidebar filters) and marks the rows of
the selection itself (the map region and the picked cluster), so a selection can be seen
against what surrounds it; counts are always of the full Selection, over all rows.

For the unfiltered map the answers come from the build (:mod:`backend.map_prepared`) when it
prepared them for the current map; ``live=True`` (what the build itself uses) always queries.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import duckdb
import numpy as np

from backend import row_sample
from backend.browse import columns
from backend.polygon import MAP_X, MAP_Y
from backend.row_sample import RowSample, sample_every
from backend.selection import Selection, quote_ident

CLUSTER = "cluster"
DRAW_LIMIT = 50_000  # points sent to the browser; above it a sample plus the density grid
# (bench/map_page.py: 100k points took ~3.2 s to draw in headless Chromium, 50k stay under 2)
CAPTION_CHARS = 60  # hover text per point (the bulk of the payload: keep it short)
GRID = 160  # density bins along each axis
HAS_COORDS = f"{quote_ident(MAP_X)} IS NOT NULL AND {quote_ident(MAP_Y)} IS NOT NULL"


def has_map(cols: dict[str, str]) -> bool:
    """Whether the store has map coordinates (the map step ran)."""
    return MAP_X in cols and MAP_Y in cols


def context(sel: Selection) -> Selection:
    """What the map draws around a selection: the Selection without its map region and
    without a picked cluster (those are marked on the map, not used to hide rows)."""
    ranges = {c: r for c, r in sel.ranges.items() if c != CLUSTER}
    out = replace(sel, polygon=(), ranges=ranges)
    values = getattr(sel, "values", None)  # clusters picked as a list (newer Selections)
    if values and CLUSTER in values:
        out = replace(out, values={c: v for c, v in values.items() if c != CLUSTER})
    return out


def marks(sel: Selection) -> bool:
    """Whether the Selection has a part the map marks (a region or a cluster)."""
    return bool(sel.polygon) or CLUSTER in sel.ranges or CLUSTER in (getattr(sel, "values", None)
                                                                     or {})


@dataclass
class MapPoints:
    """The points to draw (arrays in the same order) and how they were chosen."""

    row_id: np.ndarray  # int64
    x: np.ndarray  # float32
    y: np.ndarray  # float32
    caption: list[str]
    color: np.ndarray | None  # float32 values or category codes (int16); None: one colour
    categories: list[Any]  # the category of each code, when colouring by a category
    inside: np.ndarray | None  # bool: in the Selection (None when nothing is marked)
    total: int  # rows of the context with coordinates (what the density layer shows)
    every: int  # 1: every row drawn; m: rows with hash(row_id) % m = 0
    estimated: bool = False  # total from the build's row sample (backend.row_sample)

    @property
    def sampled(self) -> bool:
        return self.every > 1


def _where(con: duckdb.DuckDBPyConnection, sel: Selection) -> tuple[str, list[Any]]:
    where, params = sel.where(columns(con))
    return f"({where}) AND {HAS_COORDS}", params


def count(con: duckdb.DuckDBPyConnection, sel: Selection) -> int:
    """Rows of the Selection (over all rows, not the drawn sample) that have coordinates."""
    where, params = _where(con, sel)
    return con.execute(f"SELECT count(*) FROM samples WHERE {where}", params).fetchone()[0]


def _prepared(con: duckdb.DuckDBPyConnection, live: bool) -> dict[str, Any] | None:
    if live:
        return None
    from backend import map_prepared_load

    return map_prepared_load.load(con)


def _source(con: duckdb.DuckDBPyConnection, live: bool) -> RowSample | None:
    """The store's row sample (a Selection's map drawn and estimated from ~10^6 rows, not a
    scan of every row), or None: query ``samples``."""
    return None if live else row_sample.load(con)


def _table(src: RowSample | None) -> str:
    """What the queries read: the row sample when there is one, else every row."""
    return "samples" if src is None else src.table


def _thin(src: RowSample | None, every: int) -> str:
    """`` AND`` the 1-in-``every`` condition: on the row sample, whose rows already have
    ``hash % src.every = 0``, it keeps 1 in ``every`` of *those* (a plain ``hash % every`` would
    keep them all whenever ``every`` divides ``src.every``)."""
    if every <= 1:
        return ""
    h = "hash(row_id)" if src is None else f"(hash(row_id) // {int(src.every)})"
    return f" AND {h} % {int(every)} = 0"


def _prepared_points(prep: dict[str, Any], color: str | None) -> MapPoints:
    """The points of the prepared table (the whole map, nothing marked)."""
    t = prep["points"]
    return MapPoints(
        row_id=t["row_id"].to_numpy(), x=t["x"].to_numpy(), y=t["y"].to_numpy(),
        caption=t["caption"].to_pylist(),
        color=t["cluster"].to_numpy().astype(np.float32) if color == CLUSTER else None,
        categories=[], inside=None, total=int(prep["total"]), every=int(prep["every"]),
    )  # fmt: skip


def _colours(got: dict[str, Any], color: str | None,
             members: tuple[str, Any] | None) -> tuple[np.ndarray | None, list]:  # fmt: skip
    """Colour per point and category names: membership, codes of a category, or numbers."""
    values, categories = None, []
    if "color" in got:
        raw = np.asarray(got["color"])
        if members is not None:
            categories = [f"no {members[0]}", members[0]]
            values = raw.astype(np.int16)
        elif color == "shard" or raw.dtype == object:
            categories = sorted({v for v in raw if v is not None}, key=str)
            code = {v: i for i, v in enumerate(categories)}
            values = np.array([code.get(v, -1) for v in raw], dtype=np.int16)
        else:
            values = np.ma.filled(np.ma.asarray(raw, dtype=np.float32), np.nan)
    return values, categories


def points(
    con: duckdb.DuckDBPyConnection,
    sel: Selection,
    color: str | None = CLUSTER,
    limit: int = DRAW_LIMIT,
    members: tuple[str, np.ndarray | Selection] | None = None,
    live: bool = False,
) -> MapPoints:
    """The context's points (all, or a deterministic sample of about ``limit``), coloured by
    ``color`` (a numeric column, ``cluster``, ``shard``, or None) or by membership in
    ``members`` (a label and its row ids, or a resolved Selection such as a concept's join),
    marked when in ``sel``."""
    prep = None if members is not None or color not in (CLUSTER, None) or marks(sel) or not \
        context(sel).is_empty() else _prepared(con, live)  # fmt: skip
    if prep is not None and prep["draw_limit"] == limit:
        return _prepared_points(prep, color)
    cols, ctx, src = columns(con), context(sel), _source(con, live)
    table, (where, params) = _table(src), _where(con, ctx)
    total = con.execute(f"SELECT count(*) FROM {table} WHERE {where}", params).fetchall()[0][0]
    every = sample_every(total, limit)
    where += _thin(src, every)
    select = [
        "row_id",
        f"{quote_ident(MAP_X)}::FLOAT AS x",
        f"{quote_ident(MAP_Y)}::FLOAT AS y",
        f"coalesce(left(caption, {CAPTION_CHARS}), '') AS caption",
    ]
    sel_params: list[Any] = []
    if members is not None and isinstance(members[1], Selection):
        clause, more = members[1].where(cols)
        select.append(f"coalesce(({clause}), FALSE) AS color")
        sel_params += more
    elif members is not None:
        select.append("(row_id IN (SELECT unnest(?::BIGINT[]))) AS color")
        sel_params.append([int(i) for i in members[1]])
    elif color and color in cols:
        select.append(f"{quote_ident(color)} AS color")
    if marks(sel):
        inside, more = sel.where(cols)
        sel_params += more
        select.append(f"coalesce(({inside}), FALSE) AS inside")
    got = con.execute(
        f"SELECT {', '.join(select)} FROM {table} WHERE {where} ORDER BY row_id",
        [*sel_params, *params],
    ).fetchnumpy()
    values, categories = _colours(got, color, members)
    return MapPoints(
        row_id=np.asarray(got["row_id"], dtype=np.int64), x=np.asarray(got["x"], dtype=np.float32),
        y=np.asarray(got["y"], dtype=np.float32), caption=[str(c) for c in got["caption"]],
        color=values, categories=categories,
        inside=np.asarray(got["inside"], dtype=bool) if "inside" in got else None,
        total=int(total) if src is None else src.scale(total),
        every=every * (1 if src is None else src.every), estimated=src is not None,
    )  # fmt: skip


def extent(con: duckdb.DuckDBPyConnection,
           live: bool = False) -> tuple[float, float, float, float] | None:  # fmt: skip
    """(x min, x max, y min, y max) over every row, so the frame does not jump with filters."""
    prep = _prepared(con, live)
    if prep is not None:
        return tuple(prep["extent"]) if prep["extent"] else None  # type: ignore[return-value]
    x, y = quote_ident(MAP_X), quote_ident(MAP_Y)
    row = con.execute(
        f"SELECT min({x}), max({x}), min({y}), max({y}) FROM samples WHERE {HAS_COORDS}"
    ).fetchone()
    if row is None or row[0] is None:
        return None
    return tuple(float(v) for v in row)  # type: ignore[return-value]


QUANTILE_ROWS = 1_000_000  # quantiles and medians of the map over more rows use a sample


def _spread_sample(con: duckdb.DuckDBPyConnection, rows: int = QUANTILE_ROWS) -> str:
    """``" AND hash(row_id) % m = 0"`` keeping about ``rows`` rows (the same ones every time),
    or "" when there are fewer: an exact quantile sorts every row (~10 s at 10^8 rows), a
    quantile of 10^6 rows is as good for placing a frame or a label."""
    n = con.execute("SELECT count(*) FROM samples").fetchone()[0]  # parquet: from metadata
    every = sample_every(n, rows)
    return "" if every == 1 else f" AND hash(row_id) % {int(every)} = 0"


def view(con: duckdb.DuckDBPyConnection, tail: float = 0.005,
         live: bool = False) -> tuple[float, ...] | None:  # fmt: skip
    """The frame to show first: the central 99% of rows on each axis (of a sample above
    ``QUANTILE_ROWS``), so a few far-flung points
    (UMAP puts small, unlike groups far out) do not squeeze the rest into a corner. Points
    outside stay drawn; zooming out shows them."""
    prep = _prepared(con, live) if tail == 0.005 else None
    if prep is not None:
        return tuple(prep["view"]) if prep["view"] else None
    x, y = quote_ident(MAP_X), quote_ident(MAP_Y)
    row = con.execute(
        f"SELECT quantile_cont({x}, [?, ?]), quantile_cont({y}, [?, ?]) FROM samples "
        f"WHERE {HAS_COORDS}{_spread_sample(con)}",
        [tail, 1 - tail, tail, 1 - tail],
    ).fetchone()
    if row is None or row[0] is None:
        return None
    (x0, x1), (y0, y1) = row
    return float(x0), float(x1), float(y0), float(y1)


@dataclass
class Density:
    """Row counts on a regular grid: cell (j, i) spans x0 + i*dx .. x0 + (i+1)*dx (same for y)."""

    x0: float
    dx: float
    y0: float
    dy: float
    counts: np.ndarray  # (ny, nx) int64


def density(
    con: duckdb.DuckDBPyConnection,
    sel: Selection,
    frame: tuple[float, float, float, float],
    bins: int = GRID,
    live: bool = False,
) -> Density:
    """Counts of the context's rows per grid cell, binned by DuckDB (``floor((x - x0)/dx)``
    group-by): a fixed-size answer however many rows there are."""
    prep = None if not context(sel).is_empty() else _prepared(con, live)
    if (prep is not None and prep["density"] and prep["grid"] == bins
            and tuple(prep["extent"]) == tuple(frame)):  # fmt: skip
        from backend.map_prepared_load import density_counts

        d = prep["density"]
        return Density(d["x0"], d["dx"], d["y0"], d["dy"], density_counts(prep, bins))
    x0, x1, y0, y1 = frame
    dx = (x1 - x0) / bins or 1.0
    dy = (y1 - y0) / bins or 1.0
    where, params = _where(con, context(sel))
    x, y = quote_ident(MAP_X), quote_ident(MAP_Y)
    src = _source(con, live)  # (a sampled row stands for src.every rows)
    rows = con.execute(
        f"SELECT least(greatest(floor(({x} - ?) / ?)::INT, 0), ?) AS i, "
        f"least(greatest(floor(({y} - ?) / ?)::INT, 0), ?) AS j, count(*) "
        f"FROM {_table(src)} WHERE {where} GROUP BY 1, 2",
        [x0, dx, bins - 1, y0, dy, bins - 1, *params],
    ).fetchnumpy()
    counts = np.zeros((bins, bins), dtype=np.int64)
    if len(rows["i"]):
        counts[rows["j"], rows["i"]] = rows["count_star()"] * (1 if src is None else src.every)
    return Density(x0, dx, y0, dy, counts)


def clusters(
    con: duckdb.DuckDBPyConnection,
    sel: Selection,
    labels: list[dict[str, Any]] | None = None,
    live: bool = False,
) -> list[dict[str, Any]]:
    """One dict per cluster: ``cluster, label, terms, size`` (all rows), ``shown`` (rows in the
    context), ``x, y`` (label position); labels from the map step when given."""
    prep, src = _prepared(con, live), _source(con, live)
    if prep is not None and context(sel).is_empty():
        rows = prep["cluster_rows"]
    elif prep is not None and src is not None:  # sizes and places: the build's
        rows = _shown_in_sample(con, sel, src, prep["cluster_rows"])
    else:
        rows = _cluster_rows(con, sel)
    known = {int(d["cluster"]): d for d in labels or []}
    out = []
    for k, size, shown, cx, cy in rows:
        d = known.get(int(k), {})
        out.append(
            {
                "cluster": int(k),
                "label": str(d.get("label") or f"cluster {k}"),
                "terms": list(d.get("terms") or []),
                "size": int(size),
                "shown": int(shown),
                "x": float(d.get("x", cx)),
                "y": float(d.get("y", cy)),
            }
        )
    return out


def _cluster_rows(con: duckdb.DuckDBPyConnection, sel: Selection) -> list[tuple]:
    """(cluster, size, rows in the context, median x, median y) per cluster."""
    cols = columns(con)
    if CLUSTER not in cols:
        return []
    where, params = _where(con, context(sel))
    c, x, y = quote_ident(CLUSTER), quote_ident(MAP_X), quote_ident(MAP_Y)
    some = _spread_sample(con).removeprefix(" AND ") or "TRUE"  # medians: a sample will do
    rows = con.execute(
        f"SELECT {c}, count(*), count(*) FILTER (WHERE {where}), median({x}) FILTER (WHERE "
        f"{some}), median({y}) FILTER (WHERE {some}) "
        f"FROM samples WHERE {c} IS NOT NULL AND {HAS_COORDS} GROUP BY 1 ORDER BY 1",
        params,
    ).fetchall()
    return [tuple(r) for r in rows]


def _shown_in_sample(con: duckdb.DuckDBPyConnection, sel: Selection, src: RowSample,
                     prepared: list[list]) -> list[tuple]:  # fmt: skip
    """The build's cluster rows with their rows in the context estimated from the row sample."""
    where, params = _where(con, context(sel))
    shown = dict(con.execute(
        f"SELECT {quote_ident(CLUSTER)}, count(*) FROM {src.table} WHERE {where} GROUP BY 1",
        params).fetchall())  # fmt: skip
    return [(k, size, src.scale(shown.get(k, 0)), cx, cy) for k, size, _, cx, cy in prepared]


def load_labels(name: str, root: Path | None = None) -> list[dict[str, Any]]:
    """The map step's cluster labels, or [] when it wrote none (or is not installed)."""
    try:
        from backend.map_files import load_clusters
    except ImportError:
        return []
    try:
        return list(load_clusters(name, root))
    except (FileNotFoundError, ValueError, KeyError):
        return []


def sample_captions(
    con: duckdb.DuckDBPyConnection, sel: Selection, n: int = 2000, live: bool = False
) -> list[str]:
    """Up to ``n`` captions of the Selection, a deterministic spread (by hashed row id)."""
    prep = _prepared(con, live) if sel.is_empty() else None
    if prep is not None and n <= len(prep["background"]):
        return list(prep["background"][:n])
    where, params = sel.where(columns(con))
    src = _source(con, live)  # (a spread of the Selection's rows either way)
    rows = con.execute(
        f"SELECT caption FROM {_table(src)} WHERE ({where}) AND caption IS NOT NULL "
        "ORDER BY hash(row_id) LIMIT ?",
        [*params, n],
    ).fetchall()
    return [r[0] for r in rows]


def top_terms(
    con: duckdb.DuckDBPyConnection, sel: Selection, k: int = 8, n: int = 2000
) -> list[str]:
    """Words that set the Selection's captions apart from the dataset's (c-TF-IDF of a sample
    of each); [] when there is nothing to contrast or the terms module is missing."""
    try:
        from backend.terms import contrast_terms
    except ImportError:
        return []
    chosen = sample_captions(con, sel, n)
    if not chosen:
        return []
    background = sample_captions(con, Selection(), n)
    return list(contrast_terms(chosen, background, k=k))
