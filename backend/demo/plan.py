"""Decide every item of the demo before drawing any: what it shows, says, and is planted as.

The plan is a pure function of (rows, seed, shard_size). Keeping it separate from rendering
means the ground truth comes from the same objects that the writer turns into bytes.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass

from backend.demo.backgrounds import CLASHES
from backend.demo.concepts import (
    BACKGROUND_EXPONENT,
    BACKGROUNDS,
    COLOUR_EXPONENT,
    COLOURS,
    SHAPES,
    ZIPF_EXPONENT,
    find_concepts,
    zipf_counts,
    zipf_weights,
)
from backend.demo.photos import CATALOGUE, Photo
from backend.demo.plant import BROKEN_CAPTIONS, NEAR_DUP_OPS, WATERMARKS, blank_caption
from backend.demo.synth import SceneSpec, scene_caption

MIN_SYNTHETIC = 60  # below this the Zipf law has too few rows to show


@dataclass(frozen=True)
class ImageRef:
    """How to make one item's image bytes: see ``render.Renderer``."""

    kind: str  # photo | scene | empty | html | random | truncated | bomb
    photo: str = ""
    scene: SceneSpec | None = None
    op: str | None = None  # a near-duplicate op, or "watermark"
    text: str = ""  # the watermark text
    salt: int = 0


@dataclass(eq=False)
class Entry:
    """One item (one member stem in a tar) and what ingest should make of it."""

    source: str  # a photo name, "synthetic" or "broken"
    image: ImageRef | None  # None: no image member
    caption: str | None  # what ingest should read as the caption (None: no usable caption)
    txt: bytes | None  # the .txt member's bytes (None: no .txt member)
    meta_caption: str | None  # the "caption" field of the .json sidecar
    reject: str | None = None  # the reason ingest should give, None when it keeps the item
    credit: str = "Tailscope demo generator"
    aesthetic: float = 4.0
    stem: str | None = None  # a forced member stem (unsafe names)
    sidecar: bool = True  # whether a .json member is written
    same_key_as: Entry | None = None  # a planted repeat of that entry's key
    near_dup_of: Entry | None = None
    near_dup_op: str | None = None
    watermark: str | None = None
    offensive: bool = False
    cp1252: bool = False
    uninformative: str | None = None  # a caption that says nothing true of its image: its kind
    key: str = ""


def scale(rows: int) -> float:
    """How many planted problems, relative to a 5,000-row demo (grows with sqrt of rows)."""
    return min(10.0, max(0.5, math.sqrt(rows / 5000)))


def _caption_entry(
    source: str,
    image: ImageRef,
    text: str,
    credit: str,
    aesthetic: float,
    cp1252: bool = False,
    **kw,
) -> Entry:
    raw = text.encode("cp1252" if cp1252 else "utf-8")
    return Entry(
        source, image, text, raw, text, credit=credit, aesthetic=aesthetic, cp1252=cp1252, **kw
    )


def _photo_entries(rng: random.Random, s: float) -> list[Entry]:
    """Each photo under each of its captions (identical bytes), plus near-dups and watermarks."""
    out: list[Entry] = []
    first: dict[str, Entry] = {}

    def aes() -> float:
        return round(rng.uniform(5.0, 7.0), 3)

    def copy_of(p: Photo, ref: ImageRef, op: str, **kw) -> Entry:
        """A planted copy of photo ``p`` under one of its captions, pointing at its original."""
        return _caption_entry(p.name, ref, rng.choice(p.captions), p.credit, aes(),
                              near_dup_of=first[p.name], near_dup_op=op, **kw)

    for p in CATALOGUE:
        ref = ImageRef("photo", photo=p.name)
        for text in p.captions:
            out.append(_caption_entry(p.name, ref, text, p.credit, aes()))
            first.setdefault(p.name, out[-1])
        if p.offensive:
            out.append(_caption_entry(p.name, ref, p.offensive, p.credit, aes(), offensive=True))
        if p.cp1252:
            out.append(_caption_entry(p.name, ref, p.cp1252, p.credit, aes(), cp1252=True))
    eligible: list[Photo] = [p for p in CATALOGUE if p.variants_ok]
    for p in rng.sample(eligible, min(len(eligible), round(8 * s))):
        for op in rng.sample(NEAR_DUP_OPS, rng.choice((1, 1, 2))):
            ref = ImageRef("photo", photo=p.name, op=op)
            out.append(copy_of(p, ref, op))
    for p in rng.sample(eligible, min(len(eligible), max(1, round(3 * s)))):
        text = rng.choice(WATERMARKS)
        ref = ImageRef("photo", photo=p.name, op="watermark", text=text)
        out.append(copy_of(p, ref, "watermark", watermark=text))
    return out


