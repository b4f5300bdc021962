"""Generated scenes: one to three shapes of one colour on a background, and captions for them.

A scene is fully described by a :class:`SceneSpec`; rendering is a pure function of it, so an
exact duplicate is just the same spec rendered again and a caption can be checked against it.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from backend.demo.backgrounds import SIZE, background
from backend.demo.concepts import COLOURS, plural

_SS = 2  # supersampling factor for smooth shape edges
_MARGIN = 0.1 * SIZE  # shapes stay inside the centre 80%, so a 90% centre crop keeps them
_RADIUS = {1: (55, 80), 2: (38, 50), 3: (30, 40)}
_MAX_TILT = {"square": 10, "diamond": 5, "cross": 10, "heart": 15, "arrow": 180}


@dataclass(frozen=True)
class SceneSpec:
    shape: str
    colour: str
    count: int
    background: str
    seed: tuple[int, ...]  # seeds positions, sizes, tilt, colour jitter and background crop


def _regular(n: int, start: float = -math.pi / 2) -> list[tuple[float, float]]:
    return [
        (math.cos(start + 2 * math.pi * i / n), math.sin(start + 2 * math.pi * i / n))
        for i in range(n)
    ]


def _star() -> list[tuple[float, float]]:
    pts = []
    for i in range(10):
        a = -math.pi / 2 + math.pi * i / 5
        r = 1.0 if i % 2 == 0 else 0.45
        pts.append((r * math.cos(a), r * math.sin(a)))
    return pts


def _heart() -> list[tuple[float, float]]:
    pts = []
    for t in np.linspace(0, 2 * math.pi, 72, endpoint=False):
        x = 16 * math.sin(t) ** 3
        y = 13 * math.cos(t) - 5 * math.cos(2 * t) - 2 * math.cos(3 * t) - math.cos(4 * t)
        pts.append((x / 17.0, -(y + 2.5) / 17.0))
    return pts


_W = 0.33
_OUTLINES: dict[str, list[tuple[float, float]]] = {
    "square": [(-0.8, -0.8), (0.8, -0.8), (0.8, 0.8), (-0.8, 0.8)],
    "triangle": _regular(3),
    "star": _star(),
    "heart": _heart(),
    "cross": [
        (-_W, -1),
        (_W, -1),
        (_W, -_W),
        (1, -_W),
        (1, _W),
        (_W, _W),
        (_W, 1),
        (-_W, 1),
        (-_W, _W),
        (-1, _W),
        (-1, -_W),
        (-_W, -_W),
    ],
    "hexagon": _regular(6, 0.0),
    "pentagon": _regular(5),
    "diamond": [(0, -1), (0.62, 0), (0, 1), (-0.62, 0)],
    "arrow": [(-1, -0.22), (0.2, -0.22), (0.2, -0.6), (1, 0), (0.2, 0.6), (0.2, 0.22), (-1, 0.22)],
}


def _draw_shape(
    draw: ImageDraw.ImageDraw, shape: str, cx: float, cy: float, r: float, tilt: float
) -> None:
    """Fill one shape (at supersampled scale) into a mask: 255 inside, 0 outside."""
    cx, cy, r = cx * _SS, cy * _SS, r * _SS

    def disc(x: float, y: float, rad: float, fill: int) -> None:
        draw.ellipse((x - rad, y - rad, x + rad, y + rad), fill=fill)

    if shape == "circle":
        disc(cx, cy, r, 255)
    elif shape == "ring":
        disc(cx, cy, r, 255)
        disc(cx, cy, 0.55 * r, 0)
    elif shape == "crescent":
        disc(cx, cy, r, 255)
        disc(cx + 0.45 * r * math.cos(tilt), cy + 0.45 * r * math.sin(tilt), 0.85 * r, 0)
    else:
        c, s = math.cos(tilt), math.sin(tilt)
        pts = [(cx + r * (x * c - y * s), cy + r * (x * s + y * c)) for x, y in _OUTLINES[shape]]
        draw.polygon(pts, fill=255)


def _place(count: int, rng: np.random.Generator) -> list[tuple[float, float, float]]:
    """Centres and radii for ``count`` non-overlapping shapes inside the centre 80%."""
    lo, hi = _RADIUS[count]
    for _ in range(200):
        r = float(rng.uniform(lo, hi))
        found = []
        for _ in range(count):
            cx, cy = rng.uniform(_MARGIN + r, SIZE - _MARGIN - r, 2)
            if all(math.hypot(cx - x, cy - y) > 2.15 * r for x, y, _ in found):
                found.append((float(cx), float(cy), r))
        if len(found) == count:
            return found
        lo, hi = lo * 0.97, hi * 0.97
    raise RuntimeError("could not place shapes")  # pragma: no cover - radii leave ample room


def render_scene(spec: SceneSpec) -> Image.Image:
    """Draw the scene described by ``spec`` (deterministic in the spec)."""
    rng = np.random.default_rng(list(spec.seed))
    img = background(spec.background, rng)
    mask = Image.new("L", (SIZE * _SS, SIZE * _SS), 0)
    draw = ImageDraw.Draw(mask)
    max_tilt = math.radians(_MAX_TILT.get(spec.shape, 180))
    for cx, cy, r in _place(spec.count, rng):
        _draw_shape(draw, spec.shape, cx, cy, r, float(rng.uniform(-max_tilt, max_tilt)))
    jitter = rng.integers(-12, 13, 3)
    colour = tuple(
        int(min(255, max(0, c + j))) for c, j in zip(COLOURS[spec.colour], jitter, strict=True)
    )
    small = mask.reduce(_SS)
    box = small.getbbox()  # paste only where the shapes are: much faster than the full frame
    if box:
        img.paste(colour, box, small.crop(box))
    return img


# Captions ---------------------------------------------------------------------------------

_COUNT_WORDS = {2: "two", 3: "three"}
_BG_PHRASES = {
    "plain": ("on a plain background", "on a plain light background"),
    "grass": ("on grass", "on the grass", "on a grass background"),
    "sky": ("against the sky", "in a clear sky", "on a sky background"),
    "paper": ("on paper", "on a sheet of paper", "drawn on paper"),
    "gravel": ("on gravel", "lying on gravel", "on a gravel background"),
    "brick": ("on a brick wall", "against a brick wall", "on a brick background"),
    "checkerboard": ("on a checkerboard", "on a checkerboard pattern"),
}
_TEMPLATES = (
    "{obj} {bg}",
    "photo of {obj} {bg}",
    "a picture of {obj} {bg}",
    "{Obj} {bg}.",
    "simple drawing of {obj} {bg}",
    "close-up of {obj} {bg}",
    "{obj} {bg}, high quality",
    "{obj}",
    "{Obj}.",
)
_OFFENSIVE = (
    "{Obj}, ugly ass shit lol",
    "who the fuck would buy {obj} {bg}",
    "{obj} {bg}, what a piece of shit",
    "stupid fucking {shapes}, I hate them",
    "{obj} {bg}?? this is dumb as hell",
)


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _object_phrase(spec: SceneSpec, with_colour: bool) -> str:
    noun = spec.shape if spec.count == 1 else plural(spec.shape)
    words = f"{spec.colour} {noun}" if with_colour else noun
    if spec.count == 1:
        return f"{_article(words)} {words}"
    return f"{_COUNT_WORDS[spec.count]} {words}"


def scene_caption(spec: SceneSpec, rng: random.Random, offensive: bool = False) -> str:
    """A caption that names the shape and says only what is in the scene."""
    obj = _object_phrase(spec, with_colour=rng.random() > 0.1)
    template = rng.choice(_OFFENSIVE if offensive else _TEMPLATES)
    text = template.format(
        obj=obj,
        Obj=obj[0].upper() + obj[1:],
        bg=rng.choice(_BG_PHRASES[spec.background]),
        shapes=plural(spec.shape),
    )
    return text
