"""Column-at-a-time ingest of URL-only parquet shards (LAION, DataComp, COYO metadata).

Pools ship 10^6-row metadata shards with no image bytes: the per-row path (a Python dict and a
:class:`Sample` per row) costs ~20 µs a row, which is what makes ingest slow at that scale.
Here each column is converted once, with exactly the per-row path's rules (caption trimmed,
key as text, NaN as null, nested values as JSON text, core-name clashes as ``src_<name>``,
canonical scores of the profile, ``domain``/``tld`` once per distinct host), so the shard's
``samples`` table is the same table (``tests/test_columnar_ingest.py`` compares them). A shard
whose columns fall outside those rules (binary captions, CSV, image bytes, dates, dictionaries)
returns None and takes the per-row path.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from backend.sources.base import Reject, Shard
from backend.sources.common import CORE_FIELDS, CORE_SCHEMA

SIMPLE_HOST = re.compile(r"^https?://([A-Za-z0-9.-]+)(?::[0-9]*)?(?:[/?#]|$)")
HOST_PATTERN = r"^https?://(?P<host>[A-Za-z0-9.-]+)(?::[0-9]*)?(?:[/?#]|$)"


def wanted(reader: Any) -> bool:
    """Tables take this path unless ``TAILSCOPE_PER_ROW_INGEST=1`` (to compare the two)."""
    from backend.sources.table import TableSource

    return isinstance(reader, TableSource) and os.environ.get("TAILSCOPE_PER_ROW_INGEST") != "1"


def _plain(t: pa.DataType) -> bool:
    return (
        pa.types.is_integer(t) and t != pa.uint64()
        or pa.types.is_floating(t) or pa.types.is_boolean(t) or pa.types.is_null(t)
        or pa.types.is_string(t) or pa.types.is_large_string(t)
    )  # fmt: skip


def _nested(t: pa.DataType) -> bool:
    return pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_struct(t)


def _binary(t: pa.DataType) -> bool:
    return pa.types.is_binary(t) or pa.types.is_large_binary(t)


def fits(cols: Any, schema: pa.Schema, path) -> bool:
    """Whether a shard can take the columnar path (else the per-row one)."""
    if path.suffix.lower() != ".parquet" or cols.image is not None or cols.caption is None:
        return False
    text = (pa.types.is_string, pa.types.is_large_string)
    if not any(f(schema.field(cols.caption).type) for f in text):
        return False
    if cols.url and not any(f(schema.field(cols.url).type) for f in text):
        return False
    if cols.key and not (
        any(f(schema.field(cols.key).type) for f in text)
        or pa.types.is_integer(schema.field(cols.key).type)
    ):
        return False
    for f in cols.scores:
        t = schema.field(f.column).type
        if f.transform == "count" and not (pa.types.is_list(t) or pa.types.is_large_list(t)):
            return False
        if f.transform not in ("value", "count") or (f.transform == "value" and not _plain(t)):
            return False
    for side in (cols.width, cols.height):
        if side and not pa.types.is_integer(schema.field(side).type):
            return False
    return all(_plain(f.type) or _nested(f.type) or _binary(f.type) for f in schema)


def _as_python_would(col: pa.ChunkedArray | pa.Array) -> pa.Array:
    """A column typed as ``pa.array(list of its Python values)`` types it (the per-row path):
    ints as int64, floats as double, an all-null column as null."""
    col = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    if col.null_count == len(col):
        return pa.nulls(len(col))
    t = col.type
    if pa.types.is_integer(t):
        return col.cast(pa.int64())
    if pa.types.is_floating(t):
        return col.cast(pa.float64())
    if pa.types.is_large_string(t):
        return col.cast(pa.string())
    return col


def _extra(col: pa.ChunkedArray) -> pa.Array:
    """One extra column under the per-row path's ``clean_value``: NaN → null, nested → JSON
    text (``json.dumps``, as written there), bytes → null."""
    t = col.type
    if _binary(t):
        return pa.nulls(len(col))
    if _nested(t):
        encode = json.JSONEncoder(ensure_ascii=False, default=str).encode  # = json.dumps(...)
        vals = [None if v is None else encode(v) for v in col.to_pylist()]
        return _as_python_would(pa.array(vals, pa.string()))
    if pa.types.is_floating(t):
        col = pc.if_else(pc.is_nan(col), pa.scalar(None, t), col)
    return _as_python_would(col)


def _domains(urls: list[str | None]) -> tuple[pa.Array, pa.Array]:
    """``domain`` and ``tld`` of each URL, each distinct host split once."""
    from backend.domains import host_of, split_host

    hosts: list[str | None] = []
    for u in urls:
        if u is None:
            hosts.append(None)
            continue
        m = SIMPLE_HOST.match(u)  # the common shape; anything else goes through urlsplit
        h = m.group(1).lower() if m and u == u.strip() else host_of(u)
        hosts.append(h.rstrip(".") or None if m and h else h)
    split = {h: split_host(h) for h in set(hosts) if h}
    dom = [split[h][0] if h else None for h in hosts]
    tld = [split[h][1] if h else None for h in hosts]
    return _as_python_would(pa.array(dom, pa.string())), _as_python_would(
        pa.array(tld, pa.string())
    )


def read(reader: Any, shard: Shard, shard_idx: int) -> tuple[pa.Table, list[Reject], list] | None:
    """(samples table, rejects, vector rows) of one shard, or None for the per-row path."""
    path = shard.paths[0]
    try:
        schema = pq.read_schema(path)
        cols = reader._columns(path, schema)
    except Exception:  # the per-row path reports it as it always has
        return None
    if not fits(cols, schema, path):
        return None
    table = pq.read_table(path)
    n = table.num_rows
    keep, rejects, vec_rows = _rows(table, cols, shard, path.stem, n)
    if keep is None:
        return None
    table = table.filter(pa.array(keep))
    m = table.num_rows
    keys = _keys(table, cols, path.stem, np.flatnonzero(keep))
    caption = [c.strip() for c in table.column(cols.caption).to_pylist()]
    url = table.column(cols.url).to_pylist() if cols.url else [None] * m
    url = [str(u) if u else None for u in url]
    core: dict[str, Any] = {
        name: pa.nulls(m, CORE_SCHEMA.field(name).type) for name in CORE_SCHEMA.names
    }
    core.update(
        key=pa.array(keys, pa.string()), caption=pa.array(caption, pa.string()),
        url=pa.array(url, pa.string()), storage=pa.array(["url"] * m, pa.string()),
        caption_encoding=pa.array(["utf-8"] * m, pa.string()),
        shard=pa.array([shard.name] * m, pa.string()),
        shard_idx=pa.array(np.full(m, shard_idx, np.int32)), seq=pa.array(np.arange(m)),
    )  # fmt: skip
    for side in ("width", "height"):
        src = getattr(cols, side)
        if src:
            core[side] = table.column(src).combine_chunks().cast(pa.int32())
    out = pa.table(core, schema=CORE_SCHEMA)
    sets = {v.member for v in shard.vectors if v.path == str(path) and v.member}
    for name, arr in _extras(table, cols, url, sets).items():
        out = out.append_column(name, arr)
    return out, rejects, vec_rows


def _rows(table: pa.Table, cols: Any, shard: Shard, stem: str, n: int):
    """Which rows are kept, the rejects (row order), and the kept rows' vector indexes."""
    from backend.sources.vectors import VectorFileError, list_problems, open_shard, screen

    raw = table.column(cols.caption).to_pylist()
    keep = np.array([isinstance(c, str) and bool(c.strip()) for c in raw], bool)
    bad: dict[int, tuple[str, str]] = {}
    if shard.vectors:
        try:
            arrays = open_shard(shard.vectors, n)
        except VectorFileError:
            return None, [], []  # the per-row path rejects the shard with its reason
        bad = {**screen(arrays), **list_problems(shard.vectors)}
        del arrays
    all_keys = _keys(table, cols, stem, np.arange(n))
    rejects = []
    for r in np.flatnonzero(~keep):
        rejects.append((int(r), Reject(all_keys[r], "missing caption", f"row {r}")))
    for r, (reason, detail) in bad.items():
        if keep[r]:
            keep[r] = False
            rejects.append((r, Reject(all_keys[r], reason, detail)))
    rejects.sort(key=lambda x: x[0])
    vec_rows = np.flatnonzero(keep).tolist() if shard.vectors else []
    return keep, [r for _, r in rejects], vec_rows


