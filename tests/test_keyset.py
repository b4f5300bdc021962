"""A sorted Browse page: paging forward and back through every row gives exactly the order
Export and Subsets use (``Selection.order_limit``: the sort column, NULLs last, then row id),
with ties and NULLs, on each kind of store (a plain view of shards, shards with added column
files read by position, a concept join)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from backend import browse, synth
from backend.columns import add_columns
from backend.keyset import keyset
from backend.selection import BadSelection, Selection
from backend.store import connect
from backend.subsets import resolve

ROWS, LIMIT = 90, 7


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``plain``: 40 rows, no added columns. ``syn``: 90 rows in 3 shards with concepts, and
    ``grade`` added: ``row_id % 5`` (ties: 18 rows each) on rows not divisible by 3 (NULL on
    the 30 others)."""
    root = tmp_path_factory.mktemp("keyset")
    synth.generate("plain", 40, 2, root, seed=2, concepts=False)
    synth.generate("syn", ROWS, 3, root, seed=3)
    ids = np.array([i for i in range(ROWS) if i % 3])
    add_columns("syn", pa.table({"row_id": ids, "grade": (ids % 5).astype(np.int64)}), root)
    return root


def _walk(con: Any, sel: Selection, sort_column: str | None) -> tuple[list[int], list[int]]:
    """Every row id paging forward with Next, then paging back with Previous from the last
    page (each page's rows in order), as the Browse page's cursor does."""
    forward, pages, after, value = [], [], -1, None
    while page := browse.page(con, sel, after=after, value=value, limit=LIMIT):
        assert len(forward) <= ROWS, "paging does not end"
        forward += [r["row_id"] for r in page]
        pages.append(page)
        after, value = page[-1]["row_id"], page[-1].get(sort_column)
    backward = [r["row_id"] for r in pages[-1]]
    first = pages[-1][0]
    while page := browse.page(con, sel, before=first["row_id"], value=first.get(sort_column),
                              limit=LIMIT):  # fmt: skip
        assert len(backward) <= ROWS, "paging back does not end"
        backward = [r["row_id"] for r in page] + backward
        first = page[0]
    return forward, backward


def _ordered(con: Any, sel: Selection) -> list[int]:
    cols = browse.columns(con)
    where, params = sel.where(cols)
    return [r[0] for r in con.execute(f"SELECT row_id FROM samples WHERE {where} "
                                      f"{sel.order_limit(cols)}", params).fetchall()]  # fmt: skip


CASES = {
    "plain, a float high first": ("plain", Selection(sort="nsfw DESC")),
    "plain, width low first, filtered": ("plain", Selection(sort="width ASC",
                                                           ranges={"nsfw": (None, 0.8)})),
    "added column with ties and NULLs, low first": ("syn", Selection(sort="grade")),
    "added column with ties and NULLs, high first": ("syn", Selection(sort="grade DESC")),
    "shard column, filter on the added one": ("syn", Selection(sort="height DESC",
                                                              ranges={"grade": (1, 3)})),
    "unsorted": ("syn", Selection(text="photo")),
    "a concept, sorted by the added column": ("syn", Selection(
        concepts={synth.VOCAB: ["dog", "cat"]}, sort="grade DESC")),
}  # fmt: skip


@pytest.mark.parametrize("label", list(CASES))
def test_paging_both_ways_gives_the_export_order(home: Path, label: str) -> None:
    name, sel = CASES[label]
    sel = resolve(name, sel, home) if sel.concepts else sel
    con = connect(name, home)
    try:
        want = _ordered(con, sel)
        key = sel.sort_key(browse.columns(con))
        forward, backward = _walk(con, sel, key[0] if key else None)
    finally:
        con.close()
    assert len(want) > 2 * LIMIT  # several pages
    assert forward == want and backward == want
    assert len(set(forward)) == len(forward)  # no row twice at a page's edge (ties)


def test_known_rows_in_grade_order(home: Path) -> None:
    """Grade 4 (rows ≡ 4 mod 5, not ≡ 0 mod 3) first, ids ascending within the tie; the
    NULLs (rows ≡ 0 mod 3) last, ids ascending."""
    con = connect("syn", home)
    try:
        first = browse.page(con, Selection(sort="grade DESC"), limit=5)
        tail = browse.page(con, Selection(sort="grade DESC"), after=84, value=None, limit=5)
    finally:
        con.close()
    assert [(r["row_id"], r["grade"]) for r in first] == [
        (4, 4), (14, 4), (19, 4), (29, 4), (34, 4)]  # fmt: skip
    assert [(r["row_id"], r["grade"]) for r in tail] == [(87, None)]


def test_an_unknown_sort_column_is_one_clear_message(home: Path) -> None:
    with pytest.raises(BadSelection, match="cannot sort: no column named 'nope'"):
        keyset(Selection(sort="nope DESC"), {"row_id": "BIGINT"}, after=3)