def _random_spec(rng: random.Random, shape: str, seed: tuple[int, ...]) -> SceneSpec:
    colour = rng.choices(list(COLOURS), weights=zipf_weights(len(COLOURS), COLOUR_EXPONENT))[0]
    bg_weights = zipf_weights(len(BACKGROUNDS), BACKGROUND_EXPONENT)
    allowed = [
        (b, w) for b, w in zip(BACKGROUNDS, bg_weights, strict=True) if colour not in CLASHES[b]
    ]
    bg = rng.choices([b for b, _ in allowed], weights=[w for _, w in allowed])[0]
    count = rng.choices((1, 2, 3), weights=(0.6, 0.25, 0.15))[0]
    return SceneSpec(shape, colour, count, bg, seed)


def _checked_caption(spec: SceneSpec, rng: random.Random, offensive: bool = False) -> str:
    text = scene_caption(spec, rng, offensive)
    found = set(find_concepts(text))
    if spec.shape not in found or not found <= {spec.shape, spec.colour, spec.background}:
        raise AssertionError(f"caption {text!r} does not match its scene {spec}")
    return text


class _Slots:
    """Free synthetic slots by shape, so a planted copy always takes a slot of its own shape."""

    def __init__(self, shapes: list[str], rng: random.Random) -> None:
        self.rng = rng
        self.free: dict[str, list[int]] = {sh: [] for sh in SHAPES}
        for i, sh in enumerate(shapes):
            self.free[sh].append(i)
        for lst in self.free.values():
            rng.shuffle(lst)

    def take_distinct(self, n: int, specs: list[SceneSpec]) -> list[int] | None:
        """``n`` free slots whose scenes differ pairwise in shape and colour, or None."""
        shapes = [sh for sh in SHAPES if self.free[sh]]
        self.rng.shuffle(shapes)
        chosen: list[int] = []
        for sh in shapes:
            colours = {specs[c].colour for c in chosen}
            fit = [i for i, slot in enumerate(self.free[sh]) if specs[slot].colour not in colours]
            if fit:
                chosen.append(self.free[sh].pop(fit[0]))
            if len(chosen) == n:
                return chosen
        for slot in chosen:  # not enough: give them back
            self.free[specs[slot].shape].append(slot)
        return None

    def take(self, n: int) -> list[int] | None:
        """``n`` free slots of one shape (chosen in proportion to what is left), or None."""
        ok = [sh for sh in SHAPES if len(self.free[sh]) >= n]
        if not ok:
            return None
        shape = self.rng.choices(ok, weights=[len(self.free[sh]) for sh in ok])[0]
        return [self.free[shape].pop() for _ in range(n)]


