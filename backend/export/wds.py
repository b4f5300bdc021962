"""WebDataset tar shards: ``{key}.{ext}`` (the image's own bytes, copied, never re-encoded),
``{key}.txt`` (caption) and ``{key}.json`` (the row's other columns), ``shard_size`` rows per
tar, in row-id order.

Resumable: each finished shard is renamed into place and recorded in ``state.json``; an
interrupted export continues after the last finished shard's last row id. Tar headers carry no
clock or owner, so a resumed export is byte-identical to an uninterrupted one.
"""

from __future__ import annotations

import hashlib
import os
import re
import tarfile
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from backend.export.rows import Plan
from backend.manifest import read_manifest, write_json_atomic
from backend.media import MediaError, image_bytes
from backend.selection import quote_ident
from backend.sources.base import STORAGE_TAR

STORAGE_COLS = ("storage", "path", "byte_offset", "byte_size", "src_row")
NEEDED = ("row_id", "key", "caption", "format", *STORAGE_COLS)
EXT = {"JPEG": "jpg", "MPO": "jpg", "PNG": "png", "WEBP": "webp", "GIF": "gif", "BMP": "bmp",
       "TIFF": "tiff"}  # fmt: skip
SAFE_KEY = re.compile(r"^[A-Za-z0-9_-]{1,80}$")
STATE = "state.json"
META = "__tailscope_meta_json"
MAX_SKIPPED_LISTED = 100


def member_key(key: str | None, row_id: int) -> str:
    """The row's key when WebDataset can carry it (no dots, no folders), else a safe form of it
    made unique by the row id (WebDataset cuts a key at the first dot)."""
    if key and SAFE_KEY.match(key):
        return key
    return (re.sub(r"[^A-Za-z0-9_-]+", "_", key or "")[:60] or "row") + f"_r{row_id}"


def image_ext(row: dict[str, Any]) -> str:
    fmt = str(row.get("format") or "").upper()
    if fmt in EXT:
        return EXT[fmt]
    suffix = Path(str(row.get("path") or "")).suffix.lower().lstrip(".")
    return suffix if row.get("storage") == "file" and suffix else "jpg"


class ImageSource:
    """Image bytes of rows in row-id order, keeping a few source tars open between rows."""

    def __init__(self, keep_open: int = 8) -> None:
        self.open: OrderedDict[str, IO[bytes]] = OrderedDict()
        self.keep_open = keep_open

    def read(self, row: dict[str, Any]) -> bytes | None:
        if row.get("storage") != STORAGE_TAR or not row.get("path"):
            return image_bytes(row)
        path, offset, size = row["path"], int(row["byte_offset"]), int(row["byte_size"])
        try:
            f = self.open.get(path)
            if f is None:
                f = self.open[path] = open(path, "rb")  # noqa: SIM115 - kept open on purpose
                while len(self.open) > self.keep_open:
                    self.open.popitem(last=False)[1].close()
            self.open.move_to_end(path)
            f.seek(offset)
            data = f.read(size)
        except OSError as e:
            raise MediaError(f"cannot read image of row {row.get('row_id')}: {e}") from e
        if len(data) != size:
            raise MediaError(f"{Path(path).name} is shorter than when it was ingested")
        return data

    def close(self) -> None:
        for f in self.open.values():
            f.close()
        self.open.clear()


def _template() -> tuple[bytes, int]:
    """The constant part of every header (mode, owner, mtime, type, magic) and its byte sum,
    with the checksum field counted as spaces, as the format says."""
    h = bytearray(512)
    h[100:108] = b"0000644\0"
    h[108:116] = h[116:124] = b"0000000\0"
    h[136:148] = b"00000000000\0"
    h[148:156] = b"        "
    h[156:157] = b"0"
    h[257:265] = b"ustar\x0000"
    return bytes(h), sum(h)


_HEADER, _HEADER_SUM = _template()
_ZEROS = bytes(512)


class TarWriter:
    """A minimal USTAR writer: regular files with a fixed mode, owner and mtime of 0.

    ``tarfile.addfile`` spends most of an export building headers (about 100 µs a member);
    member names here are short ASCII (see :func:`member_key`), so a header is a template with
    the name, size and checksum filled in. The result reads with ``tarfile`` and webdataset.
    """

    def __init__(self, path: Path) -> None:
        self.f = open(path, "wb", buffering=1 << 20)  # noqa: SIM115 - closed in close()
        self.size = 0
        self.hash = hashlib.sha256()  # as written: the manifest's digest without a re-read

    def add(self, *members: tuple[str, bytes]) -> None:
        """Append members (name, data); one write and one hash update for all of them."""
        parts: list[bytes] = []
        for name, data in members:
            raw = name.encode("ascii")
            if len(raw) > 100:
                raise ValueError(f"tar member name too long: {name!r}")
            size = b"%011o\0" % len(data)
            h = bytearray(_HEADER)
            h[0 : len(raw)] = raw
            h[124:136] = size
            h[148:155] = b"%06o\0" % (_HEADER_SUM + sum(raw) + sum(size))
            parts += (h, data, _ZEROS[: -len(data) % 512])
        block = b"".join(parts)
        self.f.write(block)
        self.hash.update(block)
        self.size += len(block)

    def close(self) -> None:
        if self.f.closed:
            return
        end = bytes(1024 + (-(self.size + 1024) % tarfile.RECORDSIZE))
        self.f.write(end)
        self.hash.update(end)
        self.f.close()


