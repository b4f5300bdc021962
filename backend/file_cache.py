"""Values read from small files the build writes, kept in memory while those files stay the
same (their modification times), so a page that asks on every rerun reads them once.

Used by what pages read per query: the Map's prepared answers (:mod:`backend.map_prepared_load`)
and the row sample's record (:mod:`backend.row_sample`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Generic, TypeVar

import duckdb

T = TypeVar("T")


class FileCache(Generic[T]):
    """``read()``'s value per key, read again when a watched file's mtime changes."""

    def __init__(self) -> None:
        self._got: dict[str, tuple[tuple[int, ...], T]] = {}
        self._lock = threading.Lock()

    def get(self, key: str, watch: list[Path], read: Callable[[], T]) -> T | None:
        """The value for ``key``; None (nothing read) when a watched file is missing."""
        try:
            stamp = tuple(p.stat().st_mtime_ns for p in watch)
        except OSError:
            return None
        with self._lock:
            hit = self._got.get(key)
        if hit is not None and hit[0] == stamp:
            return hit[1]
        value = read()
        with self._lock:
            self._got[key] = (stamp, value)
        return value

    def clear(self) -> None:
        with self._lock:
            self._got.clear()


def store_file(con: duckdb.DuckDBPyConnection) -> Path | None:
    """The store file a connection has open (its dataset folder is its parent), or None for
    an in-memory database."""
    got = con.execute("SELECT path FROM duckdb_databases() "
                      "WHERE database_name = current_database()").fetchall()  # fmt: skip
    return Path(got[0][0]) if got and got[0][0] else None
