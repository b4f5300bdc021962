"""``export()``: write the chosen rows of a dataset in one format, with a manifest saying how.

Work happens in a hidden ``.<name>.partial`` folder beside the final one and is renamed into
place at the end, so a reader never sees half an export and an existing export is replaced
only when asked (``overwrite=True``).
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from backend.export import tables
from backend.export.rows import ExportError, Plan, plan
from backend.export.target import MANIFEST, resolve_out
from backend.export.uids import BadUid, uids_to_array
from backend.export.wds import STATE, write_webdataset
from backend.manifest import now, sha256_file, versions, write_json_atomic
from backend.selection import Selection, quote_ident

FORMATS = ("parquet", "jsonl", "csv", "webdataset", "urls", "uids")
TABLE_WRITERS = {
    "parquet": ("data.parquet", tables.write_parquet),
    "jsonl": ("data.jsonl", tables.write_jsonl),
    "csv": ("data.csv", tables.write_csv),
    "urls": ("urls.parquet", tables.write_urls),
}
Progress = Callable[[int, int], None]  # (rows done, rows total)


class ExportExists(ExportError):
    """The export folder is already there and overwrite was not asked for."""


@dataclass
class ExportResult:
    count: int
    files: list[dict[str, Any]]
    manifest: Path
    seconds: float
    out: Path
    skipped: int = 0
    notes: list[str] = field(default_factory=list)


def _file_record(
    path: Path, base: Path, rows: int | None = None, sha256: str | None = None
) -> dict[str, Any]:
    rec = {"path": path.relative_to(base).as_posix(), "bytes": path.stat().st_size,
           "sha256": sha256 or sha256_file(path)}  # fmt: skip
    if rows is not None:
        rec["rows"] = rows
    return rec


def _ticker(total: int, progress: Progress | None) -> Callable[[int], None]:
    done = 0

    def tick(n: int) -> None:
        nonlocal done
        done += n
        if progress:
            progress(min(done, total), total)

    return tick


def _write_table(p: Plan, fmt: str, tmp: Path, cols: list[str], tick) -> tuple[list[dict], int]:
    fname, writer = TABLE_WRITERS[fmt]
    if fmt == "urls":
        if "url" not in p.columns:
            raise ExportError(f"{p.name!r} has no url column: there are no urls to export")
        extra = "url IS NOT NULL AND url <> ''"
        cols, total = ["url", "caption"], p.count(extra)
    else:
        extra, total = "", p.total
    schema = _schema(p, cols)
    n = writer(p.batches(cols, extra_where=extra), schema, tmp / fname, tick)
    if n != total:
        raise ExportError(f"wrote {n} rows but {total} were selected: the store changed?")
    return [_file_record(tmp / fname, tmp, n)], n


def _schema(p: Plan, cols: list[str]) -> pa.Schema:
    """The Arrow schema DuckDB gives these columns (read from an empty result)."""
    sel = ", ".join(quote_ident(c) for c in cols)
    return p.con.sql(f"SELECT {sel} FROM samples LIMIT 0").to_arrow_table().schema


def _write_uids(p: Plan, tmp: Path, tick) -> tuple[list[dict], int]:
    # a DataComp metadata parquet built directly keeps its uid as the row key
    col = "uid" if "uid" in p.columns else "key" if "key" in p.columns else None
    if col is None:
        raise ExportError(
            f"{p.name!r} has no uid column: a DataComp uid list needs the 128-bit hex `uid` "
            "field DataComp's metadata carries; use the parquet or urls format instead"
        )
    parts = []
    for b in p.batches([col]):
        try:
            parts.append(uids_to_array(b.column(0).to_pylist()))
        except BadUid as e:
            if col == "key":
                raise ExportError(f"{p.name!r} has no uid column and its keys are not DataComp "
                                  f"uids ({e}); use the parquet or urls format") from e  # fmt: skip
            raise ExportError(f"cannot write a uid list: {e}") from e
        tick(b.num_rows)
    arr = np.unique(np.concatenate(parts)) if parts else uids_to_array([])
    np.save(tmp / "uids.npy", arr)
    return [_file_record(tmp / "uids.npy", tmp, len(arr))], len(arr)


def _target(
    name: str, fmt: str, out: str | Path, root: Path | None, allow_absolute: bool, overwrite: bool
) -> Path:
    """The export's final folder, or an error for an unknown format or an existing export."""
    if fmt not in FORMATS:
        raise ExportError(f"unknown format {fmt!r}: choose one of {', '.join(FORMATS)}")
    final = resolve_out(name, out, root, allow_absolute)
    if final.exists() and not overwrite:
        raise ExportExists(
            f"an export already exists at {final}: choose another name or pass overwrite"
        )
    return final


