"""Image bytes in, facts or thumbnails out; every way an image can be bad becomes a reason."""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass

from PIL import Image, ImageFile, UnidentifiedImageError

# A decoded image larger than this is treated as a decompression bomb (about 8000 x 8000).
MAX_PIXELS = 64_000_000
Image.MAX_IMAGE_PIXELS = MAX_PIXELS
ImageFile.LOAD_TRUNCATED_IMAGES = False


class BadImage(ValueError):
    """Why these bytes are not a usable image; ``reason`` is a short stable label."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class ImageInfo:
    width: int
    height: int
    format: str
    mode: str
    file_size: int
    sha256: str


def _sniff(data: bytes) -> str:
    head = data[:64].lstrip().lower()
    if head.startswith((b"<!doctype", b"<html", b"<?xml", b"<head", b"<body")):
        return "HTML or XML saved as an image"
    if head[:1] in (b"{", b"[") or all(32 <= b < 127 or b in (9, 10, 13) for b in head):
        return "text saved as an image"
    return "unrecognised image format"


def probe(data: bytes) -> ImageInfo:
    """Decode ``data`` fully (cheaply, at reduced scale where the codec allows) and describe it.

    Raises :class:`BadImage` for empty, non-image, truncated, corrupt or oversized input.
    """
    if not data:
        raise BadImage("empty file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            width, height = img.size
            if width * height > MAX_PIXELS:
                raise BadImage("decompression bomb", f"{width}x{height} pixels")
            fmt = (img.format or "").lower()
            mode = img.mode
            if fmt == "jpeg":
                img.draft("RGB", (max(1, width // 8), max(1, height // 8)))
            img.load()
    except BadImage:
        raise
    except UnidentifiedImageError:
        raise BadImage("not an image", _sniff(data)) from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise BadImage("decompression bomb", str(e)[:200]) from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise BadImage("truncated or corrupt image", str(e)[:200]) from None
    if width <= 0 or height <= 0:
        raise BadImage("truncated or corrupt image", f"size {width}x{height}")
    return ImageInfo(width, height, fmt, mode, len(data), hashlib.sha256(data).hexdigest())


def to_rgb(img: Image.Image) -> Image.Image:
    """Flatten any mode (palette, alpha, CMYK, 16-bit) to RGB on white."""
    if img.mode == "RGB":
        return img
    if img.mode in ("RGBA", "LA", "P", "PA"):
        rgba = img.convert("RGBA")
        bg = Image.new("RGB", rgba.size, (255, 255, 255))
        bg.paste(rgba, mask=rgba.getchannel("A"))
        return bg
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        img = img.point(lambda v: v / 256).convert("L")
    return img.convert("RGB")


def open_rgb(data: bytes) -> Image.Image:
    """Decode to an RGB PIL image (first frame of animations)."""
    img = Image.open(io.BytesIO(data))
    img.seek(0)
    img.load()
    return to_rgb(img)


def thumbnail(data: bytes, size: int = 256) -> bytes:
    """A JPEG thumbnail whose longer side is at most ``size`` pixels."""
    img = Image.open(io.BytesIO(data))
    if (img.format or "").lower() == "jpeg":
        img.draft("RGB", (size, size))
    img = to_rgb(img)
    img.thumbnail((size, size))
    out = io.BytesIO()
    img.save(out, format="JPEG", quality=85)
    return out.getvalue()
