"""Overlaid text and watermarks, by a proxy: read the text in the image with OCR.

rapidocr-onnxruntime carries PP-OCRv4 detection and recognition models (ONNX). OCR finds any
legible text — watermarks, captions burnt into memes, but also a shop sign in a street photo —
so ``text_overlay`` is a *proxy* for "text was put over this image", not a watermark detector:

    text_overlay = max recognised confidence × share of the image area covered by text boxes

counting only readings with at least :data:`MIN_CHARS` letters or digits (a lone "+", "C" or
"®" is a shape read as a glyph, not text: added after the demo's plain synthetic shapes were
read that way). 0 when nothing is read; the share is capped at 1. A few confidently read words
in a corner score low; text tiled across the picture scores high. :data:`THRESHOLD` (text read
over 1% of the image at full confidence) is a round number fixed before looking at results.

OCR is slow (~0.5–1 s per image on a CPU core), so the scorer is opt-in (``--scorers ocr``)
and reads a :data:`SIDE`-pixel thumbnail; detection runs at the package's default scale (short
side upsampled to 736 px): at 320 px it missed faint semi-transparent text.
"""

from __future__ import annotations

from importlib import metadata
from typing import Any

import numpy as np
import pyarrow as pa

from backend.images import thumbnail
from backend.safety import Context, Row, Scorer, ScorerUnavailable, register

SIDE = 320
THRESHOLD = 0.01
MAX_TEXT = 500
MIN_CHARS = 2


def _area(box) -> float:
    """Area of a quadrilateral text box (shoelace formula)."""
    p = np.asarray(box, dtype=np.float64)
    x, y = p[:, 0], p[:, 1]
    return float(abs(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))) / 2)


def overlay_score(result: list | None, width: int, height: int) -> tuple[str, float]:
    """``(ocr_text, text_overlay)`` from RapidOCR's ``[[box, text, confidence], ...]``."""
    result = [r for r in result or () if sum(ch.isalnum() for ch in str(r[1])) >= MIN_CHARS]
    if not result:
        return "", 0.0
    text = " ".join(str(r[1]).strip() for r in result if str(r[1]).strip())[:MAX_TEXT]
    share = min(1.0, sum(_area(r[0]) for r in result) / max(1, width * height))
    return text, float(max(float(r[2]) for r in result) * share)


@register
class OCR(Scorer):
    name = "ocr"
    version = "2"
    reads = ("image",)
    columns = {"ocr_text": pa.string(), "text_overlay": pa.float32()}
    default = False
    description = "text read in the image (PP-OCRv4) and a text-overlay score (a proxy)"

    def load(self, ctx: Context) -> None:
        try:
            from rapidocr_onnxruntime import RapidOCR
        except ImportError as e:
            raise ScorerUnavailable(
                f"ocr needs rapidocr-onnxruntime: pip install rapidocr-onnxruntime==1.4.4 ({e})"
            ) from None
        self._ocr = RapidOCR()
        self.model = (
            f"PP-OCRv4 det+rec (rapidocr-onnxruntime {metadata.version('rapidocr-onnxruntime')})"
            f" on {SIDE} px thumbnails"
        )

    def score_batch(self, rows: list[Row]) -> list[dict[str, Any]]:
        import io

        from PIL import Image

        out = []
        for r in rows:
            small = thumbnail(r["image"], SIDE)
            w, h = Image.open(io.BytesIO(small)).size
            result, _ = self._ocr(small)
            text, score = overlay_score(result, w, h)
            out.append({"ocr_text": text, "text_overlay": score})
        return out
