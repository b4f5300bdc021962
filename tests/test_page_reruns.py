"""No page re-runs a query over all rows on a rerun that did not change the Selection (issue 17).

Every query the app runs for a user goes through :class:`backend.bounded.Bounded` (one bounded
query path), so recording its ``execute`` sees them all. Each page is run twice with the same
Selection: the first run must query ``samples`` (the recorder works), the second must not. A
changed filter must query again and show the new count (the cache hides nothing).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from backend import bounded, synth

REPO = Path(__file__).resolve().parent.parent
PAGES = ("pages/1_Browse.py", "pages/3_Map.py", "pages/4_Concepts.py", "pages/5_Safety.py",
         "pages/6_Impact.py", "pages/7_Mixtures.py")
READS_ROWS = re.compile(r"\bFROM\s+samples\b", re.I)


@pytest.fixture(scope="module")
def synth_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """400 synthetic rows with map, scores and concept hits (backend.synth), built once."""
    home = tmp_path_factory.mktemp("reruns_ws")
    synth.generate("syn", 400, 1, home, seed=5)
    return home


@pytest.fixture
def queries(monkeypatch: pytest.MonkeyPatch, synth_home: Path) -> list[str]:
    monkeypatch.setenv("TAILSCOPE_HOME", str(synth_home))
    seen: list[str] = []
    run = bounded.Bounded.execute

    def recorded(self, query, parameters=None):
        seen.append(" ".join(str(query).split()))
        return run(self, query, parameters)

    monkeypatch.setattr(bounded.Bounded, "execute", recorded)
    from ui import memo

    memo._memo.clear()  # each test's first run starts cold (the cache outlives a test)
    return seen


def _open(page: str) -> AppTest:
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=60)
    at.run()
    at.switch_page(page)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _row_queries(seen: list[str]) -> list[str]:
    return [q for q in seen if READS_ROWS.search(q)]


@pytest.mark.parametrize("page", PAGES)
def test_unchanged_rerun_reads_no_rows(queries: list[str], page: str) -> None:
    at = _open(page)
    first = _row_queries(queries)
    assert first, f"{page}: the first run read no rows, so the recorder saw nothing"
    queries.clear()
    at.run()  # a rerun with the same Selection (what any click that changes nothing does)
    assert not at.exception, [e.value for e in at.exception]
    assert _row_queries(queries) == [], f"{page} re-ran: {_row_queries(queries)}"


def _count(at: AppTest) -> str:
    hit = [m.value for m in at.markdown if 'class="ts-count"' in m.value]
    return re.sub(r"<[^>]+>", "", hit[0])


def test_changed_filter_queries_again(queries: list[str], synth_home: Path) -> None:
    at = _open("pages/1_Browse.py")
    assert _count(at) == "400 rows"
    queries.clear()
    at.text_input(key="w.f.text").set_value("dog").run()
    assert not at.exception, [e.value for e in at.exception]
    counted = [q for q in queries if q.startswith("SELECT count(*) FROM samples")]
    assert counted, "a changed filter must count again"
    from backend.store import connect

    con = connect("syn", synth_home)
    try:
        dogs = con.execute(
            "SELECT count(*) FROM samples WHERE regexp_matches(caption, '(?i)\\bdog\\b')"
        ).fetchone()[0]
    finally:
        con.close()
    assert 0 < dogs < 400
    assert _count(at).startswith(f"{dogs} of 400 rows match")
