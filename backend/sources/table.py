"""Parquet or CSV tables of ``url, caption[, …]`` (LAION / DataComp metadata), and HF-style
parquet whose image column holds ``{bytes, path}`` structs or raw bytes."""

from __future__ import annotations

import codecs
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from backend import profiles
from backend.sources import table_vectors, vectors
from backend.sources.base import (
    STORAGE_PARQUET,
    STORAGE_URL,
    Item,
    Reject,
    Sample,
    Shard,
    SourceError,
)
from backend.sources.common import CAPTION_ALIASES, URL_ALIASES, extra_columns
from backend.text import decode_caption

TABLE_EXTS = (".parquet", ".csv", ".tsv")
KEY_ALIASES = ("key", "uid", "id", "sample_id", "image_id")
WIDTH_ALIASES = ("width", "original_width", "image_width")
HEIGHT_ALIASES = ("height", "original_height", "image_height")
IMAGE_ALIASES = ("image", "img", "jpg", "png", "image_bytes", "bytes")
BATCH_ROWS = 4096


def _find(names: list[str], aliases: tuple[str, ...]) -> str | None:
    lowered = {n.lower(): n for n in names}
    return next((lowered[a] for a in aliases if a in lowered), None)


def _image_column(schema: pa.Schema) -> str | None:
    """An HF-style struct column with a ``bytes`` field, or a binary column with an image name."""
    for f in schema:
        if pa.types.is_struct(f.type) and f.type.get_field_index("bytes") >= 0:
            return f.name
    name = _find(schema.names, IMAGE_ALIASES)
    if name and (
        pa.types.is_binary(schema.field(name).type)
        or pa.types.is_large_binary(schema.field(name).type)
    ):
        return name
    return None


def _schema(path: Path) -> pa.Schema:
    try:
        if path.suffix.lower() == ".parquet":
            return pq.read_schema(path)
        return _open_csv(path, []).schema
    except (pa.ArrowInvalid, OSError, UnicodeDecodeError) as e:
        raise SourceError(f"{path.name} cannot be read as a table: {str(e)[:300]}") from None


def _is_url(text: str) -> bool:
    return text.strip().lower().startswith(("http://", "https://"))


def headerless_names(path: Path) -> tuple[str, ...] | None:
    """Column names of a CC3M/CC12M-style TSV with no header row (``url<TAB>caption`` or
    ``caption<TAB>url``, told apart by which field of the first line is a URL), else None."""
    if path.suffix.lower() != ".tsv":
        return None
    try:
        with path.open("rb") as f:
            first = f.readline(1 << 16).decode("utf-8", errors="replace").rstrip("\r\n")
    except OSError:
        return None
    fields = first.split("\t")
    if len(fields) != 2 or _is_url(fields[0]) == _is_url(fields[1]):
        return None
    return ("url", "caption") if _is_url(fields[0]) else ("caption", "url")


def _open_csv(path: Path, malformed: list[str]) -> pacsv.CSVStreamingReader:
    """A streaming CSV reader; rows with the wrong number of fields go to ``malformed``.

    Caption columns are read as bytes so that a caption of digits ("1984") stays text and a
    cp1252 caption reaches :func:`decode_caption` instead of failing the whole file. A TSV
    with no header (CC3M/CC12M) gets its column names from :func:`headerless_names` and is
    read without quoting, as those files are written: a quote is part of the caption."""
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    given = headerless_names(path)

    def skip(row: pacsv.InvalidRow) -> str:
        try:
            malformed.append(row.text)
        except UnicodeDecodeError:
            malformed.append("(a line that is not valid UTF-8)")
        return "skip"

    parse = pacsv.ParseOptions(
        delimiter=delimiter, newlines_in_values=not given, invalid_row_handler=skip,
        quote_char=False if given else '"',
    )  # fmt: skip
    with path.open("rb") as f:
        utf16 = f.read(2) in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
    read = pacsv.ReadOptions(block_size=1 << 22, encoding="utf-16" if utf16 else "utf8",
                             column_names=list(given) if given else None)  # fmt: skip
    names = pacsv.open_csv(path, read_options=read, parse_options=parse).schema.names
    malformed.clear()  # the peek above may have seen the first block's bad rows
    text = {n: pa.binary() for n in names if n.lower() in CAPTION_ALIASES}
    convert = pacsv.ConvertOptions(column_types=text)
    return pacsv.open_csv(path, read_options=read, parse_options=parse, convert_options=convert)


