"""Image quality measures: aspect ratio, brightness, contrast, sharpness and a grayscale flag.

Measured on the image scaled so its longer side is :data:`SIDE` pixels, so that blur scores
of large and small images are comparable (the variance of the Laplacian grows with detail per
pixel, which shrinks as resolution grows). Width, height and file size are ingest columns.

- ``aspect``: width / height of the original image;
- ``brightness``: mean luma, 0 (black) … 1 (white);
- ``contrast``: RMS contrast, the standard deviation of luma on the same 0…1 scale;
- ``blur``: variance of the Laplacian of luma (0…255 scale); *low* means blurry;
- ``grayscale``: the image has one channel, or its colour channels differ by less than
  :data:`GRAY_TOLERANCE` grey levels on average (JPEG leaves a little chroma noise).
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pyarrow as pa
from PIL import Image

from backend.safety import Row, Scorer, register

SIDE = 512
GRAY_TOLERANCE = 2.0


def measure(data: bytes) -> dict[str, Any]:
    """The quality columns of one image's bytes."""
    from scipy.ndimage import laplace

    img = Image.open(io.BytesIO(data))
    width, height = img.size
    if (img.format or "").lower() == "jpeg":
        img.draft("RGB", (SIDE, SIDE))
    img.load()
    gray_mode = img.mode in ("L", "LA", "1", "I", "I;16", "F")
    img = img.convert("RGB")
    img.thumbnail((SIDE, SIDE))
    rgb = np.asarray(img, dtype=np.float32)
    luma = rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    chroma = (np.abs(rgb[..., 0] - rgb[..., 1]) + np.abs(rgb[..., 1] - rgb[..., 2])).mean() / 2
    return {
        "aspect": width / height if height else None,
        "brightness": float(luma.mean() / 255),
        "contrast": float(luma.std() / 255),
        "blur": float(laplace(luma).var()),
        "grayscale": bool(gray_mode or chroma < GRAY_TOLERANCE),
    }


@register
class Quality(Scorer):
    name = "quality"
    version = "1"
    reads = ("image",)
    columns = {
        "aspect": pa.float32(),
        "brightness": pa.float32(),
        "contrast": pa.float32(),
        "blur": pa.float32(),
        "grayscale": pa.bool_(),
    }
    model = f"pixel statistics at {SIDE} px (numpy/scipy)"
    description = "aspect, brightness, contrast, blur (variance of Laplacian), grayscale"

    def score_batch(self, rows: list[Row]) -> list[dict[str, Any]]:
        return [measure(r["image"]) for r in rows]
