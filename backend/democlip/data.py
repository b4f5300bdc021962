"""Training scenes for the demo CLIP: drawn by the demo's own generator, cached once on disk.

Scenes are sampled with every shape, colour and count equally likely (the demo's Zipf law is
for the demo, not for learning) and seeded with 4-part seeds, while the demo's rows use 3-part
seeds: no training scene is ever a demo row. Captions come from ``scene_caption`` (the demo's
own templates), drawn afresh each epoch.
"""

from __future__ import annotations

import io
import os
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from backend.demo.backgrounds import CLASHES
from backend.demo.concepts import BACKGROUNDS, COLOURS, SHAPES
from backend.demo.synth import SceneSpec, render_scene, scene_caption

SEED_TAG = 77  # the second part of every training seed (seed, 77, split, i)


@dataclass
class Scenes:
    """Pre-rendered scenes: ``images`` uint8 (N, S, S, 3) and each one's truth as indexes."""

    images: np.ndarray
    shape: np.ndarray
    colour: np.ndarray
    count: np.ndarray
    background: np.ndarray
    seed: int
    split: int

    def __len__(self) -> int:
        return len(self.images)

    def spec(self, i: int) -> SceneSpec:
        seed = (self.seed, SEED_TAG, self.split, i)
        return SceneSpec(SHAPES[self.shape[i]], list(COLOURS)[self.colour[i]],
                         int(self.count[i]), BACKGROUNDS[self.background[i]], seed)  # fmt: skip

    def combo(self) -> np.ndarray:
        """One integer per scene for its (shape, colour, count, background)."""
        return ((self.shape * 16 + self.colour) * 4 + self.count) * 8 + self.background

    def captions(self, epoch: int) -> list[str]:
        """Each scene's caption for ``epoch`` (the demo's templates, redrawn per epoch)."""
        rng = random.Random(f"{self.seed}/{self.split}/{epoch}")
        return [scene_caption(self.spec(i), rng) for i in range(len(self))]


def sample_specs(n: int, seed: int, split: int) -> list[SceneSpec]:
    """``n`` scenes, shapes/colours/counts uniform, backgrounds uniform among those allowed."""
    rng = random.Random(f"democlip/{seed}/{split}")
    colours = list(COLOURS)
    out = []
    for i in range(n):
        colour = rng.choice(colours)
        bg = rng.choice([b for b in BACKGROUNDS if colour not in CLASHES[b]])
        out.append(SceneSpec(rng.choice(SHAPES), colour, rng.choice((1, 2, 3)), bg,
                             (seed, SEED_TAG, split, i)))  # fmt: skip
    return out


def draw(spec: SceneSpec, size: int) -> np.ndarray:
    """The scene as the demo stores it (JPEG q90) and as open_clip's preprocess sees it
    (bicubic resize to ``size``)."""
    from backend.demo.plant import encode

    img = Image.open(io.BytesIO(encode(render_scene(spec))))
    return np.asarray(img.convert("RGB").resize((size, size), Image.Resampling.BICUBIC))


def cache_dir() -> Path:
    home = os.environ.get("TAILSCOPE_CACHE", Path.home() / ".cache" / "tailscope")
    return Path(home) / "democlip"


def scenes(n: int, seed: int, split: int, size: int, progress=None) -> Scenes:
    """``n`` rendered scenes (cached as one .npz, rendered only the first time)."""
    path = cache_dir() / f"scenes-{n}-{seed}-{split}-{size}.npz"
    specs = sample_specs(n, seed, split)
    colours, shapes = list(COLOURS), list(SHAPES)
    truth = {
        "shape": np.array([shapes.index(s.shape) for s in specs], np.int64),
        "colour": np.array([colours.index(s.colour) for s in specs], np.int64),
        "count": np.array([s.count for s in specs], np.int64),
        "background": np.array([BACKGROUNDS.index(s.background) for s in specs], np.int64),
    }
    if path.is_file():
        images = np.load(path)["images"]
    else:
        images = np.empty((n, size, size, 3), np.uint8)
        for i, spec in enumerate(specs):
            images[i] = draw(spec, size)
            if progress:
                progress(i + 1, n)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, images=images)
        os.replace(tmp, path)
    return Scenes(images, seed=seed, split=split, **truth)


def unique_batches(combo: np.ndarray, batch: int, rng: np.random.Generator) -> list[np.ndarray]:
    """A shuffled epoch cut into batches in which no (shape, colour, count, background) repeats:
    two scenes with the same truth would be each other's false negatives in the CLIP loss.
    A scene that cannot be placed without a repeat waits for the next batch."""
    order = rng.permutation(len(combo))
    batches, waiting = [], list(order)
    while waiting:
        seen, cur, rest = set(), [], []
        for i in waiting:
            if len(cur) < batch and combo[i] not in seen:
                seen.add(combo[i])
                cur.append(i)
            else:
                rest.append(i)
        if len(cur) < batch // 2 and batches:  # a short tail: dropped this epoch
            break
        batches.append(np.array(cur))
        waiting = rest
    return batches


def epoch_batches(
    data: Scenes, batch: int, rng: np.random.Generator, hard: float
) -> list[np.ndarray]:
    """One epoch's batches, none repeating a (shape, colour, count, background). A share ``hard``
    of the scenes go into one-colour batches: colour cannot tell their captions apart, so only
    shape, count and background can (colour alone is learned in a few steps, shape is not)."""
    combo = data.combo()
    is_hard = rng.random(len(data)) < hard
    out = []
    for c in np.unique(data.colour):
        pick = np.flatnonzero(is_hard & (data.colour == c))
        out += [pick[b] for b in unique_batches(combo[pick], batch, rng)] if len(pick) else []
    easy = np.flatnonzero(~is_hard)
    out += [easy[b] for b in unique_batches(combo[easy], batch, rng)] if len(easy) else []
    return [out[i] for i in rng.permutation(len(out))]
