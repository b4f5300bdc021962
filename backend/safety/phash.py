"""Perceptual hash (pHash) of each image, for near-duplicate search (:mod:`backend.dedup`).

imagehash's pHash: 32x32 grayscale, 2-D DCT, the 8x8 lowest frequencies compared with their
median → 64 bits. Re-encoding, resizing, small crops and brightness changes move only a few
bits. Stored as a signed 64-bit integer (the same bits). Opt-in here; ``dedup`` runs it.
"""

from __future__ import annotations

import io
from importlib import metadata
from typing import Any

import numpy as np
import pyarrow as pa
from PIL import Image

from backend.safety import Context, Row, Scorer, ScorerUnavailable, register


def phash64(data: bytes) -> int:
    """The 64-bit pHash of an image's bytes, as a signed int64 value."""
    import imagehash

    img = Image.open(io.BytesIO(data))
    if (img.format or "").lower() == "jpeg":
        img.draft("L", (128, 128))  # decode at 1/2..1/8 scale: pHash looks at 32x32 anyway
    bits = imagehash.phash(img).hash.ravel()
    value = int("".join("1" if b else "0" for b in bits), 2)
    return int(np.array(value, dtype=np.uint64).view(np.int64))


@register
class PHash(Scorer):
    name = "phash"
    version = "1"
    reads = ("image",)
    columns = {"phash": pa.int64()}
    default = False
    description = "64-bit perceptual hash (imagehash pHash), for near-duplicate search"

    def load(self, ctx: Context) -> None:
        try:
            import imagehash  # noqa: F401
        except ImportError as e:
            raise ScorerUnavailable(f"phash needs imagehash: pip install imagehash ({e})") from None
        self.model = f"imagehash {metadata.version('imagehash')} pHash 8x8"

    def score_batch(self, rows: list[Row]) -> list[dict[str, Any]]:
        return [{"phash": phash64(r["image"])} for r in rows]
