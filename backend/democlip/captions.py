"""Group-aware training captions for the demo CLIP (``Settings.group_aware``/``shape_only``).

Scenes come in groups that differ only in shape, or only in colour (``data.sample_specs``).
The demo's own captions sometimes leave the colour out (10%), and the generic re-phrasings
sometimes name only the colour: in a shape group a colour-only caption is the same for all
twelve scenes, and in a colour group a caption without colour is the same for all of them.
Identical captions for different images push the model to *ignore* the very attribute that
group is there to teach. Here a caption never drops what tells its group apart, and a share of
shape-group captions name only the shape ("three crescents", "a photo of a crescent"), so
that shape weighs more than colour in the image vectors (the map's clusters, the query "a photo
of a {colour} {shape}" on scenes of two or three shapes). Measured effects: README.
"""

from __future__ import annotations

import random

import numpy as np

from backend.demo import synth
from backend.demo.concepts import plural


def shape_groups(group: np.ndarray, shape: np.ndarray) -> np.ndarray:
    """Per scene: whether its group is a shape group (more than one shape in it)."""
    out = np.zeros(len(group), bool)
    for g in np.unique(group):
        member = group == g
        out[member] = len(np.unique(shape[member])) > 1
    return out


_SHORT = ("{obj}", "{Obj}.", "a picture of {obj}", "photo of {obj}")  # no background


def group_captions(data, epoch: int, seed: int, prompt_mix: float, shape_only: float,
                   no_background: float = 0.0) -> list[str]:  # fmt: skip
    """Each scene's caption for ``epoch``: the demo's templates (share ``no_background`` without
    the background), a generic zero-shot template (share ``prompt_mix``), or the shape alone
    (share ``shape_only`` of shape-group scenes)."""
    from open_clip.zero_shot_metadata import SIMPLE_IMAGENET_TEMPLATES

    rng = random.Random(f"ga/{seed}/{epoch}")
    kinds = shape_groups(data.group, data.shape)
    out = []
    for i in range(len(data)):
        spec, by_shape = data.spec(i), bool(kinds[i])
        noun = spec.shape if spec.count == 1 else plural(spec.shape)
        if rng.random() < prompt_mix:
            what = rng.choice((noun, f"{spec.colour} {noun}") if by_shape
                              else (f"{spec.colour} {noun}", spec.colour))  # fmt: skip
            out.append(rng.choice(SIMPLE_IMAGENET_TEMPLATES)(what))
            continue
        counted = f"a {noun}" if spec.count == 1 else f"{synth._COUNT_WORDS[spec.count]} {noun}"
        if by_shape and rng.random() < shape_only:
            out.append(rng.choice((counted, f"a photo of a {spec.shape}", noun)))
            continue
        words = noun if by_shape and rng.random() < 0.1 else f"{spec.colour} {noun}"
        obj = (f"{synth._article(words)} {words}" if spec.count == 1
               else f"{synth._COUNT_WORDS[spec.count]} {words}")  # fmt: skip
        short = rng.random() < no_background
        out.append(rng.choice(_SHORT if short else synth._TEMPLATES).format(
            obj=obj, Obj=obj[0].upper() + obj[1:], shapes=plural(spec.shape),
            bg=rng.choice(synth._BG_PHRASES[spec.background])))  # fmt: skip
    return out