def _keys(table: pa.Table, cols: Any, stem: str, rows: np.ndarray) -> list[str]:
    if cols.key is None:
        return [f"{stem}:{r}" for r in rows]
    vals = table.column(cols.key).to_pylist()
    return [str(v) if v is not None else f"{stem}:{r}" for v, r in zip(vals, rows, strict=True)]


def _extras(
    table: pa.Table, cols: Any, url: list[str | None], sets: set[str]
) -> dict[str, pa.Array]:
    """Every other column (named as the per-row path names them; vector columns are sets, not
    columns), the profile's canonical scores, then ``domain`` and ``tld``."""
    out: dict[str, pa.Array] = {}
    used = cols.used | sets
    for name in table.column_names:
        if name in used:
            continue
        col = str(name).strip() or "unnamed"
        if col.lower() in CORE_FIELDS:
            col = f"src_{col}"
        out[col] = _extra(table.column(name))
    for old, new in cols.renames.items():
        if old in out:
            out[new] = out.pop(old)
    for f in cols.scores:
        if not f.is_score:
            continue
        col = table.column(f.column).combine_chunks()
        out[f.canonical] = _as_python_would(
            pc.list_value_length(col) if f.transform == "count" else col
        )
    if any(url):
        for name in ("domain", "tld"):
            if name in out:
                out[f"src_{name}"] = out.pop(name)
        out["domain"], out["tld"] = _domains(url)
    return out
