"""Source readers, one per on-disk layout, and the detection of which one a path holds."""

from __future__ import annotations

from pathlib import Path

from backend.sources.base import Item, Reject, Sample, Shard, Source, SourceError
from backend.sources.embeddings import EmbeddingFolderSource
from backend.sources.folder import IMAGE_EXTS, FolderSource
from backend.sources.table import TABLE_EXTS, TableSource
from backend.sources.webdataset import WebDatasetSource

READERS: dict[str, type] = {
    "folder": FolderSource,
    "webdataset": WebDatasetSource,
    "parquet": TableSource,
    "csv": TableSource,
    "embeddings": EmbeddingFolderSource,
}
FORMATS = ("auto", *READERS)

__all__ = [
    "FORMATS",
    "Item",
    "Reject",
    "Sample",
    "Shard",
    "Source",
    "SourceError",
    "detect_format",
    "reader_for",
]


def detect_format(root: Path) -> str:
    """Guess the layout of ``root``; raise :class:`SourceError` when nothing usable is there."""
    if not root.exists():
        raise SourceError(f"source {root} does not exist")
    if root.is_file():
        suffix = root.suffix.lower()
        if suffix == ".tar":
            return "webdataset"
        if suffix in TABLE_EXTS:
            return "parquet"
        raise SourceError(f"{root.name}: not a .tar, .parquet or .csv file")
    has_vectors = (root / "img_emb").is_dir() or (root / "text_emb").is_dir()
    if (root / "metadata").is_dir() and has_vectors:
        return "embeddings"
    if next(root.rglob("*.tar"), None) is not None:
        return "webdataset"
    if any(p.suffix.lower() in IMAGE_EXTS for p in root.rglob("*") if p.is_file()):
        return "folder"
    if any(p.suffix.lower() in TABLE_EXTS for p in root.rglob("*") if p.is_file()):
        return "parquet"
    raise SourceError(
        f"{root} is empty or holds nothing Tailscope reads: expected images with .txt captions, "
        ".tar shards, .parquet/.csv tables, or a clip-retrieval embedding folder"
    )


def reader_for(fmt: str, options: dict | None = None) -> Source:
    """The reader of ``fmt``; ``options`` (``profile``, ``mapping``: see
    :mod:`backend.profiles`) apply to tables, and are refused for other layouts."""
    if fmt not in READERS:
        raise SourceError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    options = {k: v for k, v in (options or {}).items() if v}
    if options and READERS[fmt] is not TableSource:
        raise SourceError(
            f"--profile and --map-column apply to parquet/CSV/TSV tables, not to {fmt} sources"
        )
    return READERS[fmt](**options)
