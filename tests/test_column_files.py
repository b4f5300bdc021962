"""Columns added to a parquet-backed store (map, score, dedup) are written per shard and joined
into the ``samples`` view: no table with every row appears, each shard gets one file, and
queries through ``samples`` see exactly the values that were added."""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from backend import column_files, synth
from backend.columns import BadColumns, add_columns
from backend.store import connect, parquet_parts

ROWS, SHARDS = 60, 3


@pytest.fixture
def home(tmp_path: Path) -> Path:
    synth.generate("syn", ROWS, SHARDS, tmp_path, seed=1, concepts=False)
    return tmp_path


def _tables(home: Path) -> list[tuple[str, str]]:
    con = connect("syn", home)
    try:
        return sorted(con.execute("SELECT table_name, table_type FROM information_schema.tables"
                                  ).fetchall())  # fmt: skip
    finally:
        con.close()


def test_map_and_score_columns_are_per_shard_files_joined_into_the_view(home: Path) -> None:
    parts = parquet_parts("syn", home)
    parts_bytes = {p: Path(p).read_bytes() for p in parts}
    ids = np.arange(0, ROWS, 2)  # every other row: the rest must read NULL
    quality = (ids * 0.5).astype(np.float32)
    new_x = (100 + ids).astype(np.float32)  # replaces the shards' own map_x
    added = add_columns("syn", pa.table({"row_id": ids, "quality": quality, "map_x": new_x}),
                        home)  # fmt: skip
    assert added == ["quality", "map_x"]
    # no table holding the rows: samples is still a view; the only tables are the small ones
    # (samples_files: a row per shard and file kind, for backend.rowfetch, as are the _at views)
    assert _tables(home) == [
        ("build_manifest", "BASE TABLE"), ("rejects", "BASE TABLE"), ("samples", "VIEW"),
        ("samples_at", "VIEW"), ("samples_base_at", "VIEW"), ("samples_files", "BASE TABLE"),
    ]  # fmt: skip
    con = connect("syn", home)
    try:
        assert con.execute("SELECT count(*) FROM samples_files").fetchone()[0] == 2 * SHARDS
    finally:
        con.close()
    assert {p: Path(p).read_bytes() for p in parts} == parts_bytes  # shards untouched
    (s,) = column_files.read_sets("syn", home)
    files = sorted((column_files.folder("syn", home) / s["set"]).glob("*.parquet"))
    assert [f.name for f in files] == [Path(p).name for p in parts]  # one file per shard
    for f, p in zip(files, parts, strict=True):  # each holds its shard's rows, in its order
        assert pq.read_metadata(f).num_rows == pq.read_metadata(p).num_rows
        assert pq.read_schema(f).names == ["quality", "map_x"]
    con = connect("syn", home)
    try:
        got = con.execute("SELECT row_id, quality, map_x FROM samples ORDER BY row_id").fetchall()
        n_cols = len(con.execute("DESCRIBE samples").fetchall())
        caption = con.execute("SELECT caption FROM samples WHERE row_id = 7").fetchone()[0]
    finally:
        con.close()
    want = {int(i): (float(q), float(x)) for i, q, x in zip(ids, quality, new_x, strict=True)}
    assert [r[0] for r in got] == list(range(ROWS))
    for rid, q, x in got:
        assert (q, x) == want.get(rid, (None, None))
    assert n_cols == 17 + 1  # the 17 generated columns, map_x replaced, quality added
    direct = pq.read_table(parts[0]).to_pydict()
    assert caption == direct["caption"][direct["row_id"].index(7)]


def test_a_later_step_takes_over_a_column_and_an_emptied_set_is_removed(home: Path) -> None:
    add_columns("syn", pa.table({"row_id": [1, 2], "quality": [0.1, 0.2]}), home)
    first = column_files.read_sets("syn", home)[0]["set"]
    add_columns("syn", pa.table({"row_id": [2, 59], "quality": [0.9, 0.8]}), home)
    sets = column_files.read_sets("syn", home)
    assert len(sets) == 1 and sets[0]["set"] != first
    assert not (column_files.folder("syn", home) / first).exists()
    con = connect("syn", home)
    try:
        got = con.execute("SELECT row_id, quality FROM samples WHERE quality IS NOT NULL "
                          "ORDER BY row_id").fetchall()  # fmt: skip
    finally:
        con.close()
    assert got == [(2, pytest.approx(0.9)), (59, pytest.approx(0.8))]


def test_row_ids_outside_the_store_are_refused_and_nothing_changes(home: Path) -> None:
    with pytest.raises(BadColumns, match="1 row id"):
        add_columns("syn", pa.table({"row_id": [3, ROWS + 5], "quality": [0.1, 0.2]}), home)
    assert column_files.read_sets("syn", home) == []
    assert list(column_files.folder("syn", home).glob("s*")) == []
    con = connect("syn", home)
    try:
        assert "quality" not in [r[0] for r in con.execute("DESCRIBE samples").fetchall()]
        with pytest.raises(duckdb.Error):  # the lock-down still holds for other files
            con.execute(f"SELECT * FROM read_parquet('{home}/x.parquet')")
    finally:
        con.close()
