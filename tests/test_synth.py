"""The synthetic parquet-backed dataset (backend.synth): 20k rows in 4 shards, read back through
the app's own connection and query functions, checked against the parquet files read directly
with pyarrow (an independent path) and against the real caption matcher."""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
import numpy as np
import pyarrow.dataset as pads
import pytest

from backend import browse, mapview, synth
from backend.catalog import summary
from backend.concepts.match import match_captions, matcher
from backend.concepts.run import caption_hits, load
from backend.map_files import load_clusters
from backend.selection import Selection
from backend.store import connect, parquet_parts

ROWS, SHARDS = 20_000, 4


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("synth_ws")
    synth.generate("syn", ROWS, SHARDS, root, seed=3)
    return root


@pytest.fixture(scope="module")
def truth(home: Path):
    """The generated rows as pyarrow reads them from the shard files, in row order."""
    table = pads.dataset(parquet_parts("syn", home), format="parquet").to_table()
    return table.sort_by("row_id")


@pytest.fixture
def con(home: Path):
    c = connect("syn", home)
    yield c
    c.close()


def test_layout_is_parquet_shards_behind_a_view(home: Path, con) -> None:
    parts = parquet_parts("syn", home)
    assert [Path(p).name for p in parts] == [f"part-{i:05d}.parquet" for i in range(SHARDS)]
    kind = con.execute("SELECT table_type FROM information_schema.tables "
                       "WHERE table_name = 'samples'").fetchone()[0]  # fmt: skip
    assert kind == "VIEW"
    info = summary("syn", home)
    assert info["rows"] == ROWS and info["format"] == "synthetic"
    assert {"ingest", "map", "score", "concepts"} <= set(info["steps"])


def test_rows_match_what_was_written(home: Path, con, truth) -> None:
    assert truth.num_rows == ROWS
    assert truth["row_id"].to_pylist() == list(range(ROWS))
    assert browse.count(con, Selection()) == ROWS
    nsfw = truth["nsfw"].to_numpy()
    want = int(((nsfw >= 0.5) & (nsfw <= 1.0)).sum())
    assert 0 < want < ROWS / 5
    assert browse.count(con, Selection(ranges={"nsfw": (0.5, 1.0)})) == want
    got = browse.column_ranges(con, ["nsfw", "width", "map_x"])
    for col in ("nsfw", "width", "map_x"):
        values = truth[col].to_numpy()
        assert got[col] == browse.column_range(con, col) == (values.min(), values.max())
    files, types = parquet_parts("syn", home), browse.columns(con)
    footers = browse._footer_ranges(con, files, {c: types[c] for c in got})  # (the row groups'
    assert footers == got == browse.column_ranges(con, list(got), files)  # statistics: exact)
    captions = truth["caption"].to_pylist()
    word = re.compile(r"(?<!\w)dog(?!\w)")  # the caption filter matches whole words
    assert browse.count(con, Selection(text="dog")) == sum(bool(word.search(c.lower()))
                                                           for c in captions)  # fmt: skip
    assert browse.count(con, Selection(text="*dog*")) == sum("dog" in c.lower() for c in captions)
    shard = truth["shard"].to_numpy()
    assert browse.count(con, Selection(shards=["part-00002"])) == int(
        (shard == "part-00002").sum()) == ROWS // SHARDS  # fmt: skip
    cl = truth["cluster"].to_numpy()
    assert browse.count(con, Selection(values={"cluster": [0, 5]})) == int(
        np.isin(cl, [0, 5]).sum()
    )


def test_first_and_next_page_are_the_first_rows(con, truth) -> None:
    first = browse.page(con, Selection(), limit=48)
    assert [r["row_id"] for r in first] == list(range(48))
    assert [r["caption"] for r in first] == truth["caption"].to_pylist()[:48]
    assert first[0]["storage"] == "url" and first[0]["url"].startswith("https://")
    nxt = browse.page(con, Selection(ranges={"toxicity": (0.5, None)}), after=5000, limit=10)
    tox = truth["toxicity"].to_numpy()
    want = [i for i in np.flatnonzero(tox >= 0.5) if i > 5000][:10]
    assert [r["row_id"] for r in nxt] == want


def test_map_density_and_clusters(home: Path, con, truth) -> None:
    frame = mapview.view(con)
    assert frame is not None
    grid = mapview.density(con, Selection(), frame)
    assert grid.counts.sum() == ROWS  # every row lands in a cell (edges clamped)
    table = load_clusters("syn", home)
    sizes = np.bincount(truth["cluster"].to_numpy())
    assert [d["size"] for d in table] == [int(s) for s in sizes if s]
    assert all(d["label"] in synth.PLACES for d in table)
    got = mapview.clusters(con, Selection(), table)
    assert [d["size"] for d in got] == [d["size"] for d in table]
    pts = mapview.points(con, Selection(), limit=1000)
    assert pts.sampled and pts.total == ROWS and 500 < len(pts.row_id) < 2000


