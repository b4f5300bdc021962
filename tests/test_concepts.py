"""Concept frequency on the demo (exact counts against the generator's ground truth), the
power-law slope, MetaCLIP balancing against exact expectations, and bad vocabularies."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from conftest import copy_demo, open_page

from backend.concepts import (
    VocabError,
    analyse,
    balance,
    coverage,
    expected_counts,
    fit_slope,
    load,
    parse,
    rows_with,
    save_balanced,
    selection_for,
    shares,
)  # fmt: skip
from backend.concepts.match import match_captions, matcher
from backend.concepts.vocab import build, imagenet, mine
from backend.demo.concepts import SHAPES, ZIPF_EXPONENT, concept_pattern, vocabulary
from backend.store import connect


@pytest.fixture(scope="module")
def home(demo_pristine: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private copy of the ingested demo (result sets and subsets are written into it)."""
    root = tmp_path_factory.mktemp("concepts_ws")
    copy_demo(demo_pristine, root)
    return root


@pytest.fixture(scope="module")
def demo_vocab():
    words = [w for group in vocabulary().values() for w in group]
    return build("demo", [(w, []) for w in words])


@pytest.fixture(scope="module")
def result(home: Path, demo_vocab):
    analyse("demo", demo_vocab, home)
    return load("demo", "demo", home)


def _store_rows(home: Path) -> list[tuple[int, str, str]]:
    con = connect("demo", home)
    try:
        return con.execute("SELECT row_id, key, caption FROM samples ORDER BY row_id").fetchall()
    finally:
        con.close()


def test_caption_counts_equal_ground_truth(home: Path, result) -> None:
    truth = json.loads((home / "demo" / "source" / "ground_truth.json").read_text())
    rows = _store_rows(home)
    assert len(rows) < truth["items_total"]  # ingest rejected some: those are not counted
    expected = Counter(c for _, key, _ in rows for c in truth["samples"][key]["concepts"])
    got = result.count_of()
    assert set(got) == set(expected) | set(got)
    assert {c: got[c] for c in got} == {c: expected.get(c, 0) for c in got}
    assert sum(got.values()) == len(result.rows) == result.summary["hits"]


def test_rows_with_a_concept_and_selection(home: Path, result) -> None:
    from backend.subsets import select_ids

    want = [r for r, _, cap in _store_rows(home) if concept_pattern("hexagon").search(cap)]
    assert want and rows_with(result, ["hexagon"]).tolist() == want
    sel = selection_for(result, ["hexagon"])
    assert select_ids("demo", sel, home).tolist() == want
    with pytest.raises(ValueError, match="not a concept"):
        rows_with(result, ["dodecahedron"])


def test_slope_matches_generator(result) -> None:
    """The demo's shapes follow Zipf with ZIPF_EXPONENT; the 600-row demo is enough to fit it
    (12 ranks, counts 188 … 12)."""
    got = result.count_of()
    fit = fit_slope(np.array([got[s] for s in SHAPES]))
    assert fit["ranks_fitted"] == len(SHAPES)
    assert abs(fit["slope"] - ZIPF_EXPONENT) < 0.1


def test_slope_on_exact_power_law_and_shares() -> None:
    counts = np.round(10_000 * np.arange(1, 201) ** -1.3).astype(int)
    fit = fit_slope(counts, min_count=5)
    assert abs(fit["slope"] - 1.3) < 0.02 and fit["ranks_fitted"] == int((counts >= 5).sum())
    assert fit_slope(np.array([9, 1, 0]))["slope"] is None
    sh = shares(np.array([50, 20, 10, 5, 5, 4, 3, 2, 1, 0]))
    assert [sh[p]["concepts"] for p in ("head", "torso", "tail")] == [1, 4, 5]
    assert [sh[p]["hits"] for p in ("head", "torso", "tail")] == [50, 40, 10]
    assert sh["unseen"] == 1


