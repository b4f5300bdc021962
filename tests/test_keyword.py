"""Keyword index: BM25 ranking, query syntax, filters, hostile input, atomic builds."""

from __future__ import annotations

import random
import re
import string
from pathlib import Path

import duckdb
import numpy as np
import pytest

from backend import keyword as kw
from backend import keyword_build, keyword_errors, keyword_schema, rank_fusion

FILLER = (
    "apple banana river mountain guitar window bicycle lantern pepper violin harbor meadow "
    "candle tiger pillow rocket marble jacket forest silver"
).split()
KNOWN = {
    "zebra_strong": "zebra zebra grazing",
    "zebra_weak": "a zebra and many other animals standing together near water at sunset",
    "phrase_1": "a red car parked outside",
    "phrase_2": "the red car",
    "not_phrase_1": "car red paint",
    "not_phrase_2": "red sports car",
    "coffee_1": "a cup of coffee",
    "coffee_2": "coffees on a table",
    "coffee_3": "coffeehouse interior",
    "toffee": "toffee cake",
    "cats": "two cats sleeping",
    "cat": "a cat on a sofa",
    "empty": "",
    "null": None,
}


def make_captions(seed: int = 0) -> list[str | None]:
    """KNOWN captions, 120 dog captions, then filler, in a fixed order (row_id = index)."""
    rng = random.Random(seed)
    caps: list[str | None] = list(KNOWN.values())
    caps += ["a dog " + " ".join(rng.choices(FILLER, k=i % 7)) for i in range(120)]
    caps += [" ".join(rng.choices(FILLER, k=rng.randint(3, 8))) for _ in range(250)]
    return caps


def row_of(name: str) -> int:
    return list(KNOWN).index(name)


def write_store(path: Path, captions: list[str | None]) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE samples (row_id BIGINT, caption VARCHAR, extra INTEGER)")
    con.executemany(
        "INSERT INTO samples VALUES (?, ?, 0)", [(i, c) for i, c in enumerate(captions)]
    )
    return con


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory):
    base = tmp_path_factory.mktemp("kw")
    captions = make_captions()
    write_store(base / "store.duckdb", captions).close()
    con = duckdb.connect(str(base / "store.duckdb"), read_only=True)
    out = base / "ds" / "keyword"
    seen: list[tuple[int, int]] = []
    stats = keyword_build.build_index(
        con, out, progress=lambda d, t: seen.append((d, t)), chunk_rows=64
    )
    yield con, out, stats, seen, captions
    con.close()


@pytest.fixture(scope="module")
def ix(built) -> kw.KeywordIndex:
    return kw.KeywordIndex.open(built[1])


def ids(hits: list[tuple[int, float]]) -> list[int]:
    return [r for r, _ in hits]