def _webdataset_files(state: dict, tmp: Path, notes: list[str]) -> tuple[list[dict], int, int]:
    """The finished WebDataset shards as file records, the rows written and the rows left
    out (said in ``notes``); the resume state file is removed."""
    files = [_file_record(tmp / s["file"], tmp, s["rows"], s.get("sha256"))
             for s in state["shards"]]  # fmt: skip
    count, skipped = sum(s["rows"] for s in state["shards"]), state["skipped"]
    if skipped:
        notes.append(f"{skipped} row(s) without a readable image were left out")
    (tmp / STATE).unlink(missing_ok=True)
    return files, count, skipped


def _add_provenance(manifest: dict[str, Any], p: Plan, name: str, root: Path | None) -> None:
    """What the manifest records beside the rows: the recipe's filter impact, the cluster
    mixture a subset was drawn as, the removal log and the link-rot run, where they apply."""
    from backend.impact import for_export  # the recipe's filter impact, beside it

    manifest["impact"] = for_export(p.con, name, root, p.where, p.params)
    from backend.mixture import record_of  # a subset drawn as a cluster mixture: its recipe

    if (mix := record_of(name, p.recipe.get("subset"), root)) is not None:
        manifest["mixture"] = mix
    from backend.blocklists import manifest_entry  # the removal log as of this export

    if (log := manifest_entry(name, root, p.recipe, p.row_ids)) is not None:
        manifest["removal_log"] = log
    from backend.linkrot import manifest_entry as link_rot_entry  # link_* filters' run

    if (rot := link_rot_entry(name, root, p.recipe)) is not None:
        manifest["link_rot"] = rot


def export(
    name: str,
    *,
    selection: Selection | None = None,
    subset: str | None = None,
    row_ids: Any = None,
    fmt: str,
    out: str | Path,
    root: Path | None = None,
    columns: Sequence[str] | None = None,
    shard_size: int = 10_000,
    overwrite: bool = False,
    progress: Progress | None = None,
    allow_absolute: bool = False,
) -> ExportResult:
    """Export the rows of ``name`` picked by a selection, a saved subset or row ids (or all)
    in ``fmt`` to the folder ``out`` (a plain name under the dataset's export folder; an
    absolute folder only with ``allow_absolute``, as the CLI passes for a user's ``--out``)."""
    t0, started = time.perf_counter(), now()
    final = _target(name, fmt, out, root, allow_absolute, overwrite)
    tmp = final.parent / f".{final.name}.partial"
    p = plan(name, selection=selection, subset=subset, row_ids=row_ids, root=root)
    try:
        cols = p.select(columns)
        options = {"columns": list(columns) if columns else None}
        if fmt == "webdataset":
            options["shard_size"] = int(shard_size)
        key = {"format": fmt, "recipe": p.recipe, "source": p.source, "options": options}
        if fmt != "webdataset":
            shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True, exist_ok=True)
        tick = _ticker(p.total, progress)
        tick(0)
        notes = list(p.notes)
        files, count, skipped, skipped_rows = _write(
            p, fmt, tmp, cols, columns, int(shard_size), key, tick, notes)
        seconds = time.perf_counter() - t0
        manifest = {
            "format": fmt, "recipe": p.recipe, "source": p.source, "selected": p.total,
            "count": count, "skipped": skipped, "skipped_rows": skipped_rows,
            "options": options, "files": files, "notes": notes, "versions": versions(),
            "started_at": started, "created_at": now(), "seconds": round(seconds, 3),
        }  # fmt: skip
        _add_provenance(manifest, p, name, root)
        write_json_atomic(tmp / MANIFEST, manifest)
    except BaseException:
        if fmt != "webdataset":  # a WebDataset export keeps its finished shards to resume
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        p.close()
    _swap(tmp, final, overwrite)
    return ExportResult(count, files, final / MANIFEST, seconds, final, skipped, notes)


def _write(p: Plan, fmt: str, tmp: Path, cols: list[str], columns: Sequence[str] | None,
           shard_size: int, key: dict[str, Any], tick, notes: list[str]
           ) -> tuple[list[dict], int, int, list]:
    """Write the rows in ``fmt`` under ``tmp``: (files, rows written, rows skipped, the skipped
    rows a WebDataset export lists); notes on what was left out are appended to ``notes``."""
    if fmt == "webdataset":
        meta_cols = cols if columns else [c for c in p.columns]
        state = write_webdataset(p, tmp, meta_cols, shard_size, key, tick)
        files, count, skipped = _webdataset_files(state, tmp, notes)
        return files, count, skipped, state["skipped_rows"]
    if fmt == "uids":
        files, count = _write_uids(p, tmp, tick)
        return files, count, 0, []
    files, count = _write_table(p, fmt, tmp, cols, tick)
    skipped = p.total - count
    if skipped:
        notes.append(f"{skipped} row(s) without a url were left out")
    return files, count, skipped, []


def _swap(tmp: Path, final: Path, overwrite: bool) -> None:
    """Rename the finished export into place; an old one (overwrite) is removed only after."""
    old = final.parent / f".{final.name}.old"
    if final.exists():
        if not overwrite:
            raise ExportExists(f"an export appeared at {final} meanwhile; kept at {tmp}")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)
