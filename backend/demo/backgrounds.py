"""Scene backgrounds: tinted texture photos (grass, gravel, brick) and plain fills.

Each texture is decoded and tinted once per process; a scene takes a random crop of it, so
backgrounds vary without any per-image texture work beyond a crop.
"""

from __future__ import annotations

from functools import cache

import numpy as np
from PIL import Image

SIZE = 256  # scenes are SIZE x SIZE pixels
_TEX = 512  # textures are at least this big, so a crop has room to move

# Colours that would vanish on a background: a scene never pairs them.
CLASHES: dict[str, frozenset[str]] = {
    "plain": frozenset({"white"}),
    "grass": frozenset({"green"}),
    "sky": frozenset({"blue"}),
    "paper": frozenset({"white", "yellow"}),
    "gravel": frozenset(),
    "brick": frozenset({"red", "brown", "orange"}),
    "checkerboard": frozenset({"white"}),
}

# Per-channel (scale, offset) applied to a grey texture.
_TINTS = {
    "grass": ((0.45, 10), (0.80, 35), (0.30, 5)),
    "gravel": ((0.95, 10), (0.92, 8), (0.85, 5)),
    "brick": ((0.75, 50), (0.42, 20), (0.33, 15)),
}


def _tint(grey: np.ndarray, tint: tuple[tuple[float, int], ...]) -> np.ndarray:
    g = grey.astype(np.float32)
    chans = [np.clip(g * a + b, 0, 255) for a, b in tint]
    return np.stack(chans, axis=-1).astype(np.uint8)


@cache
def texture(name: str) -> Image.Image:
    """The full-size RGB texture for one background (cached for the process)."""
    if name in _TINTS:
        import skimage.data

        grey = getattr(skimage.data, name)()
        return Image.fromarray(_tint(grey, _TINTS[name]))
    if name == "plain":
        return Image.new("RGB", (_TEX, _TEX), (226, 226, 222))
    if name == "sky":
        t = np.linspace(0.0, 1.0, _TEX, dtype=np.float32)[:, None, None]
        top, bottom = np.array([70, 130, 210]), np.array([185, 215, 245])
        rows = (top * (1 - t) + bottom * t).astype(np.uint8)
        return Image.fromarray(np.broadcast_to(rows, (_TEX, _TEX, 3)).copy())
    if name == "paper":
        rng = np.random.default_rng(7)
        noise = rng.normal(0.0, 4.0, (_TEX, _TEX, 1)).astype(np.float32)
        base = np.array([242, 238, 226], dtype=np.float32)
        return Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8))
    if name == "checkerboard":
        cells = (np.indices((_TEX, _TEX)) // 32).sum(axis=0) % 2
        grey = np.where(cells == 0, 250, 175).astype(np.uint8)
        return Image.fromarray(np.repeat(grey[:, :, None], 3, axis=2))
    raise KeyError(f"unknown background {name!r}")


def background(name: str, rng: np.random.Generator) -> Image.Image:
    """A fresh SIZE x SIZE crop of the background, at a random offset."""
    tex = texture(name)
    x = int(rng.integers(0, tex.width - SIZE + 1))
    y = int(rng.integers(0, tex.height - SIZE + 1))
    if name == "sky":
        x = 0
    return tex.crop((x, y, x + SIZE, y + SIZE))
