"""The DuckDB store of one dataset: ``samples``, ``rejects`` and ``build_manifest``.

The app only ever opens stores read-only with external access off; builds write a new file
aside and swap it in (see :mod:`backend.ingest`). ``store.duckdb`` is a symlink to the current
build's own file, because DuckDB hands back an already-open database instance for a path it has
open in this process: a new path per build is what makes a rebuilt store visible.
"""

from __future__ import annotations

import atexit
import os
import threading
import time
from pathlib import Path

import duckdb

from backend import paths
from backend.bounded import limits as bounded_limits

SCHEMA = """
CREATE TABLE rejects (key VARCHAR, shard VARCHAR, reason VARCHAR, detail VARCHAR);
CREATE TABLE build_manifest (name VARCHAR, body JSON);
"""


class StoreMissing(FileNotFoundError):
    """The dataset has no finished store: say which command builds it."""


def create_store(path: Path) -> duckdb.DuckDBPyConnection:
    """A new, writable store file with the fixed tables (``samples`` comes from ingest)."""
    con = duckdb.connect(str(path))
    con.execute(SCHEMA)
    return con


def connect(name: str, root: Path | None = None) -> duckdb.DuckDBPyConnection:
    """A read-only connection to dataset ``name`` that cannot touch files, network or extensions."""
    path = paths.store_path(name, root)
    if not path.is_file():
        raise StoreMissing(
            f"dataset {name!r} is not built: run `python -m backend build {name} --source PATH`"
            + (" or `python -m backend demo`" if name == "demo" else "")
        )
    from backend.column_files import all_files  # the columns steps added per shard

    # ``samples`` may be a view over the dataset's own parquet shards (backend.synth) and the
    # column files steps added to them; a concept filter reads the concept result sets.
    files = parquet_parts(name, root)
    files += all_files(name, root) if files else []
    ds_dir = paths.dataset_dir(name, root).resolve()
    # the concept result sets and the row sample (backend.row_sample): files written later
    folders = [str(ds_dir / "concepts") + os.sep, str(ds_dir / "rowsample") + os.sep]
    # Every query on a store runs under DuckDB's memory_limit (backend.bounded: a setting).
    memory = {"memory_limit": bounded_limits().memory}
    con = duckdb.connect(
        str(path.resolve()),  # each build has its own file: see swap_in
        read_only=True, config={**_NO_EXTENSIONS, **memory},
    )  # fmt: skip
    _lock_down(con, files, folders)
    return con


_NO_EXTENSIONS = {"autoload_known_extensions": False, "autoinstall_known_extensions": False}


def parquet_parts(name: str, root: Path | None = None) -> list[str]:
    """The dataset's parquet shards (``<dataset>/parts/*.parquet``, absolute, sorted); [] for a
    store whose ``samples`` is a table."""
    folder = paths.dataset_dir(name, root) / "parts"
    if not folder.is_dir():
        return []
    return sorted(str(p.resolve()) for p in folder.glob("*.parquet"))


def _lock_down(con: duckdb.DuckDBPyConnection, parts: list[str],
               folders: list[str] | None = None) -> None:  # fmt: skip
    """External access off except for exactly these files (and files under ``folders``: the
    concept result sets, which a new vocabulary adds to while the app runs), then the
    configuration locked.

    ``allowed_paths`` can only be set on a running database, so this is done with SETs, in this
    order. A second connection in this process shares the first one's (already locked) instance:
    it is checked, not set again. DuckDB's allowed paths are writable too (a ``COPY ... TO`` one
    of them would replace it): the SQL box refuses COPY (backend.sqlguard), and backend.synth
    leaves the shards and their folder read-only on disk.
    """
    got = dict(con.execute(
        "SELECT name, value FROM duckdb_settings() "
        "WHERE name IN ('lock_configuration', 'enable_external_access')").fetchall())  # fmt: skip
    if got.get("lock_configuration") == "true":
        if got.get("enable_external_access") != "false":
            con.close()
            raise RuntimeError("store opened elsewhere in this process without the lock-down")
        return
    con.execute("SET allowed_paths = ?", [parts])
    if folders:
        con.execute("SET allowed_directories = ?", [folders])
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")


_SHARED: dict[str, duckdb.DuckDBPyConnection] = {}
_SHARED_LOCK = threading.Lock()


@atexit.register
def _close_shared() -> None:
    """Close the shared connections while modules still exist: DuckDB's binding (nanobind)
    otherwise reports every object alive at teardown as a "leak" on stderr."""
    with _SHARED_LOCK:
        for con in _SHARED.values():
            try:
                con.close()
            except duckdb.Error:
                pass
        _SHARED.clear()


def cursor(name: str, root: Path | None = None) -> duckdb.DuckDBPyConnection:
    """A fresh cursor on a process-wide read-only connection to the current build (close it
    after use). Opening a store file costs ~20 ms; a cursor on an open one ~0.2 ms, which is
    what lets a search fetch its rows in a couple of milliseconds."""
    target = str(paths.store_path(name, root).resolve())
    with _SHARED_LOCK:
        con = _SHARED.get(target)
        if con is None:
            folder = os.path.dirname(target)
            for old in [k for k in _SHARED if os.path.dirname(k) == folder]:
                _SHARED.pop(old).close()  # an older build of this dataset
            con = _SHARED[target] = connect(name, root)
        return con.cursor()


def swap_in(new_store: Path, ds_dir: Path) -> None:
    """Give the new store its own file name, then atomically repoint ``store.duckdb`` at it.

    DuckDB keeps one database instance per file path in a process; a fresh path per build means
    a long-running app sees the new build on its next connect, while queries already running on
    the old file finish undisturbed (the old file is unlinked, not overwritten).
    """
    final = ds_dir / f"store-{time.time_ns()}.duckdb"
    os.replace(new_store, final)
    link = ds_dir / ".store.duckdb.link"
    link.unlink(missing_ok=True)
    link.symlink_to(final.name)
    os.replace(link, ds_dir / "store.duckdb")
    for old in ds_dir.glob("store-*.duckdb"):
        if old != final:
            old.unlink(missing_ok=True)