def test_cli_json_top(home: Path, monkeypatch, capsys) -> None:
    from backend.cli import main

    vocab = home / "shapes.tsv"
    vocab.write_text("circle\tring\nsquare\nstar\n")
    monkeypatch.setenv("TAILSCOPE_HOME", str(home))
    assert main(["concepts", "demo", "--vocab", str(vocab), "--top", "2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    counts = {r["concept"]: r["caption_count"] for r in out["counts"]}
    caps = [cap for _, _, cap in _store_rows(home)]
    circle = sum(bool(concept_pattern("circle").search(c) or concept_pattern("ring").search(c))
                 for c in caps)  # fmt: skip
    square = sum(bool(concept_pattern("square").search(c)) for c in caps)
    assert counts == {"circle": circle, "square": square}
    assert out["summary"]["vocab"] == "shapes"
    assert main(["concepts", "demo", "--vocab", str(home / "missing.txt")]) == 2


def test_mined_vocabulary(home: Path) -> None:
    caps = [cap for _, _, cap in _store_rows(home)]
    v = mine(caps, top=50)
    assert len(v) == 50 and "circle" in v.concepts and "the" not in v.concepts
    with pytest.raises(VocabError):
        mine(["unique words only"], top=5)


# --- balancing -----------------------------------------------------------------------------


def _small_case():
    """Entry 0: 10 rows alone. Entry 1: 4 rows alone. Entry 2: 6 rows, 3 of them shared with
    entry 0 (rows 0-2). Row 99 matches nothing (not in the hits: it is always dropped)."""
    rows = list(range(10)) + [20, 21, 22, 23] + [0, 1, 2, 30, 31, 32]
    ids = [0] * 10 + [1] * 4 + [2] * 6
    rows, ids = np.array(rows), np.array(ids)
    counts = np.bincount(ids)
    return rows, ids, counts


def test_balance_expectation_exact() -> None:
    rows, ids, counts = _small_case()
    t = 5
    exp = expected_counts(rows, ids, counts, t)["entry"]
    # entry 1 (count 4 ≤ t): every row kept; entry 0's own rows 3-9 keep with p=1/2, its rows
    # 0-2 are also entry 2's (p=5/6 < 1): kept with 1 - (1/2)(1/6) = 11/12
    assert exp[1] == pytest.approx(4)
    assert exp[0] == pytest.approx(7 * 0.5 + 3 * 11 / 12)
    assert exp[2] == pytest.approx(3 * 11 / 12 + 3 * 5 / 6)
    # every row matching one entry only: each entry's expectation is exactly min(count, t)
    s_ids = np.array([0] * 12 + [1] * 5 + [2] * 2 + [3] * 40)
    s_rows = np.arange(len(s_ids)) * 3
    s_counts = np.bincount(s_ids)
    for t_ in (1, 2, 5, 12, 39):
        single = expected_counts(s_rows, s_ids, s_counts, t_)["entry"]
        np.testing.assert_allclose(single, np.minimum(s_counts, t_))
    assert exp[0] >= min(counts[0], t) and exp[2] >= min(counts[2], t)
    # the sampler agrees with the exact expectation
    kept = [balance(rows, ids, counts, t, seed=s) for s in range(4000)]
    mean0 = np.mean([np.isin(k, rows[ids == 0]).sum() for k in kept])
    mean2 = np.mean([np.isin(k, rows[ids == 2]).sum() for k in kept])
    assert mean0 == pytest.approx(exp[0], abs=0.1) and mean2 == pytest.approx(exp[2], abs=0.1)
    assert not any(99 in k for k in kept)


def test_balance_seeded_and_order_free() -> None:
    rows, ids, counts = _small_case()
    a = balance(rows, ids, counts, 3, seed=7)
    perm = np.random.default_rng(0).permutation(len(rows))
    assert a.tolist() == balance(rows[perm], ids[perm], counts, 3, seed=7).tolist()
    assert any(balance(rows, ids, counts, 3, seed=s).tolist() != a.tolist() for s in range(5))
    assert balance(rows, ids, counts, 100, seed=1).tolist() == sorted(set(rows.tolist()))
    with pytest.raises(ValueError):
        balance(rows, ids, counts, 0)


def test_save_balanced_subset(home: Path, result) -> None:
    from backend.subsets import get

    sub = save_balanced("demo", result, t=20, seed=3, subset="balanced-20", root=home)
    want = balance(result.rows, result.ids, result.counts["caption_count"].to_numpy(), 20, 3)
    assert get("demo", "balanced-20", home).row_ids.tolist() == want.tolist() == \
        sub.row_ids.tolist()
    head = rows_with(result, ["circle"])
    assert np.isin(want, head).sum() < len(head)  # the head lost rows


# --- bad input -----------------------------------------------------------------------------


def test_empty_vocabulary() -> None:
    for data in (b"", b"\n\n  \n# a comment\n", b"[]", b" \t \n", b"{}"):
        with pytest.raises(VocabError, match="empty"):
            parse("v", data)


def test_duplicates_merged() -> None:
    v = parse("v", b"Cat\tkitty\ncat\tfeline\nCAT\ndog\n")
    assert v.concepts == ["Cat", "dog"] and v.phrasings[0] == ["Cat", "kitty", "feline"]
    assert any("2 duplicate" in n for n in v.notes)
    idx, cids = match_captions(matcher(v), ["a cat and a kitty", "a feline", "dogs"])
    assert list(zip(idx.tolist(), cids.tolist(), strict=True)) == [(0, 0), (1, 0), (2, 1)]


def test_regex_special_and_substrings() -> None:
    v = parse("v", b"c++\na.b\n(x)\ncat\ncat food\n[a-z]*\n")
    m = matcher(v)
    caps = ["I write C++ daily", "c code", "a.b but not axb", "see (x) here", "x alone",
            "Cat food for cats!", "concatenate", "[a-z]* literally", "abc"]  # fmt: skip
    idx, cids = match_captions(m, caps)
    hits = {(caps[i], v.concepts[c]) for i, c in zip(idx, cids, strict=True)}
    assert hits == {("I write C++ daily", "c++"), ("a.b but not axb", "a.b"),
                    ("see (x) here", "(x)"), ("Cat food for cats!", "cat"),
                    ("Cat food for cats!", "cat food"), ("[a-z]* literally", "[a-z]*")}
    # plural folding is an option
    idx2, _ = match_captions(matcher(parse("v", b"cat\n"), plurals=False), ["cats", "cat"])
    assert idx2.tolist() == [1]


def test_non_utf8_files() -> None:
    v = parse("v", "café\tcrème brûlée\n".encode("cp1252"))
    assert v.concepts == ["café"] and v.phrasings[0][1] == "crème brûlée"
    assert "not UTF-8" in v.notes[0]
    with pytest.raises(VocabError, match="UTF-8"):
        parse("v", b"caf\x81\x8d\xff\n")
    bom = parse("v", "\ufeffzebra\n".encode())
    assert bom.concepts == ["zebra"] and not bom.notes


def test_metadata_json_and_csv() -> None:
    v = parse("v", json.dumps(["Zebra", "giant panda", "zebra", 3 * " "]).encode())
    assert v.concepts == ["Zebra", "giant panda"]
    with pytest.raises(VocabError, match="entry must be a string"):
        parse("v", b'["a", 3]')
    c = parse("v", b"concept,synonyms\nzebra,zebras;equid\nlion,big cat\n")
    assert c.concepts[1:] == ["zebra", "lion"] and c.phrasings[1] == ["zebra", "zebras", "equid"]


def test_imagenet_vocabulary() -> None:
    v = imagenet()
    assert len(v.imagenet_class) == 1000 and len(v) == 998  # two names appear twice
    kite = v.imagenet_class[21]
    assert v.concepts[kite] == "kite (bird of prey)" and v.phrasings[kite] == ["kite"]
    idx, cids = match_captions(matcher(v), ["a kite on a beach", "a tabby cat", "a handrail"])
    named = {(int(i), v.concepts[c]) for i, c in zip(idx, cids, strict=True)}
    assert {(0, "kite (bird of prey)"), (1, "tabby cat"), (2, "baluster / handrail")} <= named


def test_coverage() -> None:
    rows = coverage({"cat": 0, "dog": 3, "zebra": 40}, ["Zebra", "dog", "cat", "okapi", "dog"], 10)
    assert [(r["class"], r["count"], r["status"]) for r in rows] == [
        ("okapi", None, "not in vocabulary"), ("cat", 0, "absent"), ("dog", 3, "rare"),
        ("Zebra", 40, "covered"),
    ]  # fmt: skip


@pytest.mark.slow
def test_half_million_entries() -> None:
    words = [f"w{i}x" for i in range(500_000)]
    v = parse("big", "\n".join(words).encode())
    m = matcher(v)
    idx, cids = match_captions(m, ["w7x and w499999x", "w500000x", "W42X"])
    assert list(zip(idx.tolist(), cids.tolist(), strict=True)) == [(0, 7), (0, 499_999), (2, 42)]


def test_image_side_without_clip(workspace: Path, photo_folder: Path) -> None:
    """No CLIP vectors: the packaged ImageNet model tags the images. Eight real photos (not the
    600-row demo: the model is the cost, ~20 ms an image, and what is checked needs no more)."""
    from backend.ingest import build as ingest

    ingest("photos", photo_folder, root=workspace, workers=1)
    s = analyse("photos", imagenet(), workspace, images=True, top_k=3)
    assert "CLIP zero-shot skipped" in s["image_note"] and "ImageNet classes" in s["image_note"]
    r = load("photos", "imagenet", workspace)
    assert s["image_rows"] == s["rows"] == 8
    counts = r.counts.to_pandas().set_index("concept")
    assert counts["image_count"].sum() == 3 * 8  # three classes per image, none shared here
    # the captions name two ImageNet classes ("a tabby cat ...", "... a camera on a tripod")
    # and the model sees both in their photos: two rows named, none misaligned
    assert counts.loc[["tabby cat", "tripod"], "caption_count"].tolist() == [1, 1]
    assert counts.loc[["tabby cat", "tripod"], "image_count"].tolist() == [1, 1]
    assert (s["misalignment"]["rows_named"], s["misalignment"]["rows_misaligned"]) == (2, 0)
    assert counts.loc["espresso", "image_count"] == 1  # the cup of coffee


# --- the Concepts page (AppTest) -------------------------------------------------------------

PAGE = "pages/4_Concepts.py"


@pytest.fixture
def page_ws(demo_pristine: Path, workspace: Path) -> Path:
    copy_demo(demo_pristine, workspace)
    return workspace


def _open(ws: Path):
    return open_page(PAGE, timeout=60)


def test_page_counts_drills_and_balances(page_ws: Path, demo_vocab) -> None:
    from backend.subsets import get, resolve, select_ids
    from ui import state

    analyse("demo", demo_vocab, page_ws)
    res = load("demo", "demo", page_ws)
    at = _open(page_ws)
    got = {m.label: m.value for m in at.metric}
    assert got["Concepts"] == "29"
    assert got["Power-law slope"] == f"{res.summary['caption_slope']['slope']:.2f}"
    at.text_input(key="w.concepts.q").set_value("hexagon").run()
    assert not at.exception
    n = len(rows_with(res, ["hexagon"]))
    assert any(f"{n} rows name it" in m.value for m in at.markdown)
    at.button(key="w.concepts.filter").click().run()
    sel = at.session_state[state.SELECTIONS]["demo"]
    assert sel.row_ids is None and sel.concepts == {"demo": ["hexagon"]}  # a join, not ids
    assert "caption names “hexagon” (demo)" in sel.describe()
    assert select_ids("demo", resolve("demo", sel, page_ws), page_ws).tolist() == rows_with(
        res, ["hexagon"]).tolist()  # fmt: skip
    at.slider(key="w.concepts.t").set_value(20).run()
    at.text_input(key="w.concepts.sub").set_value("bal20").run()
    at.button(key="w.concepts.save").click().run()
    assert not at.exception, [e.value for e in at.exception]
    want = balance(res.rows, res.ids, res.counts["caption_count"].to_numpy(), 20, 0)
    assert get("demo", "bal20", page_ws).row_ids.tolist() == want.tolist()
    assert any("Saved subset" in s.value for s in at.success)


def test_page_runs_a_vocabulary(page_ws: Path) -> None:
    at = _open(page_ws)
    assert any("No concept counts yet" in m.value for m in at.markdown)
    at.radio(key="w.concepts.kind").set_value("Mined from captions").run()
    at.button(key="w.concepts.run").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert load("demo", "mined", page_ws).summary["concepts"] > 10
    assert at.selectbox(key="w.concepts.vocab").value == "mined"
