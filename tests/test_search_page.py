"""The Search page, driven headless through AppTest on the embedded and indexed demo dataset.

Known rows in, known rows out: the demo's ground truth says which captions name Grace Hopper
and which rows are re-encodes, crops or brightened copies of a real photo.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from conftest import count_text, open_page, run_ok, thumbs
from streamlit.testing.v1 import AppTest

from backend.ingest import build
from backend.store import connect

SEARCH = "pages/2_Search.py"
BROWSE = "pages/1_Browse.py"
TIMEOUT = 120  # the first Meaning query of the process loads MiniLM


@pytest.fixture(scope="module")
def demo(demo_embedded: Path):
    """The session's demo workspace, embedded (packaged models) and indexed, as the active
    workspace of this module (read only); yields (home, ground truth, key → row_id,
    row_id → sha256)."""
    home = demo_embedded
    mp = pytest.MonkeyPatch()
    mp.setenv("TAILSCOPE_HOME", str(home))
    truth = json.loads((home / "demo" / "source" / "ground_truth.json").read_text())
    con = connect("demo")
    try:
        keys = dict(con.execute("SELECT key, row_id FROM samples").fetchall())
        sha = dict(con.execute("SELECT row_id, sha256 FROM samples").fetchall())
    finally:
        con.close()
    yield home, truth, keys, sha
    mp.undo()


def photo_twins(truth: dict, keys: dict, sha: dict, source: str | None = None):
    """(original row id, its twins' row ids) of the first near-duplicate group of a real photo
    (of ``source`` when given): planted variants plus byte-identical copies."""
    for group in truth["near_duplicates"]:
        src = truth["samples"][group["original"]]["source"]
        if src == "synthetic" or (source and src != source):
            continue
        original = keys[group["original"]]
        twins = {keys[k] for k in group["variants"] if k in keys}
        twins |= {i for i, h in sha.items() if h == sha[original] and i != original}
        return original, twins
    pytest.fail("the demo has no near-duplicate group of a real photo")


def search_page() -> AppTest:
    return open_page(SEARCH, timeout=TIMEOUT)


def query(at: AppTest, text: str, mode: str | None = None) -> AppTest:
    if mode:
        at.segmented_control(key="w.search.mode").set_value(mode)
        run_ok(at)
    at.text_input(key="w.search.text").input(text)
    return run_ok(at)


def result_ids(at: AppTest) -> list[int]:
    """Row ids of the result cards, best first."""
    return [int(b.key.split("-", 1)[1]) for b in at.button if str(b.key).startswith("detail-")]


def captions(at: AppTest) -> list[str]:
    cards = [m.value for m in at.markdown if 'class="ts-text"' in m.value]
    return [
        re.sub(r"<[^>]+>", "", c.split('class="ts-cap"', 1)[1].split("</div>")[0]) for c in cards
    ]


def summary(at: AppTest) -> str:
    """The result summary (the shared ``ts-count`` line) as plain text."""
    return count_text(at)


def text(at: AppTest) -> str:
    return "\n".join(m.value for m in at.markdown)


def test_keywords_put_grace_hopper_first(demo) -> None:
    home, truth, keys, sha = demo
    con = connect("demo")
    expected = {
        r[0]
        for r in con.execute(
            "SELECT row_id FROM samples WHERE lower(caption) LIKE '%grace hopper%'"
        ).fetchall()
    }
    con.close()
    assert len(expected) >= 2
    at = query(search_page(), "grace hopper", mode="keywords")
    assert "prefix*" in text(at) and "+must" in text(at)  # the syntax hint
    assert not at.info  # no CLIP banner for keywords
    ids = result_ids(at)
    assert set(ids[: len(expected)]) == expected
    assert all("grace hopper" in c.lower() for c in captions(at)[: len(expected)])
    assert re.match(
        rf"{len(ids)} results? for “grace hopper” from captions \(keywords, BM25\) in \d+ ms",
        summary(at),
    )
    scores = [m.value for m in at.markdown if "ts-score" in m.value]
    assert len(scores) == len(ids) and "#1 " in scores[0]


def test_meaning_finds_captions_by_sense_and_says_clip_is_missing(demo) -> None:
    at = query(search_page(), "a cup of espresso")
    (banner,) = at.info
    assert "Text→image search needs CLIP" in banner.value
    assert "python -m backend embed demo --rebuild --clip-checkpoint PATH" in banner.value
    assert "*Meaning* searches the captions' meaning" in banner.value
    assert "Why no CLIP:** the dataset was embedded with the packaged models" in banner.value
    assert re.match(
        r"24 results for “a cup of espresso” from captions \(semantic text→caption\) in \d+ ms",
        summary(at),
    )
    top = captions(at)[:2]
    assert any("coffee" in c.lower() or "espresso" in c.lower() for c in top), top
    said = [c.value for c in at.caption]  # which vectors and model answered
    assert ":material/neurology: Searched caption vectors of sentence-transformers/all-MiniLM" \
        in " ".join(said) and not any("demo CLIP" in c for c in said)  # fmt: skip
    assert len(result_ids(at)) == 24
    assert thumbs(at) == 24  # a thumbnail on every result card
    at.segmented_control(key="w.search.k").set_value(12)
    run_ok(at)
    assert len(result_ids(at)) == 12


def test_similar_on_a_result_shows_the_photos_twins_first(demo) -> None:
    home, truth, keys, sha = demo
    original, twins = photo_twins(truth, keys, sha)
    con = connect("demo")
    caption = con.execute("SELECT caption FROM samples WHERE row_id = ?", [original]).fetchone()[0]
    con.close()
    at = query(search_page(), f'"{caption}"', mode="keywords")
    assert original in result_ids(at)
    at.button(key=f"similar-{original}").click()
    run_ok(at)
    assert f"Images like row {original}" in text(at)
    assert caption in next(m.value for m in at.markdown if "ts-qtitle" in m.value)
    ids = result_ids(at)
    assert original not in ids and set(ids[: len(twins)]) == twins, (twins, ids[:6])
    assert summary(at).startswith("24 results from images (more like this)")
    # leaving "more like this" goes back to the keyword query
    at.button(key="qhead-clear").click()
    run_ok(at)
    assert "Images like row" not in text(at) and original in result_ids(at)


def test_similar_on_browse_switches_to_search(demo) -> None:
    home, truth, keys, sha = demo
    at = search_page()
    at.switch_page(BROWSE)
    run_ok(at)
    assert "Browse · demo" in text(at)
    first = int(next(b.key for b in at.button if str(b.key).startswith("similar-")).split("-")[1])
    at.button(key=f"similar-{first}").click()
    run_ok(at)
    assert "Search · demo" in text(at) and f"Images like row {first}" in text(at)
    assert len(result_ids(at)) == 24 and first not in result_ids(at)


def test_similar_in_the_detail_dialog(demo) -> None:
    home, truth, keys, sha = demo
    original, twins = photo_twins(truth, keys, sha)
    at = query(search_page(), "grace hopper", mode="keywords")
    rid = result_ids(at)[0]
    at.button(key=f"detail-{rid}").click()
    run_ok(at)
    assert at.button(key="dlg-similar").label == "Similar images"
    at.button(key="dlg-similar").click()
    run_ok(at)
    assert f"Images like row {rid}" in text(at)


def test_filters_apply_to_search_and_show_in_the_bar(demo) -> None:
    at = search_page()
    at.sidebar.multiselect(key="w.f.shards").select("00001.tar")
    run_ok(at)
    query(at, "three red circles")
    con = connect("demo")
    in_shard = con.execute("SELECT count(*) FROM samples WHERE shard = '00001.tar'").fetchone()[0]
    shards = dict(con.execute("SELECT row_id, shard FROM samples").fetchall())
    con.close()
    assert {shards[i] for i in result_ids(at)} == {"00001.tar"}
    assert f"within {in_shard} of" in summary(at)
    assert "shard in 00001.tar" in [b.label for b in at.button]


def test_empty_query_and_no_results_are_friendly(demo) -> None:
    at = search_page()
    assert "Type something to search for" in text(at)
    assert result_ids(at) == []
    query(at, "   ")
    assert "Type something to search for" in text(at)
    query(at, "zzzqqxv", mode="keywords")
    assert "No results" in text(at) and "No caption matches these keywords" in text(at)
    at.segmented_control(key="w.search.mode").set_value("image")
    run_ok(at)
    assert "Upload an image to search" in text(at)


def test_a_non_image_upload_says_why(demo) -> None:
    at = search_page()
    at.segmented_control(key="w.search.mode").set_value("image")
    run_ok(at)
    # AppTest cannot drive the file uploader: put what its callback stores in place
    at.session_state["ts.search.image"] = {
        "name": "page.jpg",
        "data": b"<html>404 not found</html>",
        "preview": None,
    }
    run_ok(at)
    assert "Images like your upload" in text(at)
    (warning,) = at.warning
    assert "not a usable image" in warning.value and "HTML" in warning.value
    assert result_ids(at) == []


def test_missing_index_names_the_command(
    demo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home, *_ = demo
    ws = tmp_path / "ws"
    shutil.copytree(
        home / "demo", ws / "demo", symlinks=True, ignore=shutil.ignore_patterns("index", "keyword")
    )
    monkeypatch.setenv("TAILSCOPE_HOME", str(ws))
    at = query(search_page(), "a cup of espresso")
    assert at.error and "no vector index" in at.error[0].value
    assert "python -m backend index demo" in [c.value for c in at.code]
    assert result_ids(at) == []
    query(at, "grace hopper", mode="keywords")
    assert at.error and "no keyword index" in at.error[0].value
    assert "python -m backend index demo" in [c.value for c in at.code]


def test_without_embeddings_search_says_how_and_cards_have_no_similar(
    workspace: Path, photo_folder: Path
) -> None:
    build("photos", photo_folder, root=workspace, workers=1)
    at = search_page()
    assert "Search needs embeddings" in text(at)
    assert "python -m backend embed photos" in [c.value for c in at.code]
    at.switch_page(BROWSE)
    run_ok(at)
    assert len([b for b in at.button if str(b.key).startswith("detail-")]) == 8
    assert not [b for b in at.button if str(b.key).startswith("similar-")]


def test_browse_keyword_filter_uses_the_full_text_index(demo):
    """Browse's "Caption keywords" box narrows to exactly the rows the index matches."""
    home, truth, keys, _ = demo
    hopper = {k for k, s in truth["samples"].items() if "grace hopper" in s["caption"].lower()}
    at = open_page(BROWSE, timeout=TIMEOUT)
    at.text_input(key="w.f.keywords").input('"grace hopper"')
    run_ok(at)
    html = " ".join(m.value for m in at.markdown)
    assert f"{len(hopper)} of" in re.sub(r"<[^>]+>", "", html)
    assert "grace hopper" in html.lower()
    assert any("keywords" in str(b.label) for b in at.button)  # its removable chip
    at.text_input(key="w.f.keywords").input('"grace hopper" +zzzunknownword')
    run_ok(at)
    assert "No rows match" in " ".join(m.value for m in at.markdown)


def test_both_mode_runs_a_hybrid_search(demo):
    home, truth, keys, _ = demo
    at = query(search_page(), "grace hopper portrait", mode="hybrid")
    text = re.sub(r"<[^>]+>", "", " ".join(m.value for m in at.markdown))
    assert "rank fusion" in text and "Grace Hopper" in text


def test_a_sort_leaves_the_ranking_and_says_so(demo) -> None:
    """A sort set on Browse shows as a chip here too; results stay ranked by the search."""
    plain = result_ids(query(search_page(), "grace hopper", mode="keywords"))
    at = open_page(BROWSE, timeout=TIMEOUT)
    at.selectbox(key="w.sort").set_value("width DESC")
    run_ok(at)
    at.switch_page(SEARCH)
    at = query(run_ok(at), "grace hopper", mode="keywords")
    assert result_ids(at) == plain and plain
    assert "sorted by width ↓" in [b.label for b in at.button]
    assert any("ranked by the search's score" in c.value for c in at.caption)
