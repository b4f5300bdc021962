"""The map step: cluster labels on known captions, and the demo's map against its ground truth."""

from __future__ import annotations

import numpy as np

from backend.terms import cluster_labels, contrast_terms

CAPTIONS = [
    "three red circles on grass",
    "a blue circle on sand",
    "two green circles on grass",
    "a red square on water",
    "one yellow square",
    "four squares on sand",
    "a cat on a sofa",
    "the cat sleeps on a sofa",
    "an unplaced caption about rockets",
]
LABELS = np.array([0, 0, 0, 1, 1, 1, 2, 2, -1])


def test_cluster_labels_name_each_clusters_own_words():
    got = cluster_labels(CAPTIONS, LABELS, k=2)
    assert set(got) == {0, 1, 2}  # -1 (no map position) gets no label
    assert got[0][0] == "circle"  # plurals fold: "circles" counts as "circle"
    assert got[1][0] == "square"
    assert set(got[2]) == {"cat", "sofa"}
    assert all("rocket" not in t for terms in got.values() for t in terms)


def test_cluster_labels_skip_stop_words_numbers_and_rare_noise():
    caps = [f"a photo of the {i} circle" for i in range(60)] + ["circle zzqx"] + [
        f"a photo of a square {i}" for i in range(60)
    ]
    labels = np.array([0] * 61 + [1] * 60)
    got = cluster_labels(caps, labels, k=3)
    assert got[0][0] == "circle" and got[1][0] == "square"  # "photo" is in both: ranks lower
    assert "zzqx" not in got[0]  # in one caption only: below min_df


def test_cluster_labels_edge_cases():
    assert cluster_labels([], np.array([])) == {}
    assert cluster_labels(["the of", "and"], np.array([0, 1])) == {0: [], 1: []}
    try:
        cluster_labels(["a"], np.array([0, 1]))
    except ValueError as e:
        assert "labels" in str(e)
    else:
        raise AssertionError("a length mismatch must be refused")


def test_contrast_terms_find_what_is_over_represented():
    got = contrast_terms(CAPTIONS[:3], CAPTIONS, k=3)
    assert got[0] == "circle" and "square" not in got and "cat" not in got
    assert contrast_terms([], CAPTIONS) == []
    assert contrast_terms(["the a of"], CAPTIONS) == []