def _batches(path: Path, malformed: list[str]) -> Iterator[pa.RecordBatch]:
    if path.suffix.lower() == ".parquet":
        yield from pq.ParquetFile(path).iter_batches(batch_size=BATCH_ROWS)
    else:
        yield from _open_csv(path, malformed)


def _is_text(t: pa.DataType) -> bool:
    return (
        pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_binary(t)
        or pa.types.is_large_binary(t) or pa.types.is_null(t)
        or (pa.types.is_dictionary(t) and _is_text(t.value_type))
    )  # fmt: skip


@dataclass(frozen=True)
class _Columns:
    """Which of a table's columns play which part, after its profile and hand mapping."""

    caption: str | None
    url: str | None
    key: str | None
    image: str | None
    width: str | None
    height: str | None
    scores: tuple[profiles.Field, ...]  # canonical score columns taken from shipped ones
    renames: dict[str, str]  # a source column whose name a canonical one takes -> src_<name>

    @property
    def used(self) -> set[str]:
        return {c for c in (self.caption, self.url, self.key, self.image) if c}


class TableSource:
    """``profile``: force a known pool's profile (None: detect it from the schema);
    ``mapping``: canonical name -> column, by hand (``--map-column``)."""

    format = "parquet"

    def __init__(self, profile: str | None = None, mapping: dict[str, str] | None = None):
        self.profile = profile
        self.mapping = dict(mapping or {})

    def resolve(self, path: Path, schema: pa.Schema | None = None) -> profiles.Resolved:
        """The profile of one file (detected or forced) with the fields it really has."""
        schema = schema if schema is not None else _schema(path)
        try:
            return profiles.resolve(
                schema.names, self.profile, self.mapping, where=path.name,
                headerless=headerless_names(path) is not None,
                image_struct=_image_column(schema) is not None,
            )  # fmt: skip
        except ValueError as e:
            raise SourceError(str(e)) from None

    def _columns(self, path: Path, schema: pa.Schema) -> _Columns:
        names = schema.names
        res = self.resolve(path, schema)

        def pick(canonical: str, aliases: tuple[str, ...]) -> str | None:
            return res.column(canonical) or _find(names, aliases)

        scores = tuple(f for f in res.fields if f.is_score)
        renames = {}
        for f in scores:
            for n in names:
                same = n == f.canonical and n == f.column and f.transform == "value"
                if n.lower() == f.canonical.lower() and not same:
                    renames[n] = f"src_{n}"
        return _Columns(
            pick("caption", CAPTION_ALIASES), pick("url", URL_ALIASES), pick("uid", KEY_ALIASES),
            _image_column(schema), pick("width", WIDTH_ALIASES), pick("height", HEIGHT_ALIASES),
            scores, renames,
        )  # fmt: skip

    def shards(self, root: Path) -> list[Shard]:
        if root.is_file():
            files = [root]
        else:
            files = sorted(p for p in root.rglob("*") if p.suffix.lower() in TABLE_EXTS)
        shards = []
        for f in files:
            schema = _schema(f)
            cols = self._columns(f, schema)
            caption, url, image = cols.caption, cols.url, cols.image
            missing = []
            if caption is None:
                missing.append(f"a caption column (one of: {', '.join(CAPTION_ALIASES)})")
            if url is None and image is None:
                missing.append(
                    f"a url column (one of: {', '.join(URL_ALIASES)}) or an image column "
                    "of {bytes, path} structs or raw bytes"
                )
            if caption is not None and not _is_text(schema.field(caption).type):
                missing.append(
                    f"a text caption column ({caption!r} holds {schema.field(caption).type})"
                )
            if missing:
                raise SourceError(
                    f"{f.name} lacks {' and '.join(missing)}; its columns are: "
                    f"{', '.join(schema.names) or '(none)'} (map one with --map-column "
                    "caption=COLUMN or url=COLUMN)"
                )
            rel = str(f.relative_to(root)) if f != root else f.name
            shards.append(Shard(rel, (f,), root))
        return table_vectors.attach(shards)  # DataComp's .npz beside a shard, HF vector columns

    def read(self, shard: Shard) -> Iterator[Item]:
        """Items in row order; rows paired with the shard's shipped vectors, if any."""
        if not shard.vectors:
            yield from self._rows(shard)
            return
        try:
            rows = table_vectors.table_rows(shard.paths[0])
        except (OSError, pa.ArrowInvalid) as e:
            yield Reject(shard.name, "unreadable table", str(e)[:300])
            return
        with_vecs = vectors.with_vectors(shard, self._rows(shard), rows)
        yield from table_vectors.drop_columns(shard, with_vecs)

    def _rows(self, shard: Shard) -> Iterator[Item]:
        path = shard.paths[0]
        cols = self._columns(path, _schema(path))
        stem = path.stem
        row = 0
        malformed: list[str] = []
        bad = 0
        try:
            for batch in _batches(path, malformed):
                for rec in batch.to_pylist():
                    yield self._item(rec, row, stem, path, cols)
                    row += 1
                bad += len(malformed)
                yield from _malformed(shard.name, malformed, bad)
            bad += len(malformed)
            yield from _malformed(shard.name, malformed, bad)
        except (pa.ArrowInvalid, OSError, UnicodeDecodeError) as e:
            yield Reject(f"{shard.name}#row{row}", "unreadable table", str(e)[:300])

    @staticmethod
    def _item(rec: dict, row: int, stem: str, path: Path, cols: _Columns) -> Item:
        key_col, cap_col, url_col, img_col = cols.key, cols.caption, cols.url, cols.image
        key = str(rec[key_col]) if key_col and rec.get(key_col) is not None else f"{stem}:{row}"
        raw = rec.get(cap_col)
        if isinstance(raw, bytes):
            caption, encoding = decode_caption(raw)
        else:
            caption, encoding = (raw.strip() or None if isinstance(raw, str) else None), "utf-8"
        if caption is None:
            return Reject(key, "missing caption", f"row {row}")
        url = rec.get(url_col) if url_col else None
        data = None
        if img_col:
            cell = rec.get(img_col)
            data = cell.get("bytes") if isinstance(cell, dict) else cell
            if not data and url is None:
                return Reject(key, "missing image", f"row {row}: empty {img_col}")
        extra = extra_columns(rec, cols.used)
        for old, new in cols.renames.items():
            if old in extra:
                extra[new] = extra.pop(old)
        extra.update(profiles.apply(rec, cols.scores))
        sample = Sample(
            key=key,
            caption=caption,
            caption_encoding=encoding,
            url=str(url) if url else None,
            storage=STORAGE_PARQUET if data else STORAGE_URL,
            path=str(path.resolve()) if data else None,
            src_row=row if data else None,
            image=data or None,
            extra=extra,
        )
        if data is None:
            sample.width = _int(rec.get(cols.width)) if cols.width else None
            sample.height = _int(rec.get(cols.height)) if cols.height else None
        return sample


def _malformed(shard: str, rows: list[str], seen: int) -> Iterator[Reject]:
    """One reject per CSV line with the wrong number of fields (then forget them); ``seen``
    counts them all so far, so each gets its own key."""
    first = seen - len(rows)
    for i, text in enumerate(rows):
        detail = f"wrong number of fields: {text}"[:300]
        yield Reject(f"{shard}#malformed{first + i}", "malformed row", detail)
    rows.clear()


def _int(v) -> int | None:
    try:
        return int(v) if v is not None else None
    except (TypeError, ValueError):
        return None