def test_build_stats_and_layout(built):
    _con, out, stats, seen, captions = built
    assert stats["docs"] == len(captions)
    assert stats["size_bytes"] > 0 and stats["seconds"] >= 0
    assert out.is_symlink() and (out / "meta.json").is_file() and (out / "tantivy").is_dir()
    assert seen[-1] == (len(captions), len(captions)) and len(seen) == -(-len(captions) // 64)
    assert not list(out.parent.glob(".keyword.tmp-*"))


def test_bm25_prefers_repeated_word_in_short_caption(ix):
    hits = ids(ix.search("zebra", k=5))
    assert hits[:2] == [row_of("zebra_strong"), row_of("zebra_weak")]


def test_phrase_matches_only_exact_phrase(ix, built):
    captions = built[4]
    want = {i for i, c in enumerate(captions) if c and re.search(r"\bred car\b", c)}
    assert want == {row_of("phrase_1"), row_of("phrase_2")}
    assert set(ids(ix.search('"red car"', k=50))) == want
    assert ix.count('"red car"') == 2
    # Unquoted, the same words match all four red/car captions.
    assert {row_of("not_phrase_1"), row_of("not_phrase_2")} <= set(ids(ix.search("red car")))


def test_prefix(ix):
    coffee = {row_of("coffee_1"), row_of("coffee_2"), row_of("coffee_3")}
    assert set(ids(ix.search("coff*"))) == coffee
    assert set(ids(ix.search("COFFEE*"))) == coffee  # stemmed "coffe" is tried too
    assert ix.count("coff*") == 3
    assert set(ids(ix.search('"a cup of co"*'))) == {row_of("coffee_1")}
    with pytest.raises(keyword_errors.KeywordQueryError, match="at least 2 letters"):
        ix.search("c*")


def test_stemming_both_ways(ix):
    assert ix.meta["tokenizer"] == "en_stem"
    both = {row_of("cat"), row_of("cats")}
    assert set(ids(ix.search("cat"))) == both
    assert set(ids(ix.search("Cats"))) == both


def test_operators(ix):
    assert ids(ix.search("+zebra +grazing")) == [row_of("zebra_strong")]
    assert ids(ix.search("zebra AND grazing")) == [row_of("zebra_strong")]
    assert ids(ix.search("zebra -grazing")) == [row_of("zebra_weak")]
    assert ids(ix.search("zebra NOT grazing")) == [row_of("zebra_weak")]
    n = ix.num_docs
    assert ix.count("-zebra") == n - 2 and ix.count("NOT zebra") == n - 2
    assert ix.describe('+Cats "Red car" coff* NOT tea') == '+cats "red car" coff* -tea'


def test_count_matches_duckdb_word_regex(ix, built):
    con, _out, _stats, _seen, captions = built
    words = {w for c in captions if c for w in re.findall(r"[a-z]+", c.lower())}
    stem = keyword_schema._analyzer("en_stem", stem=True)
    stems: dict[str, set[str]] = {}
    for w in words:
        stems.setdefault(stem.analyze(w)[0], set()).add(w)
    unique = sorted(w for w in words if len(stems[stem.analyze(w)[0]]) == 1)
    assert len(unique) > 30 and "dog" in unique and "apple" in unique
    for w in unique:
        (expected,) = con.execute(
            "SELECT count(*) FROM samples WHERE regexp_matches(caption, ?, 'i')", [rf"\b{w}\b"]
        ).fetchone()
        assert ix.count(w) == expected, w


def _brute(ix: kw.KeywordIndex, query: str, allowed: np.ndarray) -> dict[int, float]:
    full = ix.search(query, k=ix.num_docs)
    keep = set(allowed.tolist())
    return {r: s for r, s in full if r in keep}


FORCE = {  # cost constants that make _plan pick each path on this tiny index
    "termset": {"ROUND_NS": 10**9, "RANGE_NS": 10**9},
    "rounds": {"TERMSET_NS": 10**9, "RANGE_NS": 10**9},
    # first rounds (16 hits ~ 16 us), then a term set (~300 ids x 100 ns) beats a 64-hit round
    "rounds_then_termset": {
        "ROUND_NS": 1000,
        "TERMSET_NS": 100,
        "RANGE_NS": 10**9,
        "ROUND_MAX": 16,
    },
    "range": {"ROUND_NS": 10**9, "TERMSET_NS": 10**9},
}


@pytest.mark.parametrize("path", list(FORCE))
@pytest.mark.parametrize("layout", ["scattered", "runs"])
def test_allowed_restricts_and_still_returns_k(ix, path, layout, monkeypatch):
    dogs = ix.search("dog", k=1000)
    assert len(dogs) == 120
    dog_ids = np.array(sorted(ids(dogs)))
    if layout == "runs":  # dog rows 40-99 and the filler rows after them: two runs
        others = np.arange(len(KNOWN) + 120, ix.num_docs, dtype=np.int64)
        allowed = np.concatenate([np.arange(dog_ids[40], dog_ids[100]), others])
    else:
        others = np.arange(len(KNOWN) + 120, ix.num_docs, dtype=np.int64)
        allowed = np.sort(np.concatenate([dog_ids[3::7], others]))  # 17 mid-ranked dogs
    for name, value in FORCE[path].items():
        monkeypatch.setattr(kw, name, value)
    plans: list[str] = []
    termsets: list[str] = []
    real_plan, real_in_index = kw._plan, kw.KeywordIndex._in_index
    monkeypatch.setattr(kw, "_plan", lambda *a: plans.append(real_plan(*a)[0]) or real_plan(*a))
    monkeypatch.setattr(
        kw.KeywordIndex,
        "_in_index",
        lambda self, q, plan, *a: termsets.append(plan) or real_in_index(self, q, plan, *a),
    )
    k = 15
    hits = ix.search("dog", k=k, allowed=allowed)
    assert plans == [path.split("_")[0]]
    filters = {"termset": [["termset"]], "range": [["range"]], "rounds": [[]]}.get(path)
    if path == "rounds_then_termset":  # the 16 best dogs hold few of the allowed ones
        filters = [["termset"]] if layout == "scattered" else [[], ["termset"]]
    assert termsets in filters
    brute = _brute(ix, "dog", allowed)
    assert len(brute) >= k and len(hits) == k
    assert all(brute[r] == s for r, s in hits)  # allowed rows, unfiltered BM25 scores
    assert [s for _, s in hits] == sorted(brute.values(), reverse=True)[:k]
    # Fewer allowed matches than k: all of them.
    few = ix.search("dog", k=k, allowed=dog_ids[:3][::-1].copy())  # unsorted input is fine
    assert sorted(ids(few)) == dog_ids[:3].tolist()


def test_plan_picks_cheapest():
    n = 10_000_000
    assert kw._plan(n, 1_000_000, 900_000, 50)[0] == "rounds"  # dense scattered
    assert kw._plan(n, 500, 500, 50)[0] == "termset"  # sparse scattered
    assert kw._plan(n, 2_000, 1, 50)[0] == "range"  # one small contiguous block
    assert kw._plan(n, 2_000_000, 2, 50)[0] == "rounds"  # dense: over-fetch beats a scan
    assert kw._plan(n, 200_000, 200_000, 50)[0] == "rounds"  # over TERMSET_MAX
    # Equal scores (prefix, exclusion) come back in row order: don't bet on over-fetching
    # when the filter is a block that may sit behind millions of tied hits.
    assert kw._plan(n, 500_000, 1, 50)[0] == "rounds"
    assert kw._plan(n, 500_000, 1, 50, constant=True)[0] == "range"
    assert kw._plan(n, 1_000_000, 900_000, 50, constant=True)[0] == "rounds"


def test_constant_score_query_with_late_block_filter(ix):
    late = np.arange(ix.num_docs - 50, ix.num_docs, dtype=np.int64)  # filler rows only
    hits = ix.search("-dog", k=10, allowed=late)
    assert len(hits) == 10 and set(ids(hits)) <= set(late.tolist())


def test_allowed_edge_cases(ix):
    assert ix.search("dog", allowed=np.array([], dtype=np.int64)) == []
    assert ix.search("dog", allowed=np.array([row_of("cat")])) == []
    assert ix.search("dog", k=0) == []
    everything = np.arange(ix.num_docs, dtype=np.int64)
    assert ix.search("dog", k=7, allowed=everything) == ix.search("dog", k=7)


HOSTILE = [
    '"unbalanced',
    'red "car',
    '"',
    '""',
    "'; DROP TABLE samples; --",
    "cat; --",
    "-- comment",
    "/* comment */ cat",
    "AND",
    "OR",
    "NOT",
    "AND OR NOT",
    "cat AND",
    "NOT NOT cat",
    "caption:cat",
    "row_id:1",
    ":",
    "caption:",
    ":cat",
    "a:b:c",
    "x" * 100_000,
    "cat " * 400,
    "",
    "   \t\n ",
    "*",
    "**",
    "c*t",
    "cat^2",
    "cat~2",
    "[1 TO 5]",
    "row_id:[0 TO 9]",
    "{",
    "(cat",
    "cat)",
    "\\",
    "\x00",
    "\U0001f431 cat",
    "+",
    "-",
    "+-+-",
    "/.*/",
    "IN [a b]",
    "caption: IN [cat]",
    "a" * 200,
    "a" * 200 + "*",
    '"' + " ".join(["word"] * 40) + '"',
    "ß*",
    "%",
    "_",
    "' OR 1=1 --",
    None,
    42,
]


@pytest.mark.parametrize("query", HOSTILE, ids=lambda q: repr(q)[:30])
def test_hostile_input_never_crashes(ix, query):
    for call in (lambda: ix.search(query, k=5), lambda: ix.count(query)):
        try:
            result = call()
        except keyword_errors.KeywordQueryError as e:
            msg = str(e)
            assert msg and "Error" not in msg and "\n" not in msg and len(msg) < 300
        else:
            assert isinstance(result, int | list)


def test_random_junk_only_raises_query_error(ix):
    rng = random.Random(1)
    alphabet = string.ascii_letters + string.digits + string.punctuation + " \t\"'*:+-~^()[]{}"
    for _ in range(400):
        q = "".join(rng.choices(alphabet, k=rng.randint(0, 40)))
        try:
            ix.search(q, k=3)
            ix.count(q)
        except keyword_errors.KeywordQueryError:
            pass


def test_missing_and_corrupt_index(tmp_path):
    with pytest.raises(keyword_errors.KeywordIndexMissing, match=r"python -m backend index nope"):
        kw.KeywordIndex.open(tmp_path / "nope" / "keyword")
    con = write_store(tmp_path / "s.duckdb", ["a cat", "a dog"])
    out = tmp_path / "bad" / "keyword"
    keyword_build.build_index(con, out)
    (out / "tantivy" / "meta.json").write_text("{ not json")
    with pytest.raises(keyword_errors.KeywordIndexMissing, match=r"python -m backend index bad"):
        kw.KeywordIndex.open(out)
    out2 = tmp_path / "old" / "keyword"
    keyword_build.build_index(con, out2)
    for junk in ('{"format": 0}', "[]", "not json"):
        (out2 / "meta.json").write_text(junk)
        missing = keyword_errors.KeywordIndexMissing
        with pytest.raises(missing, match=r"python -m backend index old"):
            kw.KeywordIndex.open(out2)


def test_failed_build_leaves_previous_index(tmp_path):
    captions = make_captions()
    con = write_store(tmp_path / "s.duckdb", captions)
    out = tmp_path / "ds" / "keyword"
    keyword_build.build_index(con, out, chunk_rows=50)
    before_target = out.resolve()
    ix = kw.KeywordIndex.open(out)
    before = ix.search("zebra")
    new_row = len(captions)
    con.execute("INSERT INTO samples VALUES (?, 'zebra zebra zebra', 0)", [new_row])

    def boom(done: int, total: int) -> None:
        if done > 100:
            raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError, match="disk on fire"):
        keyword_build.build_index(con, out, progress=boom, chunk_rows=50)
    assert out.resolve() == before_target
    assert {p.name for p in out.parent.iterdir()} == {"keyword", before_target.name}
    kw._CACHE.clear()  # a fresh reader, not the cached object
    assert kw.KeywordIndex.open(out).search("zebra") == before
    # A build that succeeds swaps in, and readers see it on their next open().
    stats = keyword_build.build_index(con, out, chunk_rows=50)
    assert stats["docs"] == len(captions) + 1
    fresh = kw.KeywordIndex.open(out)
    assert fresh is not ix and fresh.search("zebra", k=1)[0][0] == new_row
    assert not before_target.exists()
    assert ix.search("zebra") == before  # an old reader keeps working on its open files


