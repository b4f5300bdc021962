"""Read back what the build prepared for the Map page (:mod:`backend.map_prepared` writes it):
the unfiltered map's answers when they match the dataset's current map, else None.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow.parquet as pq

from backend.file_cache import FileCache, store_file
from backend.manifest import read_manifest

FOLDER = ("map", "prepared")


def folder(ds_dir: Path) -> Path:
    return ds_dir.joinpath(*FOLDER)


def _map_stamp(ds_dir: Path) -> str | None:
    """The map step's identity: its finish time (a new map run or a rebuild changes it)."""
    steps = read_manifest(ds_dir / "manifest.json").get("steps", {})
    m = steps.get("map") or {}
    stamp = m.get("finished_at")
    return None if stamp is None else f"{stamp}|{(steps.get('ingest') or {}).get('finished_at')}"


def density_counts(rec: dict[str, Any], bins: int) -> np.ndarray:
    counts = np.zeros((bins, bins), dtype=np.int64)
    cells = np.asarray(rec["density"]["nonzero"], dtype=np.int64).reshape(-1, 3)
    counts[cells[:, 0], cells[:, 1]] = cells[:, 2]
    return counts


_CACHE: FileCache[dict[str, Any] | None] = FileCache()


def store_dir(con: duckdb.DuckDBPyConnection) -> Path | None:
    """The dataset folder of a store connection (its file lives there), or None in memory."""
    store = store_file(con)
    return None if store is None else store.parent


def load(con: duckdb.DuckDBPyConnection) -> dict[str, Any] | None:
    """The prepared answers of this store's dataset when they match its current map, with
    the sample as ``points`` (a pyarrow table); None when absent or stale."""
    ds_dir = store_dir(con)
    if ds_dir is None:
        return None
    watch = [folder(ds_dir) / "prepared.json", ds_dir / "manifest.json"]
    return _CACHE.get(str(ds_dir), watch, lambda: _read(ds_dir))


def _read(ds_dir: Path) -> dict[str, Any] | None:
    try:
        rec = json.loads((folder(ds_dir) / "prepared.json").read_text())
        if rec.get("map") is None or rec["map"] != _map_stamp(ds_dir):
            return None
        rec["points"] = pq.read_table(folder(ds_dir) / "sample.parquet")
        return rec
    except (OSError, ValueError, KeyError):
        return None
