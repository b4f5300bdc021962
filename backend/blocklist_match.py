"""Matching a blocklist's entries against a dataset's rows, one way per kind of list.

Split from :mod:`backend.blocklists` (which parses, keeps and logs lists): each kind reads only
what it needs — a join on ``sha256``/``md5``/``phash`` columns, the URLs of the listed domains —
and says what it could not check (rows without a hash or image bytes).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import numpy as np
import pyarrow as pa

PHASH_THRESHOLD = 8  # bits of 64, as the dedup step's default (backend.phash_pairs.PHASH_THRESHOLD)
MATCH_SCHEMA = pa.schema([("row_id", pa.int64()), ("entry", pa.string()),
                          ("distance", pa.int32())])  # fmt: skip
CHUNK = 200_000


class BlocklistError(ValueError):
    """A list that cannot be applied: malformed lines (with their numbers), an unknown kind,
    or a dataset without the column the kind needs (with the command that adds it)."""


def normalize_url(url: str) -> str | None:
    """Scheme and host lower-cased, default port and fragment dropped; None if not http(s)."""
    try:
        p = urlsplit(url.strip())
        host, port = p.hostname, p.port
    except ValueError:
        return None
    if p.scheme.lower() not in ("http", "https") or not host:
        return None
    default = {"http": 80, "https": 443}[p.scheme.lower()]
    netloc = host + (f":{port}" if port and port != default else "")
    return urlunsplit((p.scheme.lower(), netloc, p.path or "/", p.query, ""))


def phash_int(hexdigits: str) -> int:
    """imagehash's hex string as the store's signed 64-bit pHash (same bits)."""
    return int(np.array(int(hexdigits, 16), dtype=np.uint64).view(np.int64))


def _con(name: str, root: Path | None):
    from backend.store import connect

    return connect(name, root)


def _columns(con) -> set[str]:
    return {r[0] for r in con.execute("DESCRIBE samples").fetchall()}


def _need(cols: set[str], col: str, name: str, command: str) -> None:
    if col not in cols:
        raise BlocklistError(f"{name!r} has no {col} column: run `{command}` first")


def _match_exact(con, col: str, entries: list[str], where: str = "TRUE") -> pa.Table:
    con.register("listed", pa.table({"entry": entries}))
    return con.sql(
        f"SELECT s.row_id, l.entry, 0::INT AS distance FROM samples s JOIN listed l "
        f"ON lower(s.{col}) = l.entry WHERE {where} ORDER BY s.row_id",
    ).to_arrow_table()


def _chunks(con, query: str):
    """Record batches of ``query`` (on ``con`` itself: it sees the lists registered on it)."""
    yield from con.sql(query).to_arrow_reader(CHUNK)


def _match_phash(con, entries: list[str], threshold: int, where: str = "TRUE") -> pa.Table:
    """Every row whose pHash is within ``threshold`` bits of a listed one (the closest).
    Brute force in blocks: rows x entries popcounts, fine for lists of thousands."""
    want = np.array([phash_int(e) for e in entries], dtype=np.int64).view(np.uint64)
    ids, hit, dist = [], [], []
    q = f"SELECT row_id, phash FROM samples WHERE phash IS NOT NULL AND {where}"
    for batch in _chunks(con, q):
        rid = batch.column(0).to_numpy()
        ph = batch.column(1).to_numpy().astype(np.int64).view(np.uint64)
        for lo in range(0, len(want), 256):
            block = want[lo:lo + 256]
            d = np.bitwise_count(ph[:, None] ^ block[None, :])
            best = d.argmin(axis=1)
            bd = d[np.arange(len(ph)), best]
            ok = bd <= threshold
            ids.append(rid[ok])
            hit.append(lo + best[ok])
            dist.append(bd[ok])
    if not ids:
        return MATCH_SCHEMA.empty_table()
    rid, idx, d = np.concatenate(ids), np.concatenate(hit), np.concatenate(dist)
    order = np.lexsort((d, rid))  # per row: the closest entry first
    rid, idx, d = rid[order], idx[order], d[order]
    first = np.ones(len(rid), bool)
    first[1:] = rid[1:] != rid[:-1]
    return pa.table({"row_id": rid[first].astype(np.int64),
                     "entry": [entries[i] for i in idx[first]],
                     "distance": d[first].astype(np.int32)}, schema=MATCH_SCHEMA)  # fmt: skip


def _match_md5(con, entries: list[str], where: str = "TRUE") -> tuple[pa.Table, int]:
    """MD5 of each row's image bytes (the store keeps sha256 only, so this reads every image);
    returns the matches and how many rows had no bytes to hash (url-only rows)."""
    from backend.media import MediaError, image_bytes

    listed, ids, hits, no_bytes = set(entries), [], [], 0
    q = ("SELECT row_id, storage, path, byte_offset, byte_size, src_row FROM samples "
         f"WHERE {where} ORDER BY row_id")  # fmt: skip
    for batch in _chunks(con, q):
        for row in batch.to_pylist():
            try:
                data = image_bytes(row)
            except MediaError:
                data = None
            if not data:
                no_bytes += 1
                continue
            h = hashlib.md5(data, usedforsecurity=False).hexdigest()
            if h in listed:
                ids.append(row["row_id"])
                hits.append(h)
    table = pa.table({"row_id": pa.array(ids, pa.int64()), "entry": pa.array(hits, pa.string()),
                      "distance": pa.array([0] * len(ids), pa.int32())})  # fmt: skip
    return table, no_bytes


def _match_urls(con, entries: list[str], domains: bool, where: str = "TRUE") -> pa.Table:
    """Rows whose URL is listed (normalised), or whose host is a listed domain or under it."""
    from backend.domains import host_of, split_host

    listed = set(entries)
    ids, hits = [], []
    if domains:  # only rows of the listed registered domains can match: read just those
        regs = sorted({split_host(e)[0] for e in entries})
        con.register("regs", pa.table({"d": regs}))
        q = (f"SELECT row_id, url FROM samples WHERE domain IN (SELECT d FROM regs) AND {where} "
             "ORDER BY row_id")  # fmt: skip
    else:
        q = f"SELECT row_id, url FROM samples WHERE url IS NOT NULL AND {where} ORDER BY row_id"
    for batch in _chunks(con, q):
        for rid, url in zip(batch.column(0).to_pylist(), batch.column(1).to_pylist(),
                            strict=True):  # fmt: skip
            if domains:
                host = host_of(url) or ""
                labels = host.split(".")
                got = next((s for s in (".".join(labels[i:]) for i in range(len(labels)))
                            if s in listed), None)  # fmt: skip
            else:
                norm = normalize_url(url) if url else None
                got = norm if norm in listed else None
            if got:
                ids.append(rid)
                hits.append(got)
    return pa.table({"row_id": pa.array(ids, pa.int64()), "entry": pa.array(hits, pa.string()),
                     "distance": pa.array([0] * len(ids), pa.int32())})  # fmt: skip


def match(
    name: str, kind: str, entries: list[str], threshold: int | None = None,
    root: Path | None = None, rows: tuple[int, int] | None = None,
) -> tuple[pa.Table, dict[str, Any]]:  # fmt: skip
    """(row_id, entry, distance) of every row the entries name, and notes on what could not
    be checked (rows without image bytes for MD5; rows without a pHash). ``rows``: only the
    row ids in [lo, hi), one unit's share (:func:`match_on`)."""
    con = _con(name, root)
    notes: dict[str, Any] = {}
    where = "TRUE" if rows is None else f"row_id >= {int(rows[0])} AND row_id < {int(rows[1])}"
    try:
        cols = _columns(con)
        if kind == "sha256":
            _need(cols, "sha256", name, f"python -m backend build {name} --source PATH")
            table = _match_exact(con, "sha256", entries, where)
            notes["rows_without_hash"] = _nulls(con, "sha256", where)
        elif kind == "phash":
            _need(cols, "phash", name, f"python -m backend score {name} --scorers phash")
            t = PHASH_THRESHOLD if threshold is None else int(threshold)
            if not 0 <= t <= 64:
                raise BlocklistError(f"--threshold must be 0..64 bits, got {t}")
            table = _match_phash(con, entries, t, where)
            notes["threshold"] = t
            notes["rows_without_hash"] = _nulls(con, "phash", where)
        elif kind == "md5" and "md5" in cols:  # the md5 scorer ran: a join
            table, notes["md5_from"] = _match_exact(con, "md5", entries, where), "md5 column"
            notes["rows_without_hash"] = _nulls(con, "md5", where)
        elif kind == "md5":  # read every image (`score --scorers md5` makes this a join)
            table, notes["rows_without_hash"] = _match_md5(con, entries, where)
            notes["md5_from"] = "image bytes, read now"
        else:
            _need(cols, "url", name, f"python -m backend build {name} --source PATH")
            if kind == "domain":
                _need(cols, "domain", name, f"python -m backend build {name} --source PATH")
            table = _match_urls(con, entries, kind == "domain", where)
    finally:
        con.close()
    return table.cast(MATCH_SCHEMA), notes


