"""Browse pages, row details and lookups by id on a parquet-backed store with added columns
go by position (backend.rowfetch) and give exactly what the joined ``samples`` view gives:
the same rows, in the same order, with the same values, under every kind of filter."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from backend import bounded, browse, rowfetch, synth
from backend.columns import add_columns
from backend.selection import Selection, quote_ident
from backend.store import connect

ROWS, SHARDS = 60, 3


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """60 rows in 3 shards; a set adds ``quality`` to even rows and takes over ``map_x`` (odd
    rows NULL); a later set adds ``votes`` to rows 0-29."""
    root = tmp_path_factory.mktemp("rowfetch")
    synth.generate("syn", ROWS, SHARDS, root, seed=1, concepts=False)
    ids = np.arange(0, ROWS, 2)
    add_columns("syn", pa.table({"row_id": ids, "quality": (ids * 0.5).astype(np.float32),
                                 "map_x": (100 + ids).astype(np.float32)}), root)  # fmt: skip
    some = np.arange(30)
    add_columns("syn", pa.table({"row_id": some, "votes": some * 3}), root)
    return root


class Recorder:
    """A connection that remembers the SQL it ran."""

    def __init__(self, con: Any) -> None:
        self.con, self.sql = con, []

    def execute(self, sql: str, params: Any = None) -> Any:
        self.sql.append(sql)
        return self.con.execute(sql, params) if params is not None else self.con.execute(sql)


def _plain_page(con: Any, sel: Selection, after: int, before: int | None, limit: int) -> list:
    cols = browse.columns(con)
    where, params = sel.where(cols)
    select = ", ".join(quote_ident(c) for c in browse.CARD_COLUMNS if c in cols)
    if before is not None:
        got = con.execute(f"SELECT {select} FROM samples WHERE ({where}) AND row_id < ? "
                          f"ORDER BY row_id DESC LIMIT {limit}", [*params, before])  # fmt: skip
        return list(reversed(browse._rows(got)))
    got = con.execute(f"SELECT {select} FROM samples WHERE ({where}) AND row_id > ? "
                      f"ORDER BY row_id LIMIT {limit}", [*params, after])  # fmt: skip
    return browse._rows(got)


SELECTIONS = {
    "nothing": Selection(),
    "a shard column": Selection(ranges={"nsfw": (None, 0.5)}),
    "an added column": Selection(ranges={"quality": (4.0, 20.0)}),
    "a column a set took over (map lasso)": Selection(
        polygon=((104.0, -100.0), (140.0, -100.0), (140.0, 100.0), (104.0, 100.0))),
    "caption word and shard": Selection(text="photo", shards=["part-00001", "part-00002"]),
    "row ids and an added column": Selection(row_ids=(59, 3, 30, 12, 44, 45),
                                             ranges={"votes": (0, None)}),
    "cluster values": Selection(values={"cluster": [0, 2]}),
    "SQL with braces on an added column": Selection(
        sql="regexp_matches(caption, 'o{1,2}') AND (quality IS NULL OR quality < 25)"),
    "SQL naming samples.column": Selection(sql="samples.width >= 700"),
    "SQL naming samples.added column": Selection(sql="samples.votes < 40"),
}  # fmt: skip


@pytest.mark.parametrize("gap", [rowfetch.GAP, 3])  # 3: many short ranges per shard
@pytest.mark.parametrize("label", list(SELECTIONS))
def test_pages_match_the_joined_view(home: Path, label: str, gap: int,
                                     monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.setattr(rowfetch, "GAP", gap)
    monkeypatch.setattr(rowfetch, "GAP_COLUMN_FILES", min(gap, rowfetch.GAP_COLUMN_FILES))
    sel = SELECTIONS[label]
    con = bounded.wrap(connect("syn", home))  # as the app's pages hold it
    try:
        rec = Recorder(con)
        shown = 0
        for after, before in [(-1, None), (17, None), (-1, 41), (59, None)]:
            fast = browse.page(rec, sel, after=after, before=before, limit=7)
            assert fast == _plain_page(con, sel, after, before, 7), (after, before)
            shown += len(fast)
    finally:
        con.close()
    assert shown  # each filter keeps some rows here
    assert not [q for q in rec.sql if "FROM samples " in q]  # never the joined view


def test_known_pages_and_rows(home: Path) -> None:
    con = connect("syn", home)
    try:
        page = browse.page(con, Selection(ranges={"quality": (10.0, None)}), limit=3)
        assert [r["row_id"] for r in page] == [20, 22, 24]
        nxt = browse.page(con, Selection(ranges={"quality": (10.0, None)}), after=56, limit=3)
        assert [r["row_id"] for r in nxt] == [58]
        even, odd = browse.row(con, 8), browse.row(con, 7)
        assert browse.row(con, ROWS + 3) is None
        samples_order = list(browse.columns(con))
    finally:
        con.close()
    assert list(even) == samples_order  # SELECT * order: shard columns, then each set's
    assert samples_order[-3:] == ["quality", "map_x", "votes"]
    assert (even["quality"], even["map_x"], even["votes"]) == (4.0, 108.0, 24)
    assert (odd["quality"], odd["map_x"], odd["votes"]) == (None, None, 21)
    assert even["key"] == "0000000008" and even["shard"] == "part-00000"


def test_rows_by_id_finds_spread_ids_and_drops_unknown_ones(home: Path) -> None:
    ids = [59, 0, 33, 19, 20, 47, ROWS + 100]
    con = connect("syn", home)
    try:
        got = browse.rows_by_id(con, ids, ("caption", "quality"))
        plain = con.execute("SELECT row_id, caption, quality FROM samples WHERE row_id IN "
                            "(59, 0, 33, 19, 20, 47)").fetchall()  # fmt: skip
    finally:
        con.close()
    assert sorted(got) == [0, 19, 20, 33, 47, 59]
    assert {r: (v["row_id"], v["caption"], v["quality"]) for r, v in got.items()} == {
        p[0]: p for p in plain
    }
    assert got[20]["quality"] == 10.0 and got[33]["quality"] is None


def test_a_store_without_added_columns_reads_samples_as_before(tmp_path: Path) -> None:
    synth.generate("plain", 12, 2, tmp_path, seed=1, concepts=False)
    con = connect("plain", tmp_path)
    try:
        assert rowfetch.layout(con) is None
        assert [r["row_id"] for r in browse.page(con, Selection(), after=4, limit=3)] == [5, 6, 7]
        assert browse.row(con, 11)["row_id"] == 11
        assert sorted(browse.rows_by_id(con, [3, 9, 40])) == [3, 9]
    finally:
        con.close()


def test_search_hits_keep_their_rank_and_scores(home: Path) -> None:
    from backend.search import hits

    got = hits("syn", [41, 2, ROWS + 1, 30], [0.9, 0.8, 0.7, 0.6], home)
    assert [(h["row_id"], h["score"], h["shard"]) for h in got] == [
        (41, 0.9, "part-00002"), (2, 0.8, "part-00000"), (30, 0.6, "part-00001")
    ]  # fmt: skip
    con = connect("syn", home)
    try:
        card = browse.page(con, Selection(row_ids=(41,)))[0]
    finally:
        con.close()
    assert got[0] == {**card, "score": 0.9}  # the card a page shows (the columns it has)
