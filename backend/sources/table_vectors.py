"""The vector sets shipped with table shards: a DataComp ``.npz`` beside each ``.parquet``
(its keys named by :data:`DATACOMP_SETS`) and list-of-float columns inside one (Hugging Face
datasets with embeddings). Reading and checking them is :mod:`backend.sources.vectors`."""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from backend.sources.base import Item, Sample, Shard
from backend.sources.vectors import UNKNOWN, VectorSource, check_dims

# DataComp's npz keys: (kind, model id the registry can load, words for people)
DATACOMP_SETS = {
    "l14_img": ("img", "open_clip:ViT-L-14/openai", "OpenAI CLIP ViT-L/14"),
    "l14_txt": ("text", "open_clip:ViT-L-14/openai", "OpenAI CLIP ViT-L/14"),
    "b32_img": ("img", "open_clip:ViT-B-32/openai", "OpenAI CLIP ViT-B/32"),
    "b32_txt": ("text", "open_clip:ViT-B-32/openai", "OpenAI CLIP ViT-B/32"),
}


def datacomp_sets(parquets: list[Path]) -> dict[Path, tuple[VectorSource, ...]]:
    """The npz sets expected for each parquet: every key any shard's ``.npz`` holds (a shard
    lacking its npz, or one key, is rejected when read rather than silently misaligned)."""
    keys: list[str] = []
    for p in parquets:
        npz = p.with_suffix(".npz")
        if not npz.is_file():
            continue
        try:
            with zipfile.ZipFile(npz) as zf:
                names = [n.removesuffix(".npy") for n in zf.namelist()]
        except (OSError, zipfile.BadZipFile):
            continue
        keys += [k for k in names if k not in keys]
    if not keys:
        return {}
    known = [k for k in DATACOMP_SETS if k in keys]
    other = [k for k in keys if k not in DATACOMP_SETS and k.endswith(("_img", "_txt", "_text"))]
    out = {}
    for p in parquets:
        srcs = []
        for k in known + other:
            kind, model, label = DATACOMP_SETS.get(
                k, ("img" if k.endswith("_img") else "text", UNKNOWN, UNKNOWN)
            )
            srcs.append(
                VectorSource(k, kind, model, label, "DataComp .npz", str(p.with_suffix(".npz")), k)
            )
        out[p] = tuple(srcs)
    return out


FLOAT_TYPES = (pa.float16(), pa.float32(), pa.float64())


def vector_columns(schema: pa.Schema) -> list[str]:
    """Columns holding a list of floats per row (Hugging Face datasets with embeddings)."""
    out = []
    for f in schema:
        t = f.type
        if (
            pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)
        ) and (t.value_type in FLOAT_TYPES):
            out.append(f.name)
    return out


def column_kind(name: str) -> str:
    """Which tower a vector column's name suggests: text for text/caption names, else image."""
    low = name.lower()
    return "text" if any(w in low for w in ("text", "txt", "caption")) else "img"


def column_sets(path: Path, schema: pa.Schema) -> tuple[VectorSource, ...]:
    return tuple(
        VectorSource(c, column_kind(c), UNKNOWN, UNKNOWN, "parquet column", str(path), c)
        for c in vector_columns(schema)
    )


def attach(shards: list[Shard]) -> list[Shard]:
    """Table shards with the vectors shipped beside or inside them: a DataComp ``.npz`` next
    to each ``.parquet`` (also expected, and so rejected when missing, once any shard has one),
    and list-of-float columns. Raises SourceError when a set's dimension differs across shards."""
    parquets = [s.paths[0] for s in shards if s.paths[0].suffix.lower() == ".parquet"]
    npz = datacomp_sets(parquets)
    out = []
    for s in shards:
        p = s.paths[0]
        if p.suffix.lower() != ".parquet":
            out.append(s)
            continue
        try:
            cols = column_sets(p, pq.read_schema(p))
        except (OSError, pa.ArrowInvalid):
            cols = ()
        found = npz.get(p, ()) + cols
        if found:
            extra = (p.with_suffix(".npz"),) if p in npz else ()
            s = Shard(s.name, (*s.paths, *extra), s.root, found)
        out.append(s)
    check_dims([s.vectors for s in out])
    return out


def table_rows(path: Path) -> int:
    """Rows of a parquet file, from its footer."""
    return pq.ParquetFile(path).metadata.num_rows


def drop_columns(shard: Shard, items: Iterator[Item]) -> Iterator[Item]:
    """Vector columns become sets, not JSON text columns of the store."""
    cols = {v.member for v in shard.vectors if v.path == str(shard.paths[0]) and v.member}
    for item in items:
        if cols and isinstance(item, Sample):
            for c in cols:
                item.extra.pop(c, None)
        yield item
