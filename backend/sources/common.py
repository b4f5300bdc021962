"""Helpers shared by the source readers: sidecar metadata and column aliases."""

from __future__ import annotations

import json
import math
from typing import Any

import pyarrow as pa

from backend.text import decode_caption

CAPTION_ALIASES = ("caption", "text", "txt", "title", "alt", "alt_text")
URL_ALIASES = ("url", "image_url", "img_url", "link")
CORE_FIELDS = {
    "row_id", "key", "shard", "caption", "url", "storage", "path", "byte_offset", "byte_size",
    "src_row", "width", "height", "format", "file_size", "sha256", "caption_encoding",
}  # fmt: skip
# The core columns of every shard table ingest writes, whichever reader made it (a reader's
# extra columns ride beside them).
CORE_SCHEMA = pa.schema([
    ("key", pa.string()), ("caption", pa.string()), ("url", pa.string()),
    ("storage", pa.string()), ("path", pa.string()), ("byte_offset", pa.int64()),
    ("byte_size", pa.int64()), ("src_row", pa.int64()), ("width", pa.int32()),
    ("height", pa.int32()), ("format", pa.string()), ("file_size", pa.int64()),
    ("sha256", pa.string()), ("caption_encoding", pa.string()), ("shard", pa.string()),
    ("shard_idx", pa.int32()), ("seq", pa.int64()),
])  # fmt: skip


def pick(record: dict[str, Any], aliases: tuple[str, ...]) -> tuple[str | None, Any]:
    """The first alias present in ``record`` (case-insensitive) and its value."""
    lowered = {k.lower(): k for k in record}
    for alias in aliases:
        if alias in lowered:
            return lowered[alias], record[lowered[alias]]
    return None, None


def item_caption(txt: bytes | None, meta: dict[str, Any]) -> tuple[str | None, str, str | None]:
    """An item's caption, by one rule for every reader with ``.txt``/``.json`` members: the
    ``.txt`` (its encoding detected), else the sidecar's ``caption`` field. Returns (caption or
    None, the ``.txt``'s encoding, the sidecar field used or None)."""
    caption, encoding = decode_caption(txt) if txt is not None else (None, "utf-8")
    if caption is None:
        name, value = pick(meta, ("caption",))
        if isinstance(value, str) and value.strip():
            return value.strip(), encoding, name
    return caption, encoding, None


def clean_value(value: Any) -> Any:
    """Scalars stay typed; nested values become JSON text; NaN becomes None."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, ensure_ascii=False, default=str)
    if isinstance(value, (bytes, bytearray)):
        return None
    return value


def extra_columns(record: dict[str, Any], used: set[str]) -> dict[str, Any]:
    """Keep every other field; a name that clashes with a core column gets a ``src_`` prefix."""
    out: dict[str, Any] = {}
    for name, value in record.items():
        if name in used:
            continue
        col = str(name).strip() or "unnamed"
        if col.lower() in CORE_FIELDS:
            col = f"src_{col}"
        out[col] = clean_value(value)
    return out


def parse_sidecar(raw: bytes) -> tuple[dict[str, Any], str | None]:
    """Parse a ``.json`` sidecar; return (fields, problem or None)."""
    try:
        data = json.loads(raw.decode("utf-8", errors="replace"))
    except ValueError as e:
        return {}, f"bad json sidecar: {e}"[:200]
    if not isinstance(data, dict):
        return {}, "json sidecar is not an object"
    return data, None