def test_cache_returns_same_object(built):
    a = kw.KeywordIndex.open(built[1])
    assert kw.KeywordIndex.open(built[1]) is a


def test_built_from_ingested_dataset(workspace, photo_folder):
    from backend.ingest import build

    build("photos", photo_folder, workers=1)
    stats = keyword_build.build_dataset("photos")
    assert stats["docs"] == 8
    ix = kw.KeywordIndex.open(kw.index_dir("photos"))
    from backend.store import connect

    con = connect("photos")
    (row,) = ids(ix.search("tabby cats", k=1))
    (caption,) = con.execute("SELECT caption FROM samples WHERE row_id = ?", [row]).fetchone()
    assert caption == "a tabby cat looking at the camera"
    # Rebuilt while the app holds the store open (other DuckDB settings in this process).
    assert keyword_build.build_dataset("photos")["docs"] == 8
    con.close()


def test_hybrid_rrf():
    keyword_hits = [(1, 9.0), (2, 5.0), (3, 1.0)]
    semantic_hits = [(3, 0.9), (4, 0.8), (1, 0.7), (3, 0.1)]  # a duplicate counts once
    fused = rank_fusion.hybrid(keyword_hits, semantic_hits, k=3)
    assert [r for r, _ in fused] == [1, 3, 2]
    assert fused[0][1] == pytest.approx(1 / 61 + 1 / 63)
    assert rank_fusion.hybrid([], [], k=5) == [] and rank_fusion.hybrid(keyword_hits, [], k=0) == []


def test_ties_at_the_cut_are_broken_by_row_id_whatever_the_segments(tmp_path):
    """40 identical captions committed as 5 segments: every hit scores the same, and tantivy
    orders ties by segment (segments differ between builds); the k best must still be the
    k lowest row ids, with and without an ``allowed`` filter."""
    write_store(tmp_path / "store.duckdb", ["a red kite over the sea"] * 40).close()
    con = duckdb.connect(str(tmp_path / "store.duckdb"), read_only=True)
    out = tmp_path / "ds" / "keyword"
    keyword_build.build_index(con, out, chunk_rows=8, commit_rows=8)
    con.close()
    ix = kw.KeywordIndex.open(out)
    assert len({s for _, s in ix.search("kite", k=40)}) == 1  # all tied
    assert ids(ix.search("kite", k=5)) == [0, 1, 2, 3, 4]
    allowed = np.arange(10, 40, dtype=np.int64)
    assert ids(ix.search("kite", k=3, allowed=allowed)) == [10, 11, 12]
