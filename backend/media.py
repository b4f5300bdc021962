"""A row's image bytes, from wherever the source keeps them: a file, a tar member at a known
byte offset, a parquet cell. One seek and one read; never a scan of a whole tar."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from backend.images import thumbnail
from backend.sources.base import STORAGE_FILE, STORAGE_PARQUET, STORAGE_TAR
from backend.sources.table import _image_column

MAX_READ = 256 * 1024 * 1024


class MediaError(OSError):
    """The row's image could not be read (source moved, file changed)."""


def image_bytes(row: dict[str, Any]) -> bytes | None:
    """The row's image bytes, or None for url-only rows."""
    storage, path = row.get("storage"), row.get("path")
    if not path or storage not in (STORAGE_FILE, STORAGE_TAR, STORAGE_PARQUET):
        return None
    p = Path(path)
    try:
        if storage == STORAGE_FILE:
            return p.read_bytes()
        if storage == STORAGE_TAR:
            offset, size = int(row["byte_offset"]), int(row["byte_size"])
            if offset < 0 or not 0 <= size <= MAX_READ:
                raise MediaError(f"bad offset/size {offset}/{size} for {p.name}")
            with p.open("rb") as f:
                f.seek(offset)
                data = f.read(size)
            if len(data) != size:
                raise MediaError(f"{p.name} is shorter than when it was ingested")
            return data
        return _parquet_cell(p, int(row["src_row"]))
    except OSError as e:
        raise MediaError(f"cannot read image of row {row.get('row_id')}: {e}") from e


def _parquet_cell(path: Path, src_row: int) -> bytes | None:
    pf = pq.ParquetFile(path)
    col = _image_column(pf.schema_arrow)
    start = 0
    for rg in range(pf.num_row_groups):
        n = pf.metadata.row_group(rg).num_rows
        if src_row < start + n:
            cell = pf.read_row_group(rg, columns=[col]).column(0)[src_row - start].as_py()
            return cell.get("bytes") if isinstance(cell, dict) else cell
        start += n
    raise MediaError(f"{path.name} has no row {src_row}")


def thumb(row: dict[str, Any], size: int = 256) -> bytes | None:
    """A JPEG thumbnail of the row's image, or None when there are no bytes."""
    data = image_bytes(row)
    if not data:
        return None
    try:
        return thumbnail(data, size)
    except (OSError, ValueError, SyntaxError) as e:
        raise MediaError(f"image of row {row.get('row_id')} no longer decodes: {e}") from e