def meta_json_sql(cols: list[str]) -> str:
    """A DuckDB expression giving the row's ``{key}.json``: the columns as one JSON object, keys
    sorted (DuckDB writes it, far faster than ``json.dumps`` a row at a time)."""
    if not cols:
        return "'{}'"
    fields = ", ".join(f"'{c.replace(chr(39), chr(39) * 2)}': {quote_ident(c)}"
                       for c in sorted(cols))  # fmt: skip
    return f"to_json({{{fields}}})::VARCHAR"


def _resume_state(tmp_dir: Path, key: dict[str, Any]) -> dict[str, Any]:
    """The finished shards of an earlier try with the same recipe, build and options; stray
    files of an unfinished shard are removed."""
    state = read_manifest(tmp_dir / STATE)
    if state.get("key") != key:
        state = {"key": key, "shards": [], "skipped": 0, "skipped_rows": []}
    kept = []
    for s in state["shards"]:
        f = tmp_dir / s["file"]
        if not f.is_file() or f.stat().st_size != s["bytes"]:
            break
        kept.append(s)
    state["shards"] = kept
    names = {s["file"] for s in kept} | {STATE}
    for p in tmp_dir.iterdir():
        if p.name not in names:
            p.unlink()
    return state


def write_webdataset(
    plan: Plan,
    tmp_dir: Path,
    meta_cols: list[str],
    shard_size: int,
    key: dict[str, Any],
    tick: Callable[[int], None],
) -> dict[str, Any]:
    """Write (or finish) the shards in ``tmp_dir``; returns the final state: shard list with
    row counts, rows skipped because they have no readable image."""
    if shard_size < 1:
        raise ValueError("shard size must be at least 1 row")
    state = _resume_state(tmp_dir, key)
    done_before = sum(s["rows"] + s.get("skipped", 0) for s in state["shards"])
    if done_before:
        tick(done_before)
    after = state["shards"][-1]["last_row_id"] if state["shards"] else -1
    cols = [c for c in NEEDED if c in plan.columns]
    meta_sql = meta_json_sql([c for c in meta_cols if c not in STORAGE_COLS])
    images = ImageSource()
    tar: TarWriter | None = None
    shard: dict[str, Any] = {}

    def finish() -> None:
        nonlocal tar
        assert tar is not None
        done_tar, tar = tar, None
        done_tar.close()
        tmp = tmp_dir / (shard["file"] + ".tmp")
        os.replace(tmp, tmp_dir / shard["file"])
        shard["bytes"] = (tmp_dir / shard["file"]).stat().st_size
        shard["sha256"] = done_tar.hash.hexdigest()
        state["shards"].append(dict(shard))
        write_json_atomic(tmp_dir / STATE, state)
        tick(shard["rows"] + shard["skipped"])

    try:
        for batch in plan.batches(cols, after=after, batch_rows=1024, computed={META: meta_sql}):
            columns = {c: batch.column(c).to_pylist() for c in (*cols, META)}
            for i, row_id in enumerate(columns["row_id"]):
                row = {c: v[i] for c, v in columns.items()}
                if tar is None:
                    shard = {"file": f"{len(state['shards']):05d}.tar", "rows": 0, "skipped": 0}
                    tar = TarWriter(tmp_dir / (shard["file"] + ".tmp"))
                shard["last_row_id"] = row_id
                data = _image_or_skip(images, row, row_id, shard, state)
                if data is None:
                    continue
                _add_sample(tar, row, row_id, data)
                shard["rows"] += 1
                if shard["rows"] >= shard_size:
                    finish()
        if tar is not None:
            finish()
    finally:
        images.close()
        if tar is not None:
            tar.close()
    return state


def _image_or_skip(images: ImageSource, row: dict[str, Any], row_id: int, shard: dict[str, Any],
                   state: dict[str, Any]) -> bytes | None:
    """The row's image bytes, or None when it has none: then the row is counted as skipped in
    the shard and the state, and listed with why (up to ``MAX_SKIPPED_LISTED``)."""
    try:
        data = images.read(row)
    except MediaError as e:
        data, why = None, str(e)
    else:
        why = "no image bytes (url-only row)"
    if not data:
        shard["skipped"] += 1
        if len(state["skipped_rows"]) < MAX_SKIPPED_LISTED:
            state["skipped_rows"].append({"row_id": row_id, "reason": why})
        state["skipped"] += 1
        return None
    return data


def _add_sample(tar: TarWriter, row: dict[str, Any], row_id: int, data: bytes) -> None:
    """One WebDataset sample: the image, its caption (.txt) and its metadata (.json)."""
    k = member_key(row.get("key"), row_id)
    tar.add((f"{k}.{image_ext(row)}", data),
            (f"{k}.txt", (row.get("caption") or "").encode("utf-8")),
            (f"{k}.json", row[META].encode("utf-8")))  # fmt: skip
