"""Scorer precision and recall against the demo's planted truth: the figures the Safety page
shows beside each score are computed from known rows, and the committed ones are readable."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import copy_demo

from backend import scorer_eval
from backend.dedup import dedup
from backend.safety.run import score


@pytest.fixture(scope="module")
def figs(demo_pristine: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("scorer_eval_ws")
    copy_demo(demo_pristine, root)
    score("demo", ["toxicity"], root=root)
    dedup("demo", root=root)  # no embeddings: semantic duplicates are not run
    return scorer_eval.evaluate("demo", root)


def test_offensive_rule_and_the_models_colour_word_false_positives(figs: dict) -> None:
    s = figs["scores"]
    rule = s["toxicity_or_profanity"]
    assert rule["positives"] == 6 and rule["chosen"]["t"] == 0.8
    assert rule["chosen"]["precision"] == 1.0 and rule["chosen"]["recall"] == 1.0
    before = s["toxicity"]["before"]  # the package's own 0.5 also flags colour captions
    assert before["t"] == 0.5 and before["recall"] == 1.0 and before["precision"] < 1.0
    assert before["flagged"] > rule["chosen"]["flagged"] == 6


def test_duplicates_against_the_planted_groups(figs: dict) -> None:
    s = figs["scores"]
    exact = s["dup_exact_group"]["chosen"]
    assert exact["precision"] == 1.0 and exact["recall"] == 1.0
    ph = s["phash"]["before"]  # the default 8 bits: nearly every planted copy, and more
    assert ph["t"] == 8 and ph["recall"] >= 0.95 and ph["precision"] < 0.8
    assert s["dup_semantic_group"]["not_run"]  # skipped: not scored as "found nothing"
    assert "nsfw" not in s  # not scored in this fixture: no figure invented


def test_committed_figures_read_back_for_the_page() -> None:
    figs = scorer_eval.measured()
    assert figs["scores"]["toxicity_or_profanity"]["chosen"]["precision"] == 1.0
    line = scorer_eval.describe("toxicity", 0.51)  # the nearest measured threshold: 0.5
    assert line.startswith("On the ") and "toxicity > 0.5 flags" in line and "recall" in line
    assert scorer_eval.describe("blur") is None  # nothing planted to measure it against
