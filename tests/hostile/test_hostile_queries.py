"""Bad-input catalogue, queries and pages: hostile text in the Browse caption filter, keyword and
meaning search and the SQL box, and every page with a Selection that matches no row.

Each hostile string has its exact outcome: the caption filter returns exactly the rows a plain
Python reading of it gives (the text is data, never SQL); keyword search answers or refuses with
its stated reason; the SQL box accepts the condition or refuses it with its stated reason.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import copy_demo, run_ok
from streamlit.testing.v1 import AppTest

from backend import browse
from backend.keyword_errors import KeywordQueryError
from backend.search import Searcher, SearchError
from backend.selection import BadSelection, Selection
from backend.sqlguard import UnsafeSQL, check_where
from backend.store import connect

REPO = Path(__file__).resolve().parents[2]
BIG = "x" * 100_000  # a 100 kB paste
PAGES = sorted(p.name for p in (REPO / "pages").glob("*.py"))
NOTHING = Selection(text="zq9-no-caption-has-this")


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory, demo_mapped: Path):
    """A private copy of the session's embedded, indexed and mapped demo (the pages run here
    may write into it): the active workspace of this module. Yields (home, every caption by
    row id)."""
    home = copy_demo(demo_mapped, tmp_path_factory.mktemp("hostile_pages"))
    mp = pytest.MonkeyPatch()
    mp.setenv("TAILSCOPE_HOME", str(home))
    con = connect("demo", home)
    captions = dict(con.execute("SELECT row_id, caption FROM samples").fetchall())
    con.close()
    yield home, captions
    mp.undo()


# --- the Browse caption filter: (text, why it is hostile) ----------------------------------
CAPTION_TEXTS = [
    ("'", "a lone quote"),
    ('"', "a lone double quote"),
    ("'; DROP TABLE samples; --", "SQL injection"),
    ("a; b", "a semicolon"),
    ("-- red", "a line comment"),
    ("/* */ red", "a block comment"),
    ("100%", "a LIKE wildcard %"),
    ("_", "a LIKE wildcard _"),
    ("\\", "a backslash"),
    ("🐈 قطة", "emoji and right-to-left text"),
    ("\x00", "a NUL character"),
    (BIG, "100 kB of text"),
    ("RED", "upper case (the filter ignores case)"),
]


def _has_word(caption: str, word: str) -> bool:
    """The caption filter's rule, written independently: the word stands whole (no letter,
    digit or underscore right before or after it), case-insensitive."""
    import re

    return re.search(r"(?<!\w)" + re.escape(word) + r"(?!\w)", caption.lower()) is not None


@pytest.mark.parametrize("text, why", CAPTION_TEXTS, ids=[w for _, w in CAPTION_TEXTS])
def test_caption_filter_treats_hostile_text_as_words(demo, text: str, why: str) -> None:
    home, captions = demo
    words = text.lower().split()
    want = sorted(i for i, c in captions.items() if all(_has_word(c, w) for w in words))
    con = connect("demo", home)
    try:
        sel = Selection(text=text)
        got = [r["row_id"] for r in browse.page(con, sel, limit=10_000)]
        assert browse.count(con, sel) == len(want)
    finally:
        con.close()
    assert got == want, why
    if text == "RED":
        assert want, "the demo has red things: upper case must still find them"


# --- keyword search: (query, None when it answers, else the refusal's wording) --------------
KEYWORD_QUERIES = [
    ("red", None),
    ("'", "nothing to search for"),
    ('"red circle', None),  # an unbalanced quote is read as a phrase to the end
    ("'; DROP TABLE samples; --", None),
    ("red; blue", None),
    ("/* red */", None),
    ("+red -blue", None),
    ("(((", "nothing to search for"),
    ("🐈 قطة", None),
    (BIG, "keep it under 1,000"),
    ("\x00", "nothing to search for"),
]


@pytest.mark.parametrize(
    "query, refusal", KEYWORD_QUERIES, ids=[q[:30] for q, _ in KEYWORD_QUERIES]
)
def test_keyword_search_answers_or_says_why(demo, query: str, refusal: str | None) -> None:
    home, captions = demo
    s = Searcher("demo", home)
    if refusal is None:
        res = s.keywords(query, k=5)
        assert all(h["row_id"] in captions for h in res.hits)
        assert len(res.hits) <= 5
    else:
        with pytest.raises(KeywordQueryError, match=re.escape(refusal)):
            s.keywords(query, k=5)


@pytest.mark.parametrize("query", ["'", "'; DROP TABLE samples; --", "-- x /* y", BIG, "🐈 قطة"])
def test_meaning_search_takes_any_text(demo, query: str) -> None:
    home, captions = demo
    res = Searcher("demo", home).text(query, k=3)
    assert len(res.hits) == 3 and all(h["row_id"] in captions for h in res.hits)


@pytest.mark.parametrize("query", ["", "   ", "\n\t"])
def test_meaning_search_refuses_blank_text(demo, query: str) -> None:
    with pytest.raises(SearchError, match="type something"):
        Searcher("demo", demo[0]).text(query)


# --- the SQL box: (text, None when accepted, else (error class, the message's wording)) ------
SQL_TEXTS = [
    ("caption = 'it''s'", None),
    ("caption LIKE '%;%' OR caption LIKE '%--%'", None),  # ; and -- inside a string are text
    ("width > 10; DROP TABLE samples", (UnsafeSQL, "remove the ';'")),
    ("width > 10 -- and more", (UnsafeSQL, "comments")),
    ("width > 10 /* hidden */", (UnsafeSQL, "comments")),
    ("caption = 'unterminated", (BadSelection, "SQL syntax error")),
    ("caption = \"no such column\"", (BadSelection, "no column named")),
    ("1=1) UNION SELECT * FROM rejects WHERE (1=1", (UnsafeSQL, "single condition")),
    ("width IN (SELECT width FROM samples)", (UnsafeSQL, "subqueries")),
    ("read_text('/etc/passwd') IS NOT NULL", (UnsafeSQL, "read_text() is not allowed")),
    ("caption = '" + BIG + "'", (BadSelection, "too long")),
    ("'🐈' = caption OR caption = 'قطة'", None),
]


@pytest.mark.parametrize("sql, refusal", SQL_TEXTS, ids=[s[:30] for s, _ in SQL_TEXTS])
def test_sql_box_accepts_or_says_why(demo, sql: str, refusal) -> None:
    home, _ = demo
    con = connect("demo", home)
    try:
        cols = browse.columns(con)
        if refusal is None:
            assert check_where(sql, cols, con) == f"({sql})"
            n = browse.count(con, Selection(sql=sql))
            assert n == con.execute(f"SELECT count(*) FROM samples WHERE {sql}").fetchone()[0]
        else:
            cls, wording = refusal
            with pytest.raises(cls, match=re.escape(wording)):
                check_where(sql, cols, con)
    finally:
        con.close()


# --- pages ----------------------------------------------------------------------------------
def page(name: str, sel: Selection | None = None) -> AppTest:
    at = AppTest.from_file(str(REPO / "pages" / name), default_timeout=120)
    if sel is not None:
        at.session_state["ts.selections"] = {"demo": sel}
    return run_ok(at)


def _text(at: AppTest) -> str:
    parts = [m.value for m in at.markdown] + [c.value for c in at.caption]
    parts += [e.value for kind in ("info", "warning", "success", "error") for e in at.get(kind)]
    return " ".join(str(p) for p in parts)


@pytest.mark.parametrize("name", PAGES)
def test_every_page_with_a_selection_matching_nothing(demo, name: str) -> None:
    """No exception, no error, and a page says so in words: a 0-row count, an empty state, or
    an explicit 'nothing to show'."""
    at = page(name, NOTHING)
    assert not at.error, [e.value for e in at.error]
    text = _text(at)
    assert (
        "<b>0</b>" in text  # the shared count: "0 of N rows match"
        or "ts-empty" in text  # a page's own empty state
        or re.search(r"\bno (rows?|row)\b", text, re.I)
    ), text[:500]


@pytest.mark.parametrize(
    "text", ["'; DROP TABLE samples; --", BIG[:5000], "🐈 قطة"], ids=["sql", "5kB", "rtl"]
)
def test_browse_caption_box_with_hostile_text(demo, text: str) -> None:
    at = page("1_Browse.py")
    at.sidebar.text_input(key="w.f.text").input(text)
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert "<b>0</b>" in _text(at)


@pytest.mark.parametrize(
    "sql, wording",
    [("width > 1; DROP TABLE samples", "remove the ';'"), ("1=1 -- x", "comments"),
     ("caption = '" + "y" * 5000 + "'", "too long")],
    ids=["semicolon", "comment", "5kB"],
)  # fmt: skip
def test_browse_sql_box_shows_the_refusal_and_keeps_all_rows(demo, sql: str, wording) -> None:
    at = page("1_Browse.py")
    at.sidebar.text_area(key="w.f.sql").input(sql)
    at.run()
    assert not at.exception
    assert any(wording in e.value for e in at.error), [e.value for e in at.error]
    assert "<b>0</b>" not in _text(at)  # a refused condition filters nothing


@pytest.mark.parametrize(
    "query", ["'; DROP TABLE samples; --", "x" * 100_000, "/* */"], ids=["sql", "100kB", "comment"]
)
def test_search_page_with_hostile_query(demo, query: str) -> None:
    at = page("2_Search.py")
    at.text_input(key="w.search.text").input(query)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def test_search_page_with_a_selection_matching_nothing_finds_nothing(demo) -> None:
    at = page("2_Search.py", NOTHING)
    at.text_input(key="w.search.text").input("red circle")
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert not at.get("image"), "no result card may be drawn when the filters match no row"


def test_a_parallel_build_after_pages_ran_in_this_process(demo, tmp_path: Path,
                                                          monkeypatch) -> None:  # fmt: skip
    """Streamlit runs page scripts as ``__main__``; neither the build's fork server nor its
    workers may run that script (they did, and died of the Export page, which raises outside
    Streamlit: every later parallel build failed; backend.pool_child)."""
    from backend.ingest import build
    from tests.test_ingest import tar_source

    page("3_Map.py", NOTHING)
    page("9_Export.py", NOTHING)  # the last page run stays ``__main__``
    # the first build of a new workspace: the Export page, run bare there, finds no dataset
    monkeypatch.setenv("TAILSCOPE_HOME", str(tmp_path / "ws"))
    result = build("par", tar_source(tmp_path, shards=2, per_shard=2), root=tmp_path / "ws",
                   workers=2)  # fmt: skip
    assert (result.rows, result.rejects) == (4, 0)
