"""Write one img2dataset-style shard: a reproducible tar plus its parquet listing.

Tar headers carry no clock, user or host, so the same items always give the same bytes.
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path
from types import TracebackType

import pyarrow as pa
import pyarrow.parquet as pq

PARQUET_SCHEMA = pa.schema(
    [
        ("key", pa.string()),
        ("url", pa.string()),
        ("caption", pa.string()),
        ("status", pa.string()),
        ("width", pa.int64()),
        ("height", pa.int64()),
    ]
)


class ShardWriter:
    """``00007.tar`` and ``00007.parquet`` side by side, written member by member."""

    def __init__(self, tar_path: Path) -> None:
        self.tar_path = tar_path
        self.rows: list[dict] = []
        self._tar = tarfile.open(tar_path, mode="w", format=tarfile.PAX_FORMAT)

    def add_member(self, name: str, data: bytes) -> None:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        info.mtime = 0
        info.mode = 0o644
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        self._tar.addfile(info, io.BytesIO(data))

    def add_row(self, row: dict) -> None:
        self.rows.append(row)

    def close(self) -> None:
        self._tar.close()
        table = pa.Table.from_pylist(self.rows, schema=PARQUET_SCHEMA)
        pq.write_table(table, self.tar_path.with_suffix(".parquet"))

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self._tar.close()
