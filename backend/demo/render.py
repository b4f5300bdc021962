"""Turn an :class:`ImageRef` into the bytes written to the tar.

Scenes that several items share (an original and its copies or variants) are rendered once and
cached for the run; everything else is rendered, written and forgotten, so memory stays flat.
"""

from __future__ import annotations

import io
from collections import Counter
from dataclasses import dataclass

import numpy as np
from PIL import Image

from backend.demo import photos, plant
from backend.demo.backgrounds import SIZE
from backend.demo.plan import Entry, ImageRef
from backend.demo.synth import SceneSpec, render_scene


@dataclass(frozen=True)
class Rendered:
    data: bytes
    ext: str  # ".jpg" or ".png"
    width: int | None = None  # None where the bytes are not a usable image
    height: int | None = None
    original_width: int | None = None
    original_height: int | None = None


def _measured(data: bytes, original: tuple[int, int] | None = None) -> Rendered:
    w, h = Image.open(io.BytesIO(data)).size
    ow, oh = original or (w, h)
    return Rendered(data, ".jpg", w, h, ow, oh)


class Renderer:
    def __init__(self, entries: list[Entry], seed: int) -> None:
        self.seed = seed
        uses = Counter(e.image.scene for e in entries if e.image is not None and e.image.scene)
        self.shared = {spec for spec, n in uses.items() if n > 1}  # originals with copies
        self._cache: dict[SceneSpec, bytes] = {}

    def _scene_bytes(self, spec: SceneSpec) -> bytes:
        if spec in self._cache:
            return self._cache[spec]
        data = plant.encode(render_scene(spec))
        if spec in self.shared:
            self._cache[spec] = data
        return data

    def render(self, ref: ImageRef) -> Rendered:
        """The bytes for one item's image member, measured where they decode."""
        if ref.kind == "scene":
            assert ref.scene is not None
            if ref.op == "watermark":
                return _measured(plant.encode(plant.watermark(render_scene(ref.scene), ref.text)))
            data = self._scene_bytes(ref.scene)
            if ref.op is None:
                return Rendered(data, ".jpg", SIZE, SIZE, SIZE, SIZE)
            return _measured(plant.near_duplicate(data, ref.op))
        if ref.kind == "photo":
            enc = photos.encoded(ref.photo)
            orig = (enc.original_width, enc.original_height)
            if ref.op is None:
                return Rendered(enc.data, enc.ext, enc.width, enc.height, *orig)
            if ref.op == "watermark":
                return _measured(plant.encode(plant.watermark(enc.image, ref.text)), orig)
            return _measured(plant.near_duplicate(enc.data, ref.op), orig)
        if ref.kind == "empty":
            return Rendered(b"", ".jpg")
        if ref.kind == "html":
            return Rendered(plant.HTML_PAGE, ".jpg")
        if ref.kind == "random":
            return Rendered(
                plant.random_bytes(np.random.default_rng([self.seed, 4, ref.salt])), ".jpg"
            )
        if ref.kind == "truncated":
            return Rendered(plant.truncated(photos.encoded(ref.photo).data), ".jpg")
        if ref.kind == "bomb":
            return Rendered(plant.bomb_png(), ".png")
        raise ValueError(f"unknown image kind {ref.kind!r}")
