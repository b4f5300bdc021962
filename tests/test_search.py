"""Search end to end on the demo: known rows in, known rows out."""

from __future__ import annotations

import io
import json

import pytest
from PIL import Image

from backend.cli import main
from backend.search import Searcher, SearchError
from backend.selection import Selection
from backend.store import connect


@pytest.fixture(scope="module")
def searcher(demo_embedded):
    """A Searcher on the session's embedded (packaged models) and indexed demo, as the active
    workspace of this module (read only)."""
    mp = pytest.MonkeyPatch()
    mp.setenv("TAILSCOPE_HOME", str(demo_embedded))
    truth = json.loads((demo_embedded / "demo" / "source" / "ground_truth.json").read_text())
    con = connect("demo")
    keys = dict(con.execute("SELECT key, row_id FROM samples").fetchall())
    yield Searcher("demo"), truth, keys
    mp.undo()


def test_more_like_this_shows_a_photos_twins_first(searcher):
    s, truth, keys = searcher
    con = connect("demo")
    sha = dict(con.execute("SELECT row_id, sha256 FROM samples").fetchall())
    for group in truth["near_duplicates"]:
        if truth["samples"][group["original"]]["source"] == "synthetic":
            continue
        original = keys[group["original"]]
        twins = {keys[k] for k in group["variants"] if k in keys}
        twins |= {i for i, h in sha.items() if h == sha[original] and i != original}
        got = [h["row_id"] for h in s.like_row(original, k=len(twins)).hits]
        assert set(got) == twins, (group, got)
        return
    pytest.fail("the demo has no near-duplicate group of a real photo")


def test_text_search_finds_caption_meaning_and_says_clip_is_missing(searcher):
    s, truth, keys = searcher
    res = s.text("a cup of espresso", k=3)
    assert res.space.startswith("captions") and any("needs CLIP" in n for n in res.notes)
    assert any(
        "coffee" in h["caption"].lower() or "espresso" in h["caption"].lower() for h in res.hits[:2]
    )


def test_filters_apply_to_search(searcher):
    s, truth, keys = searcher
    sel = Selection(shards=["00001.tar"])
    hits = s.text("three red circles", k=10, sel=sel).hits
    assert len(hits) == 10 and {h["shard"] for h in hits} == {"00001.tar"}
    kw = s.keywords("circle*", k=5, sel=Selection(text="red")).hits
    assert len(kw) == 5 and all("red" in h["caption"].lower() for h in kw)


def test_bad_queries_say_what_to_do(searcher, tmp_path):
    s, _, _ = searcher
    with pytest.raises(SearchError, match="type something"):
        s.text("   ")
    with pytest.raises(SearchError, match="no row"):
        s.like_row(10**9)
    with pytest.raises(SearchError, match="not a usable image"):
        s.image(b"<html>not an image</html>")
    out = io.BytesIO()
    Image.new("RGB", (40, 40), "red").save(out, format="PNG")
    assert len(s.image(out.getvalue(), k=4).hits) == 4


def test_cli_search_json(searcher, capsys):
    s, truth, keys = searcher
    assert main(["search", "demo", "--keywords", '"grace hopper"', "-k", "3", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["vectors"] is None and out["model"] == "BM25 over captions (tantivy)"
    rows = out["results"]
    assert rows and all("grace hopper" in r["caption"].lower() for r in rows)
    assert set(rows[0]) == {"row_id", "score", "caption"}
    # meaning search names the vectors and model it searched, and why not CLIP
    assert main(["search", "demo", "--text", "a cup of espresso", "-k", "2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["vectors"] == "text" and out["model"].startswith("sentence-transformers/all-MiniLM")
    assert any("needs CLIP" in n for n in out["notes"]) and len(out["results"]) == 2
    assert main(["search", "demo", "--row", "3", "-k", "2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["vectors"] == "img" and out["model"].startswith("efficientnet-lite0")
    assert main(["search", "demo", "--row", "-5"]) == 2
    assert "no row" in capsys.readouterr().err


def test_keyword_filter_composes_with_other_filters(searcher):
    from backend import browse
    from backend.search import resolve_keywords

    s, truth, keys = searcher
    con = connect("demo")
    hopper = {
        keys[k] for k, v in truth["samples"].items() if "grace hopper" in v["caption"].lower()
    }
    sel = resolve_keywords("demo", Selection(keywords='"grace hopper"'))
    assert set(sel.keyword_ids) == hopper and browse.count(con, sel) == len(hopper)
    narrower = resolve_keywords("demo", Selection(keywords='"grace hopper"', text="portrait"))
    assert browse.count(con, narrower) == sum(
        1 for i in hopper if "portrait" in browse.row(con, i)["caption"].lower()
    )
    with pytest.raises(Exception, match="not resolved"):
        browse.count(con, Selection(keywords="hopper"))
    # a Search within a keyword filter only returns matching rows
    hits = s.text("an old portrait", k=5, sel=Selection(keywords='"grace hopper"')).hits
    assert hits and {h["row_id"] for h in hits} <= hopper


def test_hybrid_fuses_keyword_and_meaning_ranks(searcher):
    s, truth, keys = searcher
    both = s.hybrid("grace hopper portrait", k=6)
    kw = [h["row_id"] for h in s.keywords("grace hopper portrait", k=12).hits]
    sem = [h["row_id"] for h in s.text("grace hopper portrait", k=12).hits]
    got = [h["row_id"] for h in both.hits]
    assert len(got) == 6 and set(got) <= set(kw) | set(sem)
    top = got[0]
    assert top in kw and top in sem  # found by both lists, so it ranks first
    scores = [h["score"] for h in both.hits]
    assert scores == sorted(scores, reverse=True) and "rank fusion" in both.space
