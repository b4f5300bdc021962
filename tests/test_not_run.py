"""A skipped step is recorded as skipped (why + command), survives later runs of other scorers,
and reads back as "not run" through backend.not_run: never as an empty result."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import copy_demo

from backend import models, not_run
from backend.dedup import dedup
from backend.safety.run import score
from backend.store import connect


@pytest.fixture
def root(demo_pristine: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    copy_demo(demo_pristine, tmp_path)

    def no_clip(*a, **kw):
        raise models.ModelUnavailable("no CLIP weights here (test)")

    monkeypatch.setattr(models, "load_clip", no_clip)
    return tmp_path


def test_a_skipped_scorer_stays_not_run_until_it_runs(root: Path):
    rec = score("demo", ["toxicity", "clip"], root=root)
    assert "toxicity" in rec["scorers"] and "no CLIP weights here" in rec["skipped"]["clip"]
    score("demo", ["phash"], root=root)  # dedup runs this: it must not erase the clip skip
    got = not_run.score_skipped("demo", root)
    assert set(got) == {"clip_similarity"}
    assert "no CLIP weights here" in got["clip_similarity"]["why"]
    assert got["clip_similarity"]["command"] == "python -m backend score demo --scorers clip"


def test_skipped_duplicate_kinds_are_recorded_with_why_and_command(root: Path):
    rec = dedup("demo", root=root)  # no embeddings: semantic duplicates cannot run
    assert set(rec["skipped"]) == {"semantic"}
    assert rec["skipped"]["semantic"]["command"].endswith("python -m backend dedup demo")
    con = connect("demo", root)
    (n,) = con.execute("SELECT count(dup_semantic_group) FROM samples").fetchone()
    con.close()
    assert n == 0  # the column is all NULL: without the record it would read as "0 groups"
    got = not_run.dedup_skipped("demo", root)
    assert set(got) == {"dup_semantic_group"} and got["dup_semantic_group"]["what"] == (
        "semantic duplicates"
    )
    assert rec["exact"]["groups"] > 0 and "dup_exact_group" not in not_run.skipped("demo", root)
