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

MEAN = (0.48145466, 0.4578275, 0.40821073)  # open_clip's OPENAI_DATASET_MEAN/STD (preprocess)
STD = (0.26862954, 0.26130258, 0.27577711)
SEED_TAG = 77  # the second part of every training seed (seed, 77, split, i)
VERSION = 3  # of the sampling scheme: part of the cache file name


@dataclass
class Scenes:
    """Pre-rendered scenes: ``images`` uint8 (N, S, S, 3) and each one's truth as indexes."""

    images: np.ndarray
    group: np.ndarray  # scenes of one group differ in their shape only, or colour only
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


def sample_specs(n: int, seed: int, split: int) -> tuple[list[SceneSpec], np.ndarray]:
    """``n`` scenes in groups that differ in one thing only: every shape with one (colour, count,
    background), or every colour the background allows with one (shape, count, background).

    Within a group only the shape (or the colour) tells the captions apart, so batches of whole
    groups make the contrastive loss learn it; in a batch of random scenes background and count
    alone tell almost every caption apart, and shape is never learned."""
    rng = random.Random(f"democlip/{seed}/{split}")
    colours = list(COLOURS)
    out: list[SceneSpec] = []
    group: list[int] = []

    def add(shape: str, colour: str, count: int, bg: str) -> None:
        out.append(SceneSpec(shape, colour, count, bg, (seed, SEED_TAG, split, len(out))))
        group.append(groups)

    groups = 0
    while len(out) < n:
        groups += 1
        count, shape, colour = rng.choice((1, 2, 3)), rng.choice(SHAPES), rng.choice(colours)
        if rng.random() < 0.5:  # a shape group
            bg = rng.choice([b for b in BACKGROUNDS if colour not in CLASHES[b]])
            for sh in SHAPES:
                add(sh, colour, count, bg)
        else:  # a colour group
            bg = rng.choice(BACKGROUNDS)
            for c in colours:
                if c not in CLASHES[bg]:
                    add(shape, c, count, bg)
    return out[:n], np.array(group[:n], np.int64)


def draw(spec: SceneSpec, size: int) -> np.ndarray:
    """The scene as the demo stores it (JPEG q90) and as open_clip's preprocess sees it
    (bicubic resize to ``size``)."""
    from backend.demo.plant import encode

    img = Image.open(io.BytesIO(encode(render_scene(spec))))
    return np.asarray(img.convert("RGB").resize((size, size), Image.Resampling.BICUBIC))


def cache_dir() -> Path:
    home = os.environ.get("TAILSCOPE_CACHE", Path.home() / ".cache" / "tailscope")
    return Path(home) / "democlip"


def _truth(specs: list[SceneSpec], group: np.ndarray) -> dict[str, np.ndarray]:
    colours, shapes = list(COLOURS), list(SHAPES)
    return {
        "group": group,
        "shape": np.array([shapes.index(s.shape) for s in specs], np.int64),
        "colour": np.array([colours.index(s.colour) for s in specs], np.int64),
        "count": np.array([s.count for s in specs], np.int64),
        "background": np.array([BACKGROUNDS.index(s.background) for s in specs], np.int64),
    }


def scenes(n: int, seed: int, split: int, size: int, progress=None) -> Scenes:
    """``n`` rendered scenes (cached as one .npz, rendered only the first time)."""
    path = cache_dir() / f"scenes-v{VERSION}-{n}-{seed}-{split}-{size}.npz"
    specs, group = sample_specs(n, seed, split)
    truth = _truth(specs, group)
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


def epoch_batches(data: Scenes, batch: int, rng: np.random.Generator) -> list[np.ndarray]:
    """One epoch's batches of whole groups (see :func:`sample_specs`) in a seeded order, a group
    left for a later batch when one of its scenes' truth is already in the batch: no caption's
    truth repeats in a batch (two such scenes would be each other's false negatives)."""
    combo = data.combo()
    bounds = np.flatnonzero(np.diff(data.group, prepend=-1, append=-1)) if len(data) else []
    groups = [np.arange(a, b) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    waiting = [groups[i] for i in rng.permutation(len(groups))]
    out = []
    while waiting:
        seen: set[int] = set()
        cur, rest = [], []
        for g in waiting:
            keys = set(combo[g].tolist())
            if sum(map(len, cur)) + len(g) <= batch and not keys & seen:
                cur.append(g)
                seen |= keys
            else:
                rest.append(g)
        if sum(map(len, cur)) < batch // 2 and out:  # a short tail: left out this epoch
            break
        out.append(np.concatenate(cur))
        waiting = rest
    return out


def to_tensor(images: np.ndarray):
    """uint8 (N, S, S, 3) -> normalised float (N, 3, S, S), as open_clip's preprocess does."""
    import torch

    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div_(255)
    return (x - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)


def features(n: int, seed: int, split: int, size: int, trunk, progress=None) -> Scenes:
    """``n`` scenes as pooled ``trunk`` features (cached as .npy; images are not kept), in
    the precision the embed step runs the trunk (bf16 autocast where the CPU has it)."""
    import torch

    from backend.models import _autocast

    specs, group = sample_specs(n, seed, split)
    path = cache_dir() / f"features-v{VERSION}-effnet-{n}-{seed}-{split}-{size}.npy"
    if path.is_file():
        return Scenes(np.load(path), seed=seed, split=split, **_truth(specs, group))
    out = None
    for lo in range(0, n, 64):
        batch = specs[lo : lo + 64]
        x = to_tensor(np.stack([draw(sp, size) for sp in batch]))
        with torch.inference_mode(), _autocast("cpu"):
            f = trunk(x.contiguous(memory_format=torch.channels_last)).float().numpy()
        out = np.empty((n, f.shape[1]), np.float32) if out is None else out
        out[lo : lo + len(batch)] = f
        if progress:
            progress(lo + len(batch), n)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path.with_suffix(".tmp.npy"), out)
    os.replace(path.with_suffix(".tmp.npy"), path)
    return Scenes(out, seed=seed, split=split, **_truth(specs, group))