class _Planter:
    """The synthetic scenes being planned: their slots, and the steps that plant problems in them.
    One seeded ``rng`` drives every step, so the steps run in a fixed order."""

    def __init__(self, rng: random.Random, shapes: list[str], specs: list[SceneSpec]) -> None:
        self.rng, self.specs = rng, specs
        self.entries: list[Entry | None] = [None] * len(shapes)
        self.slots = _Slots(shapes, rng)
        self.ops: list[str] = []

    def make(self, i: int, spec: SceneSpec, ref: ImageRef | None = None,
             caption: str | None = None, offensive: bool = False, **kw) -> Entry:
        text = caption or _checked_caption(spec, self.rng, offensive)
        e = _caption_entry(
            "synthetic",
            ref or ImageRef("scene", scene=spec),
            text,
            "Tailscope demo generator",
            round(self.rng.uniform(3.0, 5.5), 3),
            offensive=offensive,
            **kw,
        )
        self.entries[i] = e
        return e

    def groups(self, total: int, sizes: tuple[int, ...],
               plant: Callable[[Entry, int, int], None]) -> None:
        while total > 0:
            k = min(total, self.rng.choice(sizes))
            group = self.slots.take(1 + k)
            if group is None:
                return
            orig = self.make(group[0], self.specs[group[0]])
            for j, slot in enumerate(group[1:]):
                plant(orig, slot, j)
            total -= k

    def exact_copy(self, orig: Entry, slot: int, _: int) -> None:
        spec = orig.image.scene
        self.make(slot, spec, caption=orig.caption if self.rng.random() < 0.5 else None)

    def near_dup(self, orig: Entry, slot: int, j: int) -> None:
        if j == 0:
            self.ops[:] = self.rng.sample(NEAR_DUP_OPS, len(NEAR_DUP_OPS))
        spec = orig.image.scene
        ref = ImageRef("scene", scene=spec, op=self.ops[j])
        self.make(slot, spec, ref, near_dup_of=orig, near_dup_op=self.ops[j])

    def singles(self, s: float) -> None:
        """Watermarked scenes, then offensive captions, one slot each."""
        specs = self.specs
        for _ in range(round(12 * s)):
            if not (taken := self.slots.take(1)):
                break
            slot, text = taken[0], self.rng.choice(WATERMARKS)
            self.make(
                slot,
                specs[slot],
                ImageRef("scene", scene=specs[slot], op="watermark", text=text),
                watermark=text,
            )
        for _ in range(max(1, round(4 * s))):
            if not (taken := self.slots.take(1)):
                break
            self.make(taken[0], specs[taken[0]], offensive=True)

    def other_scene_captions(self, s: float) -> None:
        """Captions of another scene, rotated in threes (so each shape's count holds)."""
        for _ in range(max(2, round(5 * s))):
            if not (group := self.slots.take_distinct(3, self.specs)):
                break
            texts = [_checked_caption(self.specs[i], self.rng) for i in group]
            for j, slot in enumerate(group):
                self.make(slot, self.specs[slot], caption=texts[(j + 1) % 3],
                          uninformative="other scene")


