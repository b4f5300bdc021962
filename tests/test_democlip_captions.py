"""Group-aware training captions (backend/democlip/captions.py): no scenes rendered, specs only."""

from __future__ import annotations

import numpy as np

from backend.demo.concepts import COLOURS, SHAPES, plural
from backend.democlip.captions import group_captions, shape_groups
from backend.democlip.data import Scenes, _truth, sample_specs
from backend.democlip.train import Settings, _captions


def _scenes(n: int = 240) -> Scenes:
    specs, group = sample_specs(n, 0, 0)
    return Scenes(np.zeros((n, 1), np.float32), seed=0, split=0, **_truth(specs, group))


def _duplicates_within_groups(data: Scenes, caps: list[str]) -> int:
    groups = (np.flatnonzero(data.group == v) for v in np.unique(data.group))
    return sum(len(g) - len({caps[i] for i in g}) for g in groups)


def test_shape_groups_are_the_groups_whose_shapes_differ():
    data = _scenes()
    kinds = shape_groups(data.group, data.shape)
    for v in np.unique(data.group):
        member = data.group == v
        assert kinds[member].all() == (len(set(data.shape[member])) > 1)
        assert kinds[member].all() or len(set(data.colour[member])) == member.sum()
    assert 0 < kinds.mean() < 1


def test_no_caption_repeats_within_its_group_unlike_the_plain_captions():
    data = _scenes()
    kinds = shape_groups(data.group, data.shape)
    for epoch in range(3):
        plain = _captions(data, epoch, Settings(group_aware=False))
        aware = _captions(data, epoch, Settings())  # the defaults: group-aware, shape-only 0.5
        assert _duplicates_within_groups(data, plain) > 0  # colour-only / colourless captions
        assert _duplicates_within_groups(data, aware) == 0
        for i, cap in enumerate(aware):  # the group's attribute is always named
            word = SHAPES[data.shape[i]] if kinds[i] else list(COLOURS)[data.colour[i]]
            assert word in cap, (cap, word)


def test_shape_only_captions_name_the_shape_and_no_colour():
    data = _scenes()
    kinds = shape_groups(data.group, data.shape)
    caps = group_captions(data, 0, 0, prompt_mix=0.0, shape_only=1.0)
    colours = list(COLOURS)
    for i in np.flatnonzero(kinds):
        shape = SHAPES[data.shape[i]]
        assert shape in caps[i] or plural(shape) in caps[i]
        assert not any(c in caps[i].split() for c in colours), caps[i]
    assert group_captions(data, 1, 0, 0.3, 0.5) == group_captions(data, 1, 0, 0.3, 0.5)
