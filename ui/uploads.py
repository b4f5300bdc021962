"""Limits on what users may upload, checked in the handlers (the browser's checks can be
skipped by a hand-made request): the size, the file name's type, and the content's kind.

``server.maxUploadSize`` in .streamlit/config.toml caps every upload at the server; these
per-widget limits are lower and give a clear message instead of a failed read.
"""

from __future__ import annotations

from pathlib import PurePath

IMAGE_MB = 20  # a query image: a photo, not a dataset
VOCAB_MB = 20  # a vocabulary: MetaCLIP's 500k-entry metadata.json is ~10 MB
IMAGE_TYPES = ["jpg", "jpeg", "png", "webp", "gif", "bmp", "tif", "tiff"]
VOCAB_TYPES = ["txt", "tsv", "csv", "json"]


def refusal(name: str, data: bytes, types: list[str], max_mb: int) -> str | None:
    """Why an upload named ``name`` is refused by its size or type; None when it may be read."""
    ext = PurePath(name).suffix.lower().lstrip(".")
    if ext not in types:
        return f"{name!r} is not one of the accepted types ({', '.join(types)})"
    if len(data) > max_mb * 2**20:
        return f"{name!r} is {len(data) / 2**20:.1f} MB; the limit is {max_mb} MB"
    if not data:
        return f"{name!r} is empty"
    return None


def image_refusal(name: str, data: bytes) -> str | None:
    """Why an uploaded query image is refused (type, size, or not a readable image)."""
    from backend.images import BadImage, probe

    why = refusal(name, data, IMAGE_TYPES, IMAGE_MB)
    if why:
        return why
    try:
        probe(data)
    except (BadImage, OSError, ValueError) as e:
        return f"{name!r} is not a readable image: {e}"
    return None


def text_refusal(name: str, data: bytes) -> str | None:
    """Why an uploaded vocabulary or class list is refused (type, size, or not text)."""
    why = refusal(name, data, VOCAB_TYPES, VOCAB_MB)
    if why:
        return why
    if b"\x00" in data[: 1 << 16]:
        return f"{name!r} is not UTF-8 text (NUL bytes: binary or UTF-16?); save it as UTF-8"
    return None
