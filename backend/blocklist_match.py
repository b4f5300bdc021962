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

PHASH_THRESHOLD = 8  # bits of 64, as the dedup step's default (backend.dedup.PHASH_THRESHOLD)
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


def _match_exact(con, col: str, entries: list[str]) -> pa.Table:
    con.register("listed", pa.table({"entry": entries}))
    return con.sql(
        f"SELECT s.row_id, l.entry, 0::INT AS distance FROM samples s JOIN listed l "
        f"ON lower(s.{col}) = l.entry ORDER BY s.row_id").to_arrow_table()  # fmt: skip


def _chunks(con, query: str):
    """Record batches of ``query`` (on ``con`` itself: it sees the lists registered on it)."""
    yield from con.sql(query).to_arrow_reader(CHUNK)


def _match_phash(con, entries: list[str], threshold: int) -> pa.Table:
    """Every row whose pHash is within ``threshold`` bits of a listed one (the closest).
    Brute force in blocks: rows x entries popcounts, fine for lists of thousands."""
    want = np.array([phash_int(e) for e in entries], dtype=np.int64).view(np.uint64)
    ids, hit, dist = [], [], []
    for batch in _chunks(con, "SELECT row_id, phash FROM samples WHERE phash IS NOT NULL"):
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


def _match_md5(con, entries: list[str]) -> tuple[pa.Table, int]:
    """MD5 of each row's image bytes (the store keeps sha256 only, so this reads every image);
    returns the matches and how many rows had no bytes to hash (url-only rows)."""
    from backend.media import MediaError, image_bytes

    listed, ids, hits, no_bytes = set(entries), [], [], 0
    q = ("SELECT row_id, storage, path, byte_offset, byte_size, src_row FROM samples "
         "ORDER BY row_id")  # fmt: skip
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


def _match_urls(con, entries: list[str], domains: bool) -> pa.Table:
    """Rows whose URL is listed (normalised), or whose host is a listed domain or under it."""
    from backend.domains import host_of, split_host

    listed = set(entries)
    ids, hits = [], []
    if domains:  # only rows of the listed registered domains can match: read just those
        regs = sorted({split_host(e)[0] for e in entries})
        con.register("regs", pa.table({"d": regs}))
        q = "SELECT row_id, url FROM samples WHERE domain IN (SELECT d FROM regs) ORDER BY row_id"
    else:
        q = "SELECT row_id, url FROM samples WHERE url IS NOT NULL ORDER BY row_id"
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
    root: Path | None = None,
) -> tuple[pa.Table, dict[str, Any]]:  # fmt: skip
    """(row_id, entry, distance) of every row the entries name, and notes on what could not
    be checked (rows without image bytes for MD5; rows without a pHash)."""
    con = _con(name, root)
    notes: dict[str, Any] = {}
    try:
        cols = _columns(con)
        if kind == "sha256":
            _need(cols, "sha256", name, f"python -m backend build {name} --source PATH")
            table = _match_exact(con, "sha256", entries)
            notes["rows_without_hash"] = con.execute(
                "SELECT count(*) FROM samples WHERE sha256 IS NULL").fetchall()[0][0]
        elif kind == "phash":
            _need(cols, "phash", name, f"python -m backend score {name} --scorers phash")
            t = PHASH_THRESHOLD if threshold is None else int(threshold)
            if not 0 <= t <= 64:
                raise BlocklistError(f"--threshold must be 0..64 bits, got {t}")
            table = _match_phash(con, entries, t)
            notes["threshold"] = t
            notes["rows_without_hash"] = con.execute(
                "SELECT count(*) FROM samples WHERE phash IS NULL").fetchall()[0][0]
        elif kind == "md5" and "md5" in cols:  # the md5 scorer ran: a join
            table, notes["md5_from"] = _match_exact(con, "md5", entries), "md5 column"
            notes["rows_without_hash"] = con.execute(
                "SELECT count(*) FROM samples WHERE md5 IS NULL").fetchall()[0][0]
        elif kind == "md5":  # read every image (`score --scorers md5` makes this a join)
            table, notes["rows_without_hash"] = _match_md5(con, entries)
            notes["md5_from"] = "image bytes, read now"
        else:
            _need(cols, "url", name, f"python -m backend build {name} --source PATH")
            if kind == "domain":
                _need(cols, "domain", name, f"python -m backend build {name} --source PATH")
            table = _match_urls(con, entries, kind == "domain")
    finally:
        con.close()
    return table.cast(MATCH_SCHEMA), notes
