"""The row sample (backend.row_sample): known rows kept, tied to its store file, and what the
Map and the counts read from it at scale: the filtered map's points are the sample's rows that
pass the filter, its totals are estimates said to be so, and the exact count runs apart."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from backend import browse, exact_counts, mapview, row_sample, synth
from backend.columns import add_columns
from backend.selection import Selection
from backend.store import connect

ROWS, KEEP = 3_000, 300  # every = 10


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("row_sample")
    mp = pytest.MonkeyPatch()
    mp.setattr(row_sample, "ROWS", KEEP)
    try:
        synth.generate("syn", ROWS, 2, root, seed=3, concepts=False)
    finally:
        mp.undo()
    return root


def _ids(con, sql: str, params: list | None = None) -> list[int]:
    return [r[0] for r in con.execute(sql, params or []).fetchall()]


def test_the_sample_holds_exactly_the_hashed_rows_with_every_column(home: Path) -> None:
    con = connect("syn", home)
    try:
        got = row_sample.load(con)
        assert got is not None and got.every == 10
        want = _ids(con, "SELECT row_id FROM samples WHERE hash(row_id) % 10 = 0 ORDER BY 1")
        assert _ids(con, f"SELECT row_id FROM {got.table} ORDER BY 1") == want
        assert got.rows == len(want) and 200 < len(want) < 400
        cols = [r[0] for r in con.execute("DESCRIBE samples").fetchall()]
        assert [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {got.table}").fetchall()] \
            == cols  # fmt: skip
        one = con.execute(f"SELECT caption, nsfw FROM {got.table} WHERE row_id = ?",
                          [want[0]]).fetchall()  # fmt: skip
        assert one == con.execute("SELECT caption, nsfw FROM samples WHERE row_id = ?",
                                  [want[0]]).fetchall()  # fmt: skip
    finally:
        con.close()


def test_a_filtered_map_draws_the_samples_rows_that_pass(home: Path) -> None:
    con = connect("syn", home)
    try:
        sel = Selection(ranges={"nsfw": (None, 0.3)})
        pts = mapview.points(con, sel, color=None, limit=10_000)
        passing = _ids(con, "SELECT row_id FROM samples WHERE nsfw <= ? AND "
                       "hash(row_id) % 10 = 0 ORDER BY 1", [0.3])  # fmt: skip
        assert pts.row_id.tolist() == passing and pts.estimated
        assert pts.total == 10 * len(passing) and pts.every == 10
        exact = mapview.count(con, sel)
        assert abs(pts.total - exact) < 0.35 * exact  # an estimate, near the exact count
        dens = mapview.density(con, sel, mapview.extent(con))
        assert dens.counts.sum() == pts.total
        shown = sum(c["shown"] for c in mapview.clusters(con, sel))
        assert shown == pts.total
        typed = Selection(sql="samples.nsfw <= 0.3::DOUBLE")  # the SQL box names the table
        assert mapview.points(con, typed, color=None, limit=10_000).row_id.tolist() == passing
        live = mapview.points(con, sel, color=None, limit=10_000, live=True)
        assert live.total == exact and not live.estimated
    finally:
        con.close()


def test_fewer_points_keep_one_in_k_of_the_samples_rows(home: Path) -> None:
    """On the sample, 1 in k must thin its rows even when k divides the sample's 1-in-10
    (a plain hash % k = 0 would keep every one of them)."""
    con = connect("syn", home)
    try:
        sel = Selection(polygon=((-1e9, -1e9), (1e9, -1e9), (1e9, 1e9), (-1e9, 1e9)))
        pts = mapview.points(con, sel, color=None, limit=60)
        k = pts.every // 10
        assert k > 1 and pts.inside is not None and pts.inside.all()
        want = _ids(con, f"SELECT row_id FROM samples WHERE hash(row_id) % 10 = 0 AND "
                    f"(hash(row_id) // 10) % {k} = 0 ORDER BY 1")  # fmt: skip
        assert pts.row_id.tolist() == want and 20 < len(want) < 120
    finally:
        con.close()


def test_counts_estimate_then_the_exact_count_arrives(home: Path) -> None:
    con = connect("syn", home)
    try:
        sel = Selection(text="dog")
        est, every, seconds = browse.estimate(con, sel)
        assert seconds > 0  # the sample's time × 10: what a count of every row would take
        sample = con.execute(f"SELECT count(*) FROM {row_sample.load(con).table} "
                             "WHERE caption ILIKE '%dog%'").fetchall()[0][0]  # fmt: skip
        assert (est, every) == (10 * sample, 10) and est > 0
        exact = browse.count(con, sel)
    finally:
        con.close()
    key = f"test|{time.time()}"
    assert exact_counts.known(key) is None and exact_counts.finished(key)
    first = exact_counts.settled(key, est, "a sample")
    assert not first.exact and first.pending and "counting" in first.note

    def count() -> int:
        c = connect("syn", home)
        try:
            return browse.count(c, sel)
        finally:
            c.close()

    exact_counts.submit(key, count).result(timeout=60)
    assert exact_counts.finished(key)
    assert exact_counts.settled(key, est, "a sample") == exact_counts.Count(exact)


def test_a_failed_exact_count_keeps_the_estimate_and_says_why() -> None:
    def fail() -> int:
        raise TimeoutError("ran past its 10 s limit")

    key = f"fail|{time.time()}"
    exact_counts.submit(key, fail).exception(timeout=10)
    got = exact_counts.settled(key, 1234, "a sample")
    assert (got.n, got.exact, got.pending) == (1234, False, False)
    assert "ran past its 10 s limit" in got.note


def test_a_users_newer_count_stops_their_running_one_not_anothers() -> None:
    import threading

    started, stopped = threading.Event(), threading.Event()

    def slow() -> int:  # a count that runs until stopped
        started.set()
        if not stopped.wait(30):
            return -1
        raise TimeoutError("stopped")

    t = time.time()
    first = exact_counts.submit(f"a|{t}", slow, "alice", stopped.set)
    assert started.wait(10)
    waiting = exact_counts.submit(f"b|{t}", lambda: 2, "bob")  # queued behind alice's
    exact_counts.submit(f"c|{t}", lambda: 3, "alice")  # alice moved on
    assert isinstance(first.exception(timeout=10), TimeoutError) and stopped.is_set()
    assert exact_counts.known(f"a|{t}") is None  # asked again, it counts again
    assert waiting.result(timeout=10) == 2  # bob's count was left alone
    assert exact_counts.known(f"c|{t}").result(timeout=10) == 3
    started.clear(), stopped.clear()
    gone = exact_counts.submit(f"d|{t}", slow, "carol", stopped.set)  # carol closes her tab
    assert started.wait(10)
    exact_counts.submit(f"e|{t}", lambda: 5, "bob", alive=lambda owner: owner != "carol")
    assert isinstance(gone.exception(timeout=10), TimeoutError) and stopped.is_set()
    assert exact_counts.known(f"e|{t}").result(timeout=10) == 5


def test_browse_shows_the_estimate_then_the_exact_count(home: Path, monkeypatch) -> None:
    """A count slower than ui.memo's quick limit (forced here) is shown as "≈ N" with its
    source, and the page shows the exact count once the background count is in."""
    import re

    from streamlit.testing.v1 import AppTest

    from backend.query_errors import QueryTimeout
    from ui import memo

    real = memo.count

    def slow(name, con, sel):  # the exact count in the page's run takes too long
        if sel.is_empty():
            return real(name, con, sel)
        raise QueryTimeout("slow")

    monkeypatch.setenv("TAILSCOPE_HOME", str(home))
    monkeypatch.setattr(memo, "count", slow)
    con = connect("syn", home)
    try:
        exact = browse.count(con, Selection(text="dog"))
    finally:
        con.close()
    at = AppTest.from_file(str(Path(__file__).resolve().parent.parent / "app.py"),
                           default_timeout=60)  # fmt: skip
    at.run()
    at.switch_page("pages/1_Browse.py")
    at.run()
    next(t for t in at.text_input if t.label == "Caption contains").input("dog")
    at.run()

    def shown() -> str:
        hit = [m.value for m in at.markdown if 'class="ts-count"' in m.value]
        return re.sub(r"<[^>]+>", "", hit[0])

    assert not at.exception, [e.value for e in at.exception]
    assert shown().startswith("≈ ") and "estimated from a sample of 1 row in 10" in shown()
    for _ in range(60):  # the background count: well under a second on 3,000 rows
        at.run()
        if not shown().startswith("≈"):
            break
        time.sleep(0.5)
    assert shown().startswith(f"{exact:,} of 3,000 rows match")


def test_new_columns_rewrite_it_and_a_stale_one_is_ignored(home: Path, monkeypatch) -> None:
    monkeypatch.setattr(row_sample, "ROWS", KEEP)
    con = connect("syn", home)
    ids = np.array(_ids(con, "SELECT row_id FROM samples ORDER BY 1"), dtype=np.int64)
    con.close()
    add_columns("syn", pa.table({"row_id": ids, "extra": (ids % 7).astype(np.int32)}), home)
    con = connect("syn", home)
    try:
        got = row_sample.load(con)
        assert got is not None  # written again for the new store file, with the new column
        assert con.execute(f"SELECT count(*) FROM {got.table} WHERE extra = row_id % 7"
                           ).fetchall()[0][0] == got.rows  # fmt: skip
        rec = home / "syn" / "rowsample" / "rowsample.json"
        body = json.loads(rec.read_text())
        rec.write_text(json.dumps({**body, "store": "store-older.duckdb"}))
        assert row_sample.load(con) is None  # another store's: the pages query every row
        assert mapview.points(con, Selection(ranges={"nsfw": (None, 0.3)})).estimated is False
    finally:
        con.close()


def test_a_small_store_gets_none(home: Path) -> None:
    assert row_sample.write("syn", home, rows=ROWS) is None
    assert not (home / "syn" / "rowsample" / "rows.parquet").exists()
