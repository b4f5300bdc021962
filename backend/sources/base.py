"""What every source reader yields: samples to keep and rejects with a reason.

A source is split into shards (a tar, a parquet file, a folder) so that a build can skip the
shards it already finished and, later, run them on several workers.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

# How a row's image bytes are reached later, without re-reading the source.
STORAGE_FILE = "file"  # path is an image file
STORAGE_TAR = "tar"  # path is a tar; byte_offset/byte_size locate the member's data
STORAGE_PARQUET = "parquet"  # path is a parquet file; src_row is the row, image_column the column
STORAGE_URL = "url"  # no bytes: only the url is known


@dataclass
class Sample:
    key: str
    caption: str | None
    url: str | None = None
    storage: str = STORAGE_URL
    path: str | None = None
    byte_offset: int | None = None
    byte_size: int | None = None
    src_row: int | None = None
    width: int | None = None  # from metadata when there are no bytes to measure
    height: int | None = None
    image: bytes | None = None  # read during ingest to validate and hash, never stored
    caption_encoding: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    vec_row: int | None = None  # this row's index in its shard's shipped vectors (Shard.vectors)


@dataclass
class Reject:
    key: str
    reason: str
    detail: str = ""


Item = Sample | Reject


@dataclass(frozen=True)
class Shard:
    """One unit of ingest work; ``fingerprint`` changes when the shard's files change."""

    name: str
    paths: tuple[Path, ...]
    root: Path | None = None  # the source folder, for readers that need relative names
    vectors: tuple = ()  # VectorSource per shipped embedding set (backend.sources.vectors)

    @property
    def fingerprint(self) -> str:
        parts = []
        for p in self.paths:
            try:
                st = p.stat()
            except OSError:  # a dangling symlink or a vanished file: the reader rejects it
                parts.append(f"{p}:missing")
                continue
            parts.append(f"{p}:{st.st_size}:{st.st_mtime_ns}")
        return "|".join(parts)


class Source(Protocol):
    """A reader for one on-disk layout."""

    format: str

    def shards(self, root: Path) -> list[Shard]: ...

    def read(self, shard: Shard) -> Iterator[Item]: ...


class SourceError(ValueError):
    """The source as a whole cannot be read (wrong columns, nothing there): a clear message."""
