"""The Selection model: every part compiles to a parameterised predicate over known rows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from backend.browse import columns
from backend.selection import BadSelection, Selection
from backend.store import connect


@pytest.fixture(scope="module")
def con(demo_home: Path):
    c = connect("demo", demo_home)
    yield c
    c.close()


def ids(con, sel: Selection) -> list[int]:
    cols = columns(con)
    where, params = sel.where(cols)
    q = f"SELECT row_id FROM samples WHERE {where} {sel.order_limit(cols)}"
    return [r[0] for r in con.execute(q, params).fetchall()]


def sql_ids(con, where: str, tail: str = "ORDER BY row_id") -> list[int]:
    return [
        r[0] for r in con.execute(f"SELECT row_id FROM samples WHERE {where} {tail}").fetchall()
    ]


def test_values_in_list_for_text_and_numbers(con):
    assert ids(con, Selection(values={"shard": ["00001.tar"]})) == sql_ids(
        con, "shard = '00001.tar'"
    )
    got = ids(con, Selection(values={"width": [256, 128]}))
    assert got == sql_ids(con, "width IN (256, 128)") and got
    assert ids(con, Selection(values={"width": []})) == []
    bad_values = [({"nope": [1]}, "no column"), ({"width": ["wide"]}, "numeric"),
                  ({"caption": [3]}, "holds text"), ({"width": [[1]]}, "not a number")]  # fmt: skip
    for bad, why in bad_values:
        with pytest.raises(BadSelection, match=why):
            Selection(values=bad).where(columns(con))


def test_row_ids_and_subsets_and_or_not(con):
    a, b = (1, 2, 3, 4), (3, 4, 5)
    resolved = {"a": a, "b": b}
    assert ids(con, Selection(row_ids=(5, 1, 99999))) == [1, 5]
    assert ids(con, Selection(row_ids=())) == []
    both = Selection(subsets_all=["a", "b"], subset_ids=resolved)
    either = Selection(subsets_any=["a", "b"], subset_ids=resolved)
    only_a = Selection(subsets_all=["a"], subsets_none=["b"], subset_ids=resolved)
    assert ids(con, both) == [3, 4]
    assert ids(con, either) == [1, 2, 3, 4, 5]
    assert ids(con, only_a) == [1, 2]
    with pytest.raises(BadSelection, match="not resolved"):
        Selection(subsets_any=["a"]).where(columns(con))
    with pytest.raises(BadSelection, match="not resolved"):
        Selection(subsets_any=["a", "c"], subset_ids=resolved).where(columns(con))


def test_sort_and_limit_make_the_tail_not_the_predicate(con):
    sel = Selection(ranges={"width": (200, None)}, sort="aesthetic DESC", limit=5)
    where, _ = sel.where(columns(con))
    assert "LIMIT" not in where and "ORDER" not in where
    assert ids(con, sel) == sql_ids(
        con, "width >= 200", "ORDER BY aesthetic DESC NULLS LAST, row_id LIMIT 5"
    )
    assert ids(con, Selection(sort="aesthetic", limit=3)) == sql_ids(
        con, "TRUE", "ORDER BY aesthetic, row_id LIMIT 3"
    )
    assert Selection().order_limit(columns(con)) == "ORDER BY row_id"
    with pytest.raises(BadSelection, match="no column"):
        Selection(sort="nope; DROP").order_limit(columns(con))
    with pytest.raises(BadSelection, match="limit"):
        Selection(limit=-1).order_limit(columns(con))


def test_every_part_combines_with_and(con):
    sel = Selection(
        text="square", ranges={"aesthetic": (4.0, None)}, shards=["00000.tar", "00002.tar"],
        values={"format": ["jpeg"]}, sql="width > 100", row_ids=tuple(range(0, 600, 2)),
    )  # fmt: skip
    want = sql_ids(
        con,
        "regexp_matches(lower(caption), '(^|[^a-z0-9_])square([^a-z0-9_]|$)') "  # whole word
        "AND aesthetic >= 4 AND shard IN ('00000.tar', "
        "'00002.tar') AND format = 'jpeg' AND width > 100 AND row_id % 2 = 0",
    )
    assert ids(con, sel) == want and 0 < len(want) < 100


def test_recipe_round_trips_through_json_without_resolved_ids():
    sel = Selection(
        text="red", ranges={"width": (1, None)}, values={"shard": ["a", 2]}, subsets_all=["x"],
        subsets_none=["y"], subset_ids={"x": (1,), "y": (2,)}, row_ids=(3, 1), sql="width > 1",
        sort="width DESC", limit=10, polygon=((0, 0), (1, 0), (1, 1)), keywords="cat",
        keyword_ids=(1,),
    )  # fmt: skip
    d = json.loads(json.dumps(sel.to_dict()))
    assert "subset_ids" not in d and "keyword_ids" not in d
    back = Selection.from_dict(d)
    assert back == sel and back.row_ids == (3, 1) and back.subset_ids is None
    assert Selection().to_dict() == {}
    with pytest.raises(BadSelection, match="unknown selection part"):
        Selection.from_dict({"subset_ids": {}})
    with pytest.raises(BadSelection, match="malformed"):
        Selection.from_dict({"row_ids": ["x"]})


def test_describe_one_label_per_part_and_each_removable():
    sel = Selection(
        text="red cat", values={"cluster": [1, 2, 3, 4]}, subsets_any=["a", "b"],
        subsets_none=["c"], row_ids=(1, 2), sql="width > 1", sort="width DESC", limit=7,
    )  # fmt: skip
    parts = sel.parts()
    labels = [p[0] for p in parts]
    assert labels == sel.describe() == [
        'caption has "red"', 'caption has "cat"', "cluster in 1, 2, 3…", "in any of a, b",
        "not in subset c", "2 chosen rows", "SQL: width > 1", "sorted by width ↓",
        "first 7 rows",
    ]  # fmt: skip
    for _, rest in parts:  # removing a part leaves exactly the others
        assert len(rest.describe()) == len(labels) - 1
    assert parts[0][1].text == "cat" and parts[5][1].row_ids is None
    assert Selection().is_empty() and Selection(sort="width", limit=3).is_empty()
    assert not Selection(row_ids=()).is_empty() and not Selection(sql="width>1").is_empty()


def test_an_id_set_can_say_what_it_is():
    sel = Selection(row_ids=(3, 5), row_ids_label="caption names “hexagon”")
    assert sel.describe() == ["caption names “hexagon” (2 rows)"]
    assert Selection.from_dict(sel.to_dict()) == sel
    label, rest = sel.parts()[0]
    assert rest == Selection()
