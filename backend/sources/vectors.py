"""Vectors a pool ships beside its metadata, read as *embedding sets*.

DataComp / CommonPool put a row-aligned ``<shard>.npz`` (``b32_img``, ``b32_txt``, ``l14_img``,
``l14_txt``, float16) beside each ``<shard>.parquet``; clip-retrieval folders hold
``img_emb/img_emb_N.npy`` and ``text_emb/text_emb_N.npy``; Hugging Face parquet may carry a
list-of-floats column. Each becomes a set recorded with its model. Alignment with the metadata
is checked per shard, never assumed: a file whose row count differs rejects its whole shard,
and a set whose dimension differs across shards stops the build with both files named.

Arrays are memory-mapped (``.npy``, and the members of an uncompressed ``.npz``, which is how
``np.savez`` writes them) or read one shard at a time (compressed members, parquet columns):
never the whole pool in memory.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from backend.sources.base import Item, Reject, Sample, Shard

F16_MAX = float(np.finfo(np.float16).max)
SCREEN_ROWS = 16_384  # rows checked for NaN/Inf at a time (25 MB of 768-d float16)

UNKNOWN = "unknown"


class VectorFileError(ValueError):
    """One shard's vector file cannot be paired with its metadata; the message says why."""

    def __init__(self, message: str, reason: str = "unreadable embeddings") -> None:
        super().__init__(message)
        self.reason = reason
        self.set: str | None = None


@dataclass(frozen=True)
class VectorSource:
    """Where one set's vectors for one shard are: a ``.npy``, an ``.npz`` member or a column."""

    set: str  # the set's name: l14_img, img, clip_embedding ...
    kind: str  # img | text: which tower made it
    model: str  # a model id (open_clip:ARCH/TAG) or "unknown"
    label: str  # the model in words
    origin: str  # who shipped it, in words: "DataComp .npz", "clip-retrieval folder" ...
    path: str
    member: str | None = None  # npz key or parquet column; None for a whole .npy

    @property
    def where(self) -> str:
        name = Path(self.path).name
        return f"{name}[{self.member}]" if self.member else name


# -- reading one file's header and array -------------------------------------------------------


def _npz_member(path: Path, key: str) -> tuple[zipfile.ZipFile, zipfile.ZipInfo]:
    try:
        zf = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as e:
        raise VectorFileError(f"{path.name} is not a readable .npz: {e}") from None
    names = {n.removesuffix(".npy"): n for n in zf.namelist()}
    if key not in names:
        zf.close()
        have = ", ".join(sorted(names)) or "nothing"
        raise VectorFileError(
            f"{path.name} has no {key!r} array (it holds: {have}; other shards ship it)",
            "missing embeddings",
        )
    return zf, zf.getinfo(names[key])


def _read_header(fh) -> tuple[tuple[int, ...], np.dtype, bool]:
    version = np.lib.format.read_magic(fh)
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(fh)
    return np.lib.format.read_array_header_2_0(fh)


def _check(shape: tuple[int, ...], dtype: np.dtype, where: str) -> tuple[int, int, np.dtype]:
    if len(shape) != 2:
        raise VectorFileError(f"{where} is {len(shape)}-D, not rows x dim")
    if dtype.kind != "f":
        raise VectorFileError(f"{where} holds {dtype}, not floats")
    return int(shape[0]), int(shape[1]), dtype


def header(src: VectorSource) -> tuple[int, int, np.dtype]:
    """(rows, dim, dtype) of ``src`` without reading its data."""
    path = Path(src.path)
    if not path.is_file():
        raise VectorFileError(f"{path.name} is missing beside its metadata", "missing embeddings")
    try:
        if src.member is None:
            with path.open("rb") as fh:
                shape, fortran, dtype = _read_header(fh)
            return _check(shape, dtype, src.where)
        if path.suffix == ".npz":
            zf, info = _npz_member(path, src.member)
            with zf, zf.open(info) as fh:
                shape, fortran, dtype = _read_header(fh)
            return _check(shape, dtype, src.where)
        return _column_header(path, src.member)
    except VectorFileError:
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
        raise VectorFileError(f"{src.where} is not a numpy array file: {e}"[:300]) from None


