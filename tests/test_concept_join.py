"""The concept filter is a join on the result set's hits file, not a list of row ids: on a
synthetic parquet-backed dataset the compiled SQL and its parameters hold no row ids (so they do
not grow with the rows: at 10^8 the same SQL), DuckDB's plan is a hash (MARK) join of the shards
on the hits file whose hash table is built from the hits (a page's query too), and the count
through ``samples`` equals a count made directly from the hits file."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from backend import concepts, synth
from backend.browse import columns
from backend.selection import BadSelection, Selection
from backend.store import connect
from backend.subsets import resolve, select_ids

ROWS, SHARDS = 100_000, 4


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("concept_join")
    synth.generate("syn", ROWS, SHARDS, root, seed=5)
    return root


def _direct(home: Path, names: list[str]) -> list[int]:
    """Row ids naming any of ``names``, read from the result set's files with pyarrow."""
    folder = home / "syn" / "concepts" / synth.VOCAB
    counts = pq.read_table(folder / "counts.parquet")
    want = counts.filter(pc.is_in(counts["concept"], value_set=pc.cast(names, "string")))
    hits = pq.read_table(folder / "hits.parquet")
    hit = hits.filter(pc.is_in(hits["concept_id"], value_set=want["concept_id"]))
    return sorted(set(hit["row_id"].to_pylist()))


def _plan(con, sql: str, params: list) -> str:
    """DuckDB's physical plan of ``sql``, as EXPLAIN prints it."""
    return "\n".join(r[1] for r in con.execute(f"EXPLAIN {sql}", params).fetchall())


def test_concept_filter_compiles_to_a_join_and_counts_what_the_hits_say(home: Path) -> None:
    res = concepts.load("syn", synth.VOCAB, home)
    sel = concepts.selection_for(res, ["dog", "cat"])
    con = connect("syn", home)
    try:
        cols = columns(con)
        where, params = sel.where(cols)
        sql = f"SELECT count(*) FROM samples WHERE {where}"
        n = con.execute(sql, params).fetchone()[0]
        plan = _plan(con, sql, params)
        page = _plan(con, f"SELECT row_id, caption FROM samples WHERE {where} AND row_id > ? "
                     "ORDER BY row_id LIMIT 48", [*params, 10])  # fmt: skip
    finally:
        con.close()
    want = _direct(home, ["dog", "cat"])
    assert len(want) > ROWS // 20  # the head nouns: thousands of rows
    assert n == len(want)
    assert params == ["dog", "cat"]  # no ids bound …
    assert "hits.parquet" in where and not re.search(r"\d+\s*,\s*\d+", where)  # … none spliced
    for p in (plan, page):  # DuckDB plans a hash join on row_id of the shards with the hits …
        assert "Join Type: MARK" in p and "Conditions: row_id = " in p
        assert p.count("READ_PARQUET") == 3  # … (and the counts file), …
        assert "RIGHT_" not in p  # … its hash table the hits', never all of samples' rows
    assert not res.hits_loaded()  # the filter never read the hits into Python
    assert select_ids("syn", sel, home).tolist() == want


def test_recipe_is_json_and_resolves_again(home: Path) -> None:
    sel = Selection(concepts={synth.VOCAB: ["dog"]}, ranges={"nsfw": (None, 0.5)})
    recipe = json.loads(json.dumps(sel.to_dict()))
    assert recipe["concepts"] == {synth.VOCAB: ["dog"]} and "concept_dirs" not in recipe
    again = Selection.from_dict(recipe)
    with pytest.raises(BadSelection, match="not resolved"):
        again.where({"nsfw": "FLOAT"})
    got = select_ids("syn", resolve("syn", again, home), home).tolist()
    dogs = _direct(home, ["dog"])
    con = connect("syn", home)
    try:
        nsfw = dict(con.execute("SELECT row_id, nsfw FROM samples WHERE row_id IN "
                                "(SELECT unnest(?::BIGINT[]))", [dogs]).fetchall())  # fmt: skip
    finally:
        con.close()
    want = [i for i in dogs if nsfw[i] <= 0.5]
    assert 0 < len(want) < len(dogs) and got == want  # both parts hold
    assert again.describe() == ["nsfw ≤ 0.5", f"caption names “dog” ({synth.VOCAB})"]


def test_unknown_vocabulary_or_concept_is_one_clear_message(home: Path) -> None:
    with pytest.raises(BadSelection, match="no concept counts for 'colours'.*backend concepts"):
        resolve("syn", Selection(concepts={"colours": ["red"]}), home)
    with pytest.raises(BadSelection, match="'unicorn' is not a concept"):
        resolve("syn", Selection(concepts={synth.VOCAB: ["unicorn"]}), home)
    unset = Selection(concepts={synth.VOCAB: []})  # nothing named: no filter, no chip
    assert unset.is_empty() and unset.where({}) == ("TRUE", []) and unset.describe() == []


def test_pages_of_a_concept_are_the_hits_rows_in_order(home: Path) -> None:
    from backend.browse import page

    sel = concepts.selection_for(concepts.load("syn", synth.VOCAB, home), ["lighthouse"])
    want = _direct(home, ["lighthouse"])
    assert len(want) > 100
    con = connect("syn", home)
    try:
        first = page(con, sel, limit=48)
        second = page(con, sel, after=first[-1]["row_id"], limit=48)
        back = page(con, sel, before=second[0]["row_id"], limit=48)
        last = page(con, sel, after=want[-3], limit=48)
        full = con.execute("SELECT caption FROM samples WHERE row_id = ?", [want[50]]).fetchone()
    finally:
        con.close()
    assert [r["row_id"] for r in first + second] == want[:96]
    assert back == first and [r["row_id"] for r in last] == want[-2:]
    assert second[2]["caption"] == full[0] and "lighthouse" in full[0]  # the row's own columns


def test_examples_are_the_first_rows_of_the_selection_naming_the_concept(home: Path) -> None:
    from backend.concepts.parts import example_rows

    res = concepts.load("syn", synth.VOCAB, home)
    sel = Selection(ranges={"nsfw": (0.005, None)})  # (scores are rounded to 0.01)
    con = connect("syn", home)
    try:
        got = example_rows(con, res, sel, "lighthouse", 12)
        risky = {r[0] for r in con.execute("SELECT row_id FROM samples WHERE nsfw >= 0.005")
                 .fetchall()}  # fmt: skip
    finally:
        con.close()
    want = [i for i in _direct(home, ["lighthouse"]) if i in risky][:12]
    assert len(want) == 12 and [r["row_id"] for r in got] == want
    assert all("lighthouse" in r["caption"] and r["url"] for r in got)  # their own columns
