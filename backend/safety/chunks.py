"""The score step's files: one parquet per scorer and chunk under ``<dataset>/.scores/``,
written atomically so a killed run resumes where it stopped, and ``score_errors.parquet``
(``scorer``, ``row_id``, ``reason``) for every row a scorer could not score.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from backend import paths
from backend.manifest import read_manifest, write_json_atomic
from backend.safety import Row, Scorer

ERRORS_FILE = "score_errors.parquet"


def scores_dir(name: str, root: Path | None = None) -> Path:
    return paths.dataset_dir(name, root) / ".scores"


def _prepare_dir(folder: Path, meta: dict[str, Any], rebuild: bool) -> int:
    """Keep ``folder``'s finished chunks when they were made the same way; return how many."""
    old = read_manifest(folder / "meta.json")
    if rebuild or old != meta:
        shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
    write_json_atomic(folder / "meta.json", meta)
    return len(list(folder.glob("*.parquet")))


def _chunk_path(folder: Path, lo: int) -> Path:
    return folder / f"{lo:012d}.parquet"


def _chunk_table(scorer: Scorer, rows: list[Row], values, errors) -> pa.Table:
    cols: dict[str, pa.Array] = {"row_id": pa.array([r["row_id"] for r in rows], pa.int64())}
    for col, typ in scorer.columns.items():
        cols[col] = pa.array(
            [None if e else v.get(col) for v, e in zip(values, errors, strict=True)], typ
        )
    cols["_error"] = pa.array(errors, pa.string())
    return pa.table(cols)


def _write_atomic(table: pa.Table, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)


def _read_all(folder: Path) -> pa.Table:
    parts = sorted(folder.glob("*.parquet"))
    return pa.concat_tables(pq.read_table(p) for p in parts)


def _write_errors(name: str, root: Path | None, fresh: pa.Table, scorers: list[str]) -> int:
    """Replace the run scorers' entries in the errors file; keep other scorers' entries."""
    path = paths.dataset_dir(name, root) / ERRORS_FILE
    keep = []
    if path.is_file():
        old = pq.read_table(path)
        mask = pc.invert(pc.is_in(old["scorer"], pa.array(scorers)))
        keep.append(old.filter(mask))
    table = pa.concat_tables([*keep, fresh]) if keep else fresh
    _write_atomic(table, path)
    return fresh.num_rows


def read_errors(name: str, root: Path | None = None) -> pa.Table:
    """``scorer``, ``row_id``, ``reason`` of every row a scorer could not score."""
    path = paths.dataset_dir(name, root) / ERRORS_FILE
    if not path.is_file():
        return pa.table({"scorer": pa.array([], pa.string()), "row_id": pa.array([], pa.int64()),
                         "reason": pa.array([], pa.string())})  # fmt: skip
    return pq.read_table(path)