def _column_header(path: Path, column: str) -> tuple[int, int, np.dtype]:
    meta = pq.ParquetFile(path)
    field = meta.schema_arrow.field(column)
    first = pq.ParquetFile(path).read_row_group(0, columns=[column]).column(0)
    dim = next((len(v) for v in first.to_pylist() if v is not None), 0)
    value = field.type.value_type
    return meta.metadata.num_rows, dim, np.dtype(value.to_pandas_dtype())


def open_array(src: VectorSource) -> np.ndarray:
    """The 2-D array of ``src``: memory-mapped where the file allows, else read (one shard)."""
    path = Path(src.path)
    if src.member is None:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    if path.suffix == ".npz":
        zf, info = _npz_member(path, src.member)
        with zf:
            if info.compress_type == zipfile.ZIP_STORED:  # np.savez: map it where it lies
                with path.open("rb") as raw:
                    raw.seek(info.header_offset + 26)
                    lengths = np.frombuffer(raw.read(4), "<u2")
                    start = info.header_offset + 30 + int(lengths.sum())
                    raw.seek(start)
                    shape, fortran, dtype = _read_header(raw)
                    offset = raw.tell()
                order = "F" if fortran else "C"
                return np.memmap(path, dtype, "r", offset, shape, order)
            with zf.open(info) as fh:
                return np.lib.format.read_array(fh, allow_pickle=False)
    return _column_array(path, src.member)


def _column_array(path: Path, column: str) -> np.ndarray:
    """A list-of-floats column as rows x dim; rows of another length (or null) are NaN, so
    the screen rejects them and every other row stays aligned."""
    col = pq.read_table(path, columns=[column]).column(0).combine_chunks()
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks() if col.num_chunks else pa.array([], col.type)
    lengths = col.value_lengths().fill_null(0).to_numpy(zero_copy_only=False)
    dim = int(np.bincount(lengths).argmax()) if len(lengths) else 0
    values = col.flatten().to_numpy(zero_copy_only=False)
    dtype = values.dtype if values.dtype.kind == "f" else np.dtype(np.float32)
    out = np.full((len(col), dim), np.nan, dtype)
    ok = lengths == dim
    if ok.all():
        return values.astype(dtype, copy=False).reshape(len(col), dim)
    offsets = col.offsets.to_numpy()[:-1]
    for row in np.flatnonzero(ok):
        out[row] = values[offsets[row] - offsets[0] : offsets[row] - offsets[0] + dim]
    return out


# -- one shard: check alignment, find the rows whose vectors cannot be kept ----------------------


def open_shard(sources: tuple[VectorSource, ...], rows: int) -> dict[str, np.ndarray]:
    """Each set's array for a shard of ``rows`` metadata rows; :class:`VectorFileError` when
    one is missing, unreadable or not row-aligned (the whole shard is then rejected)."""
    arrays = {}
    for src in sources:
        try:
            n, _dim, _dtype = header(src)
            if n != rows:
                raise VectorFileError(
                    f"{src.where} has {n} vectors but its metadata has {rows} rows",
                    "embeddings misaligned",
                )
            arrays[src.set] = open_array(src)
        except VectorFileError as e:
            e.set = src.set
            raise
        except (ValueError, OSError) as e:
            err = VectorFileError(f"{src.where}: {e}"[:300])
            err.set = src.set
            raise err from None
    return arrays


def list_problems(sources: tuple[VectorSource, ...]) -> dict[int, tuple[str, str]]:
    """Rows of vector *columns* whose list is null or of another length than the column's
    usual one: ``{row: ("missing embedding", detail)}`` (they would read as NaN rows)."""
    out: dict[int, tuple[str, str]] = {}
    for src in sources:
        if src.member is None or Path(src.path).suffix == ".npz":
            continue
        col = pq.read_table(src.path, columns=[src.member]).column(0).combine_chunks()
        lengths = col.value_lengths().to_numpy(zero_copy_only=False)
        valid = ~pd_isnull(lengths)
        dim = int(np.bincount(lengths[valid].astype(np.int64)).argmax()) if valid.any() else 0
        for r in np.flatnonzero(~valid):
            out.setdefault(int(r), ("missing embedding", f"{src.set}: no vector"))
        for r in np.flatnonzero(valid & (np.where(valid, lengths, dim) != dim)):
            n = int(lengths[r])
            out.setdefault(int(r), ("missing embedding", f"{src.set}: {n} values, not {dim}"))
    return out