def test_concept_counts_equal_the_real_matcher(home: Path, truth) -> None:
    res = load("syn", synth.VOCAB, home)
    rows, ids, n = caption_hits("syn", synth.vocabulary(), home)
    assert n == ROWS
    assert np.array_equal(rows, res.rows) and np.array_equal(ids, res.ids)
    counts = res.counts["caption_count"].to_numpy()
    assert counts.sum() == len(res.rows) and counts[0] == counts.max()  # 'dog' is the head
    assert res.summary["caption_slope"]["slope"] > 0.8  # a long tail, as generated
    # and the captions name no word of another list (or its plural) by accident
    m = matcher(synth.vocabulary())
    others = " ".join(synth.ADJECTIVES + synth.PLACES + synth.STARTS + synth.PREPS)
    assert len(match_captions(m, [others])[0]) == 0


def test_lock_down_still_refuses_other_files(home: Path, con, tmp_path: Path) -> None:
    other = tmp_path / "other.parquet"
    duckdb.execute(f"COPY (SELECT 42 AS secret) TO '{other}' (FORMAT parquet)")
    for sql in (f"SELECT * FROM read_parquet('{other}')", "SELECT * FROM read_csv('/etc/passwd')",
                f"SELECT * FROM glob('{home}/syn/parts/*')",
                f"COPY (SELECT 1) TO '{home}/syn/parts/extra.parquet'",
                "SET enable_external_access = true", "SET allowed_paths = ['/']"):  # fmt: skip
        with pytest.raises(duckdb.Error):
            con.execute(sql).fetchall()
    settings = dict(con.execute("SELECT name, value FROM duckdb_settings() WHERE name IN "
                                "('enable_external_access', 'lock_configuration', 'access_mode')"
                                ).fetchall())  # fmt: skip
    assert settings == {"enable_external_access": "false", "lock_configuration": "true",
                        "access_mode": "read_only"}  # fmt: skip
    second = connect("syn", home)  # shares the locked instance: checked, not re-set
    assert second.execute("SELECT count(*) FROM samples").fetchone()[0] == ROWS
    second.close()
    parts = home / "syn" / "parts"
    assert not parts.stat().st_mode & 0o222  # read-only on disk too


def test_refuses_to_overwrite_unless_asked(home: Path) -> None:
    with pytest.raises(FileExistsError):
        synth.generate("syn", 10, 1, home)
    with pytest.raises(ValueError):
        synth.generate("bad", 10, 20, home)


def test_cli_verb_writes_a_dataset_the_app_lists(workspace: Path, capsys) -> None:
    from backend.cli import main

    assert main(["synth", "big", "--rows", "12000", "--shards", "3", "--no-concepts"]) == 0
    assert len(list((workspace / "big" / "parts").glob("*.parquet"))) == 3
    assert main(["info", "big", "--json"]) == 0
    assert '"rows": 12000' in capsys.readouterr().out
    assert main(["synth", "big", "--rows", "10"]) == 2  # exists: refused without --overwrite


def test_resume_keeps_finished_shards_and_redoes_the_rest(tmp_path: Path) -> None:
    synth.generate("r", 3000, 3, tmp_path, seed=4, concepts=False)
    parts = tmp_path / "r" / "parts"
    whole = pads.dataset(parquet_parts("r", tmp_path), format="parquet").to_table()
    parts.chmod(0o755)  # an interrupted run: shard 2 never finished, its temporary file left
    (parts / "part-00002.parquet").unlink()
    (parts / "part-00002.parquet.tmp").write_bytes(b"half")
    kept = (parts / "part-00000.parquet").stat()
    synth.generate("r", 3000, 3, tmp_path, seed=4, concepts=False, resume=True)
    again = (parts / "part-00000.parquet").stat()
    assert (again.st_ino, again.st_mtime_ns) == (kept.st_ino, kept.st_mtime_ns)  # not rewritten
    assert sorted(p.name for p in parts.iterdir()) == [f"part-{i:05d}.parquet" for i in range(3)]
    redone = pads.dataset(parquet_parts("r", tmp_path), format="parquet").to_table()
    assert redone.sort_by("row_id").equals(whole.sort_by("row_id"))
    with connect("r", tmp_path) as con:
        assert browse.count(con, Selection()) == 3000
    synth.generate("r", 3000, 3, tmp_path, seed=5, concepts=False, resume=True)  # other seed:
    other = pads.dataset(parquet_parts("r", tmp_path), format="parquet").to_table()  # all anew
    assert other["caption"].to_pylist() != redone["caption"].to_pylist()
