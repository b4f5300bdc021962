"""``python -m backend relocate NAME --source NEW``: the source folder moved; point the store at
its new place, after checking that the files there are the ones ingested.

Rows keep where their image lives (``path``: a file, a tar, a parquet file) as it was at
ingest, under the source root the manifest records. Moving that folder breaks every image; this
rewrites the ``path`` prefix from the recorded root to the new one, in a copy of the store that
is swapped in as a build is (the ingest build, row ids and captions stay the same, so indexes,
subsets and scores stay valid). The check first reads a sample of images at their new place
and compares their SHA-256 with the one taken at ingest (or the byte size where there is none).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
from pathlib import Path
from typing import Any

import duckdb

from backend import paths
from backend.columns import store_lock
from backend.manifest import now, read_manifest, write_json_atomic
from backend.media import MediaError, image_bytes
from backend.store import connect, parquet_parts, swap_in

SAMPLE = 32  # images read at the new place before anything is changed


class RelocateError(ValueError):
    """The new place does not hold the dataset's files (or the dataset cannot be relocated)."""


UNDER = "(path = ? OR starts_with(path, ? || '/'))"  # the source itself, or inside it


def _moved(path: str, old: str, new: str) -> str:
    return new + path[len(old) :]


def _sample(con: duckdb.DuckDBPyConnection, old: str, n: int) -> list[dict[str, Any]]:
    """Up to ``n`` rows with image bytes under ``old``, one per distinct file first."""
    cols = {c for (c,) in con.execute("SELECT column_name FROM information_schema.columns "
                                      "WHERE table_name = 'samples'").fetchall()}  # fmt: skip
    want = [c for c in ("row_id", "storage", "path", "byte_offset", "byte_size", "src_row",
                        "file_size", "sha256") if c in cols]  # fmt: skip
    cur = con.execute(
        f"SELECT {', '.join(want)} FROM (SELECT *, row_number() OVER (PARTITION BY path "
        f"ORDER BY row_id) AS k FROM samples WHERE {UNDER}) "
        "ORDER BY k, hash(path) LIMIT ?",
        [old, old, int(n)],
    )
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def check(rows: list[dict[str, Any]], old: str, new: str) -> int:
    """Read each sampled image at its new place; raise :class:`RelocateError` naming the first
    one that is missing or differs. Returns how many were compared."""
    for row in rows:
        moved = {**row, "path": _moved(row["path"], old, new)}
        try:
            data = image_bytes(moved)
        except (MediaError, OSError, ValueError) as e:
            raise RelocateError(f"{moved['path']} cannot be read ({e}): is {new} the moved "
                                "source folder?") from None  # fmt: skip
        if data is None:
            raise RelocateError(f"{moved['path']}: no image there")
        if row.get("sha256"):
            same = hashlib.sha256(data).hexdigest() == row["sha256"]
        else:
            same = row.get("file_size") in (None, len(data))
        if not same:
            raise RelocateError(f"{moved['path']} is not the file that was ingested (its "
                                "SHA-256 differs): nothing was changed")  # fmt: skip
    return len(rows)


def relocate(name: str, new_source: str | Path, root: Path | None = None) -> dict[str, Any]:
    """Point dataset ``name`` at ``new_source``; returns ``{old, new, rows, checked}``."""
    ds_dir = paths.dataset_dir(name, root)
    manifest = read_manifest(paths.manifest_path(name, root))
    old = manifest.get("source")
    new = str(Path(new_source).expanduser().resolve())
    if not old:
        raise RelocateError(f"dataset {name!r} records no source folder to move from")
    if parquet_parts(name, root):
        raise RelocateError(f"dataset {name!r} keeps its rows in parquet parts: rebuild it "
                            "from the new place instead")  # fmt: skip
    if not Path(new).exists():
        raise RelocateError(f"{new} does not exist")
    if new == old:
        raise RelocateError(f"dataset {name!r} already reads from {new}")
    con = connect(name, root)
    try:
        rows = _sample(con, old, SAMPLE)
        n = con.execute(f"SELECT count(*) FROM samples WHERE {UNDER}", [old, old]).fetchone()[0]
    finally:
        con.close()
    checked = check(rows, old, new)
    _rewrite(name, ds_dir, old, new, root)
    manifest["source"] = new
    manifest.setdefault("relocated", []).append({"from": old, "to": new, "at": now(),
                                                 "rows": n, "checked": checked})  # fmt: skip
    write_json_atomic(paths.manifest_path(name, root), manifest)
    return {"old": old, "new": new, "rows": n, "checked": checked}


def _rewrite(name: str, ds_dir: Path, old: str, new: str, root: Path | None) -> None:
    """A copy of the store with the ``path`` prefix changed, swapped in as a build is."""
    tmp = ds_dir / f".relocate-{os.getpid()}.duckdb"
    with store_lock(name, root):
        shutil.copyfile(paths.store_path(name, root).resolve(), tmp)
        try:
            con = duckdb.connect(str(tmp))
            try:
                con.execute(f"UPDATE samples SET path = ? || substr(path, ?) WHERE {UNDER}",
                            [new, len(old) + 1, old, old])  # fmt: skip
                con.execute("CHECKPOINT")
            finally:
                con.close()
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        swap_in(tmp, ds_dir)


def cmd_relocate(args: argparse.Namespace) -> int:
    out = relocate(args.name, args.source)
    print(f"{args.name}: {out['rows']:,} rows now read from {out['new']} (was {out['old']}; "
          f"{out['checked']} images checked against their SHA-256)")  # fmt: skip
    return 0


def add_parser(sub) -> None:
    """Add the ``relocate`` subcommand to the CLI's subparsers."""
    r = sub.add_parser("relocate", help="the source folder of NAME moved: read it from NEW")
    r.add_argument("name")
    r.add_argument("--source", required=True, help="where the source folder is now")
    r.set_defaults(func=cmd_relocate)