def pd_isnull(a: np.ndarray) -> np.ndarray:
    """Null entries of an array converted from arrow (None in object arrays, NaN in floats)."""
    if a.dtype == object:
        return np.array([v is None for v in a], bool)
    return np.isnan(a) if a.dtype.kind == "f" else np.zeros(len(a), bool)


def with_vectors(shard: Shard, items: Iterator[Item], rows: int) -> Iterator[Item]:
    """``items`` (one per metadata row, in order) paired with the shard's shipped vectors:
    each kept sample learns its ``vec_row``; a row whose vectors cannot be kept becomes a
    reject; a shard whose files cannot be paired is rejected as one item with the reason."""
    if not shard.vectors:
        yield from items
        return
    try:
        arrays = open_shard(shard.vectors, rows)
    except VectorFileError as e:
        key = shard.name if e.reason == "embeddings misaligned" else f"{shard.name}#{e.set}"
        yield Reject(key, e.reason, str(e)[:300])
        return
    bad = {**screen(arrays), **list_problems(shard.vectors)}
    del arrays
    for row, item in enumerate(items):
        if isinstance(item, Sample):
            if row in bad:
                yield Reject(item.key, *bad[row])
                continue
            item.vec_row = row
        yield item


def _finite_rows(chunk: np.ndarray) -> np.ndarray:
    """Rows with only finite values. Float16 (what DataComp ships) is tested on its bits: the
    exponent all ones is inf or NaN; twice as fast as ``isfinite``, which converts first."""
    if chunk.dtype == np.float16 and chunk.flags.c_contiguous:
        return (chunk.view(np.uint16) & np.uint16(0x7FFF)).max(axis=1, initial=0) < 0x7C00
    return np.isfinite(chunk).all(axis=1)


def screen(arrays: dict[str, np.ndarray]) -> dict[int, tuple[str, str]]:
    """Rows whose vectors cannot be kept: ``{row: (reason, detail)}`` — non-finite values, or
    values float16 cannot hold (they would turn into inf when stored)."""
    if not arrays:
        return {}
    n = len(next(iter(arrays.values())))
    nonfinite: dict[int, list[str]] = {}
    huge: dict[int, list[str]] = {}
    for name, arr in arrays.items():
        for lo in range(0, n, SCREEN_ROWS):
            chunk = np.asarray(arr[lo : lo + SCREEN_ROWS])
            finite = _finite_rows(chunk)
            for r in np.flatnonzero(~finite):
                nonfinite.setdefault(lo + int(r), []).append(name)
            if chunk.dtype.itemsize > 2:
                big = np.abs(np.where(np.isfinite(chunk), chunk, 0)).max(axis=1) > F16_MAX
                for r in np.flatnonzero(big & finite):
                    huge.setdefault(lo + int(r), []).append(name)
    out = {r: ("non-finite embedding", ", ".join(sets)) for r, sets in nonfinite.items()}
    for r, sets in huge.items():
        out.setdefault(
            r,
            ("embedding out of range", f"{', '.join(sets)}: values beyond ±{F16_MAX:g} (float16)"),
        )
    return out


# -- planning: which sets a source ships, checked across its shards ------------------------------


def check_dims(per_shard: list[tuple[VectorSource, ...]]) -> None:
    """Raise SourceError when one set has different dimensions across shards (naming both)."""
    from backend.sources.base import SourceError

    seen: dict[str, tuple[int, str]] = {}
    for sources in per_shard:
        for src in sources:
            try:
                _n, dim, _dtype = header(src)
            except VectorFileError:
                continue  # that shard is rejected when read; it says why
            first = seen.setdefault(src.set, (dim, src.where))
            if first[0] != dim:
                raise SourceError(
                    f"{src.set} vectors have different dimensions across shards: "
                    f"{first[0]}-d in {first[1]} but {dim}-d in {src.where}"
                )
