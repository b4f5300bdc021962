"""Planted problems with known answers: near duplicates, watermarks, broken bytes.

Every function here is deterministic in its arguments, so the ground truth can name exactly
which rows carry which problem and the tests can check that each one really is that problem.
"""

from __future__ import annotations

import io
import math
import zlib
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFont

from backend.images import BadImage, probe

NEAR_DUP_OPS = ("crop", "resize", "reencode", "brightness")
WATERMARKS = (
    "© shutterstock",
    "stock photo",
    "getty images",
    "SAMPLE",
    "© dreamstime",
    "iStock",
    "preview only",
    "123RF",
)
BROKEN_CAPTIONS = (
    "Free shipping on all orders over $50",
    "IMG_2041.JPG",
    "click here to enlarge",
    "beautiful sunset over the ocean",
    "product image",
    "Untitled",
    "image 3 of 12",
)

# Alt-text that says nothing of its image (real crawls are full of it): only pixels find these.
CLICK_HERE = ("click here", "click here to enlarge", "Click here for the full size image",
              "click to zoom", "view larger image")  # fmt: skip
SEO_TEXT = (
    "best cheap deals free shipping buy now online",
    "Top 10 wallpapers HD free download 2019",
    "shop the latest trends at great prices",
    "unique gifts for him and her | fast delivery",
    "official store - new arrivals - limited offer",
    "high quality stock image royalty free vector illustration",
)


def blank_caption(rng) -> tuple[str, str]:
    """(kind, caption) of an uninformative caption: a file name, "click here" or SEO text."""
    kind = rng.choice(("file name", "click here", "seo"))
    if kind == "file name":
        return kind, rng.choice((
            f"IMG_{rng.randint(1000, 9999)}.jpg", f"DSC{rng.randint(10000, 99999)}.JPG",
            f"image_{rng.randint(1, 999)}.png", f"photo-{rng.randint(100000, 999999)}.jpeg",
        ))  # fmt: skip
    return kind, rng.choice(CLICK_HERE if kind == "click here" else SEO_TEXT)


def encode(img: Image.Image, quality: int = 90) -> bytes:
    out = io.BytesIO()
    img.save(out, format="JPEG", quality=quality)
    return out.getvalue()


def near_duplicate(original: bytes, op: str) -> bytes:
    """A visually near-identical copy of ``original`` made the way re-uploads are made."""
    img = Image.open(io.BytesIO(original))
    img.load()
    if img.mode not in ("RGB", "L"):
        img = img.convert("RGB")
    w, h = img.size
    if op == "crop":  # the centre 90%
        dx, dy = round(w * 0.05), round(h * 0.05)
        return encode(img.crop((dx, dy, w - dx, h - dy)))
    if op == "resize":
        return encode(img.resize((max(1, w // 2), max(1, h // 2)), Image.Resampling.LANCZOS))
    if op == "reencode":
        return encode(img, quality=30)
    if op == "brightness":
        return encode(ImageEnhance.Brightness(img).enhance(1.15))
    raise ValueError(f"unknown near-duplicate op {op!r}")


@lru_cache(maxsize=16)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def watermark(img: Image.Image, text: str) -> Image.Image:
    """``text`` tiled semi-transparently and diagonally across the image, as stock sites do."""
    w, h = img.size
    size = max(12, min(w, h) // 9)
    font = _font(size)
    diag = math.ceil(math.hypot(w, h))
    layer = Image.new("RGBA", (diag, diag), (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    step_x = int(draw.textlength(text, font=font) + 2 * size)
    step_y = 3 * size
    for row, y in enumerate(range(0, diag, step_y)):
        for x in range(-(row % 2) * step_x // 2, diag, step_x):
            draw.text(
                (x, y),
                text,
                font=font,
                fill=(255, 255, 255, 120),
                stroke_width=1,
                stroke_fill=(0, 0, 0, 80),
            )
    layer = layer.rotate(30, resample=Image.Resampling.BICUBIC)
    left, top = (diag - w) // 2, (diag - h) // 2
    layer = layer.crop((left, top, left + w, top + h))
    marked = Image.alpha_composite(img.convert("RGBA"), layer)
    return marked.convert("L" if img.mode == "L" else "RGB")


# Broken image bytes -------------------------------------------------------------------------

HTML_PAGE = (
    b"<!DOCTYPE html>\n<html><head><title>404 Not Found</title></head>\n<body>"
    b"<h1>Not Found</h1><p>The requested URL was not found on this server.</p>"
    b"<hr><address>Apache Server at cdn.example.invalid Port 443</address></body></html>\n"
)


def random_bytes(rng: np.random.Generator, size: int = 3000) -> bytes:
    """Noise that no codec recognises (re-drawn in the rare case one does)."""
    while True:
        data = rng.bytes(size)
        try:
            probe(data)
        except BadImage as e:
            if e.reason == "not an image":
                return data


def truncated(jpeg: bytes, fraction: float = 0.4) -> bytes:
    """The first ``fraction`` of a real JPEG, as an interrupted download leaves it."""
    return jpeg[: int(len(jpeg) * fraction)]


def bomb_png(side: int = 30_000) -> bytes:
    """A tiny PNG whose header claims ``side`` x ``side`` pixels (CRC fixed, so it parses)."""
    out = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 30, 30)).save(out, format="PNG")
    data = bytearray(out.getvalue())
    assert data[12:16] == b"IHDR"
    data[16:20] = side.to_bytes(4, "big")
    data[20:24] = side.to_bytes(4, "big")
    data[29:33] = zlib.crc32(bytes(data[12:29])).to_bytes(4, "big")
    return bytes(data)