def _nulls(con, col: str, where: str) -> int:
    return con.execute(f"SELECT count(*) FROM samples WHERE {col} IS NULL AND {where}"
                       ).fetchall()[0][0]  # fmt: skip


def match_unit(name: str, root: Path | None, kind: str, entries: list[str],
               threshold: int | None, lo: int, hi: int, out: str) -> dict[str, Any]:  # fmt: skip
    """One unit of :func:`match_on`: rows [lo, hi) matched, written to ``out`` atomically."""
    import os

    import pyarrow.parquet as pq

    table, notes = match(name, kind, entries, threshold, root, rows=(lo, hi))
    tmp = f"{out}.tmp"
    pq.write_table(table, tmp)
    os.replace(tmp, out)
    return notes


def match_on(
    executor: Any, name: str, kind: str, entries: list[str], threshold: int | None = None,
    root: Path | None = None, rows_per_unit: int = 500_000,
) -> tuple[pa.Table, dict[str, Any]]:  # fmt: skip
    """:func:`match` cut into row ranges run as units on ``executor`` (a process pool or Ray:
    the per-row work — popcounts, reading images for MD5 — runs beside the data); the parts
    are concatenated in row order and the notes summed."""
    import shutil
    import tempfile

    import pyarrow.parquet as pq

    from backend import paths
    from backend.executor import Unit

    con = _con(name, root)
    try:
        n = con.execute("SELECT count(*) FROM samples").fetchall()[0][0]
    finally:
        con.close()
    base = paths.dataset_dir(name, root)
    parts = Path(tempfile.mkdtemp(prefix=".blocklist-", dir=base))
    try:
        units = [Unit(f"rows {lo}", match_unit,
                      (name, root, kind, entries, threshold, lo, min(n, lo + rows_per_unit),
                       str(parts / f"{lo:012d}.parquet")))
                 for lo in range(0, max(n, 1), rows_per_unit)]  # fmt: skip
        got = executor.run(units)
        tables = [pq.read_table(p) for p in sorted(parts.glob("*.parquet"))]
    finally:
        shutil.rmtree(parts, ignore_errors=True)
    notes: dict[str, Any] = {}
    for part in got.values():
        for k, v in part.items():
            notes[k] = notes.get(k, 0) + v if k == "rows_without_hash" else v
    table = pa.concat_tables(tables) if tables else MATCH_SCHEMA.empty_table()
    return table.cast(MATCH_SCHEMA), notes