def _synthetic_entries(rng: random.Random, total: int, s: float, seed: int) -> list[Entry]:
    """``total`` scenes, some of them planted problems; the shapes their captions name follow
    the Zipf law exactly (captions of another scene are rotated within a group, so the counts
    hold; captions that name nothing belong to extra scenes of any shape)."""
    n_blank = min(round(16 * s), total // 10)
    n = total - n_blank
    shapes = [
        sh
        for sh, c in zip(SHAPES, zipf_counts(n, len(SHAPES), ZIPF_EXPONENT), strict=True)
        for _ in range(c)
    ]
    rng.shuffle(shapes)
    specs = [_random_spec(rng, sh, (seed, 1, i)) for i, sh in enumerate(shapes)]
    p = _Planter(rng, shapes, specs)
    p.groups(round(15 * s), (1, 1, 2), p.exact_copy)
    p.groups(round(15 * s), (1, 2, 3), p.near_dup)
    p.singles(s)
    p.other_scene_captions(s)
    for i, e in enumerate(p.entries):
        if e is None:
            p.make(i, specs[i])
    for j in range(n_blank):  # scenes beyond the Zipf law: their captions name no shape
        kind, text = blank_caption(rng)
        spec = _random_spec(rng, rng.choice(SHAPES), (seed, 5, j))
        p.entries.append(None)
        p.make(len(p.entries) - 1, spec, caption=text, uninformative=kind)
    return p.entries  # type: ignore[return-value]


def _broken_entries(rng: random.Random, n: int, seed: int) -> list[Entry]:
    """``n`` items of each kind ingest must reject, each with the reason it must give."""
    out: list[Entry] = []
    jpeg_photos = [p.name for p in CATALOGUE if p.variants_ok]
    counter = iter(range(10**9))

    def scene() -> tuple[ImageRef, str]:
        spec = _random_spec(rng, rng.choice(SHAPES), (seed, 2, next(counter)))
        return ImageRef("scene", scene=spec), scene_caption(spec, rng)

    def broken(
        ref: ImageRef | None, reason: str, text: str | None = None, caption: str = "yes", **kw
    ) -> None:
        """``caption``: "yes" (a real one), "none" (no .txt at all) or "blank" (whitespace)."""
        text = text or rng.choice(BROKEN_CAPTIONS)
        txt, meta = {
            "yes": (text.encode(), text),
            "none": (None, None),
            "blank": (b"  \n\t ", "   "),
        }[caption]
        out.append(
            Entry(
                "broken",
                ref,
                text if caption == "yes" else None,
                txt,
                meta,
                reject=reason,
                credit="unknown",
                aesthetic=round(rng.uniform(2.0, 4.0), 3),
                **kw,
            )
        )

    for i in range(n):
        broken(ImageRef("empty"), "empty file")
        broken(ImageRef("html"), "not an image")
        broken(ImageRef("random", salt=i), "not an image")
        broken(ImageRef("truncated", photo=rng.choice(jpeg_photos)), "truncated or corrupt image")
        broken(ImageRef("bomb"), "decompression bomb")
        broken(scene()[0], "missing caption", caption="none")
        broken(scene()[0], "missing caption", caption="blank")
        broken(None, "missing image")
        ref, text = scene()
        stem = "../escape" if i == 0 else f"../escape_{i}"
        broken(ref, "unsafe member name", text, stem=stem, sidecar=False)
    return out


def _repeated_keys(
    rng: random.Random, body: list[Entry], n: int, shard_size: int, seed: int
) -> list[Entry]:
    """``n`` valid items that reuse the key of a plain synthetic item written earlier."""
    plain = [
        i
        for i, e in enumerate(body)
        if e.source == "synthetic" and e.reject is None and e.image.op is None and not e.offensive
    ]
    early = [i for i in plain if i < shard_size]
    targets = rng.sample(early, n) if len(early) >= n else plain[:n]
    out = []
    for k, i in enumerate(targets):
        spec = _random_spec(rng, rng.choice(SHAPES), (seed, 3, k))
        text = scene_caption(spec, rng)
        out.append(
            Entry(
                "synthetic",
                ImageRef("scene", scene=spec),
                text,
                text.encode(),
                text,
                reject="duplicate key",
                same_key_as=body[i],
            )
        )
    return out


def build_plan(rows: int, seed: int, shard_size: int) -> list[Entry]:
    """Every item in write order, with its key; ``len`` of the result is exactly ``rows``."""
    rng = random.Random(seed)
    s = scale(rows)
    n_broken = max(1, round(1.5 * s))
    photos = _photo_entries(rng, s)
    broken = _broken_entries(rng, n_broken, seed)
    n_synthetic = rows - len(photos) - len(broken) - n_broken
    if n_synthetic < MIN_SYNTHETIC:
        raise ValueError(
            f"rows={rows} is too few: the demo needs at least {rows - n_synthetic + MIN_SYNTHETIC}"
        )
    body = photos + _synthetic_entries(rng, n_synthetic, s, seed) + broken
    rng.shuffle(body)
    entries = body + _repeated_keys(rng, body, n_broken, shard_size, seed)
    for pos, e in enumerate(entries):
        e.key = e.stem or f"{pos:09d}"
    for e in entries:
        if e.same_key_as is not None:
            e.key = e.same_key_as.key
    return entries
