"""What the Map page reads on open, prepared by the build: the drawn sample with its hover text,
the density grid, the frame, the cluster table and a background sample of captions.

At 10^8 rows the page's first visit otherwise scans every row several times (the sample's
captions, the grid, the quantiles of the frame, the cluster medians: ~15 s on 2 cores). These
are the answers for the *unfiltered* map, so the build step computes them once
(``map/prepared/``: ``sample.parquet`` and ``prepared.json``) with exactly the queries
:mod:`backend.mapview` runs, and mapview returns them when the Selection leaves every row in.
They are tied to the map step's record (its ``finished_at``): a new map makes them stale, and
stale or absent files mean the live queries run as before.

This module writes them; :mod:`backend.map_prepared_load` reads them back for
:mod:`backend.mapview`, whose queries :func:`prepare` runs (so the reading side lives apart).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from backend import paths
from backend.manifest import write_json_atomic
from backend.map_prepared_load import _CACHE, _map_stamp, folder

BACKGROUND = 2000  # captions for the contrast of a selection's words (mapview.top_terms)


def prepare(name: str, root: Path | None = None) -> dict[str, Any]:
    """Compute and write the unfiltered map's answers for dataset ``name``; returns the record.
    Uses the app's own read-only connection and :mod:`backend.mapview`'s own queries."""
    from backend import mapview
    from backend.selection import Selection
    from backend.store import connect

    ds_dir = paths.dataset_dir(name, root)
    con = connect(name, root)
    try:
        cols = mapview.columns(con)
        if not mapview.has_map(cols):
            raise FileNotFoundError(f"dataset {name!r} has no map: run `python -m backend map "
                                    f"{name}`")  # fmt: skip
        everything = Selection()
        pts = mapview.points(con, everything, limit=mapview.DRAW_LIMIT, live=True)
        extent = mapview.extent(con)
        dens = mapview.density(con, everything, extent, live=True) if extent else None
        record = {
            "map": _map_stamp(ds_dir), "total": pts.total, "every": pts.every,
            "draw_limit": mapview.DRAW_LIMIT, "grid": mapview.GRID, "extent": extent,
            "view": mapview.view(con, live=True),
            "cluster_rows": [[int(k), int(a), int(b), _num(x), _num(y)] for k, a, b, x, y
                             in mapview._cluster_rows(con, everything)],
            "density": None if dens is None else {
                "x0": dens.x0, "dx": dens.dx, "y0": dens.y0, "dy": dens.dy,
                "nonzero": _sparse(dens.counts)},
            "background": mapview.sample_captions(con, everything, BACKGROUND, live=True),
        }  # fmt: skip
    finally:
        con.close()
    out = folder(ds_dir)
    out.mkdir(parents=True, exist_ok=True)
    table = pa.table({"row_id": pts.row_id, "x": pts.x, "y": pts.y, "caption": pts.caption,
                      "cluster": pts.color if pts.color is not None else
                      np.full(len(pts.row_id), np.nan, np.float32)})  # fmt: skip
    tmp = out / ".sample.parquet.tmp"
    pq.write_table(table, tmp, compression="zstd")
    tmp.replace(out / "sample.parquet")
    write_json_atomic(out / "prepared.json", record)
    _CACHE.clear()
    return {k: record[k] for k in ("total", "every", "grid")}


def _num(v: Any) -> float | None:
    return None if v is None else float(v)


def _sparse(counts: np.ndarray) -> list[list[int]]:
    """(j, i, count) of the non-empty cells: a 160×160 grid is mostly empty."""
    j, i = np.nonzero(counts)
    return np.stack([j, i, counts[j, i]], axis=1).tolist()
