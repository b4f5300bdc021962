"""Issue 21, "the first ten minutes": what a new user sees and trips over, each on real data.

The concepts step is recorded in the manifest (the home page's pill), and a per-shard run
leaves no ``.parts`` folder behind.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from backend import catalog, paths
from backend.manifest import read_manifest


@pytest.fixture(scope="module")
def home(demo_pristine: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private copy of the ingested 600-row demo."""
    root = tmp_path_factory.mktemp("first_run_ws")
    shutil.copytree(demo_pristine / "demo", root / "demo", symlinks=True)
    return root


@pytest.fixture(scope="module")
def counted(home: Path) -> dict:
    """Three shapes counted per shard on a two-process local pool."""
    from backend.concepts.run import analyse
    from backend.concepts.vocab import build
    from backend.executor import Executor

    assert "concepts" not in catalog.summary("demo", home)["steps"]
    vocab = build("shapes", [("circle", []), ("square", []), ("hexagon", [])])
    return analyse("demo", vocab, home, executor=Executor("local", workers=2))


def test_concepts_step_is_recorded_and_leaves_no_parts(home: Path, counted: dict) -> None:
    from backend.concepts.run import concepts_dir, list_vocabs

    summary = counted
    step = read_manifest(paths.manifest_path("demo", home))["steps"]["concepts"]
    assert step["status"] == "done"
    assert step["params"]["vocab"] == "shapes" and step["params"]["executor"]["kind"] == "local"
    assert step["rows"] == summary["rows"] == catalog.summary("demo", home)["rows"]
    assert step["hits"] == summary["hits"] > 0
    assert step["vocabs"] == list_vocabs("demo", home) == ["shapes"]
    assert "concepts" in catalog.summary("demo", home)["steps"]
    # the per-shard parts were merged and removed, their parent folder too
    assert sorted(p.name for p in concepts_dir("demo", home).iterdir()) == ["shapes"]


def test_home_page_pill_shows_concepts_done(
    home: Path, counted: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("TAILSCOPE_HOME", str(home))
    at = AppTest.from_file(str(Path(__file__).parent.parent / "app.py"), default_timeout=90)
    at.run()
    assert not at.exception
    steps = next(m.value for m in at.markdown if "ts-steps" in m.value)
    assert re.search(r'class="ts-step done"[^>]*>✓ concepts<', steps)
    assert re.search(r'class="ts-step"[^>]*>○ embed<', steps)
