"""Saved subsets: recipe + ids on disk, replay, set operations, compare, stale builds, CLI."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from backend import subsets
from backend.cli import main
from backend.columns import add_columns
from backend.ingest import build
from backend.selection import Selection
from backend.store import connect
from backend.subsets import SubsetError


@pytest.fixture
def ws(demo_home: Path, workspace: Path) -> Path:
    """A private copy of the demo store (subsets are written beside it)."""
    shutil.copytree(demo_home / "demo", workspace / "demo", symlinks=True,
                    ignore=shutil.ignore_patterns("source", "subsets"))  # fmt: skip
    return workspace


def sql_ids(root: Path, where: str) -> list[int]:
    con = connect("demo", root)
    try:
        cur = con.execute(f"SELECT row_id FROM samples WHERE {where} ORDER BY 1")
        return [r[0] for r in cur.fetchall()]
    finally:
        con.close()


def test_save_get_list_and_replay(ws: Path):
    want = sql_ids(ws, "width > 200 AND aesthetic >= 5")
    s = subsets.save("demo", "wide", Selection(sql="width > 200", ranges={"aesthetic": (5, None)}),
                     ws, note="wide and pretty")  # fmt: skip
    assert s.row_ids.tolist() == want and s.count == len(want) and 0 < s.count < 590
    folder = ws / "demo" / "subsets"
    assert sorted(p.name for p in folder.iterdir()) == ["wide.json", "wide.npy"]
    record = json.loads((folder / "wide.json").read_text())
    assert record["recipe"] == {"sql": "width > 200", "ranges": {"aesthetic": [5, None]}}
    got = subsets.get("demo", "wide", ws)
    assert got.row_ids.dtype == np.int64 and got.row_ids.tolist() == want
    assert (got.note, got.stale, got.count) == ("wide and pretty", False, len(want))
    assert got.build == subsets.build_fingerprint("demo", ws) and got.created
    assert subsets.replay("demo", "wide", ws).tolist() == want
    assert [x.name for x in subsets.list_subsets("demo", ws)] == ["wide"]
    # sort + limit are applied before the ids are frozen
    top = subsets.save("demo", "top3", Selection(sort="aesthetic DESC", limit=3), ws)
    con = connect("demo", ws)
    best = con.execute("SELECT row_id FROM samples ORDER BY aesthetic DESC, row_id LIMIT 3")
    assert top.row_ids.tolist() == sorted(r[0] for r in best.fetchall())
    con.close()


def test_membership_set_operations_rename_delete(ws: Path):
    subsets.save("demo", "a", Selection(row_ids=(1, 2, 3, 4)), ws)
    subsets.save("demo", "b", Selection(row_ids=(3, 4, 5)), ws)
    assert subsets.combine("demo", "a", "b", "union", "u", ws).row_ids.tolist() == [1, 2, 3, 4, 5]
    assert subsets.combine("demo", "a", "b", "intersection", "i", ws).row_ids.tolist() == [3, 4]
    d = subsets.combine("demo", "a", "b", "difference", "d", ws)
    assert d.row_ids.tolist() == [1, 2] and d.selection.subsets_none == ["b"]
    for n in ("u", "i", "d"):  # each combined recipe replays to its ids
        assert subsets.replay("demo", n, ws).tolist() == subsets.get("demo", n, ws).row_ids.tolist()
    # membership inside a larger selection
    sel = Selection(subsets_any=["a", "b"], subsets_none=["i"], ranges={"width": (0, None)})
    assert subsets.save("demo", "mix", sel, ws).row_ids.tolist() == [1, 2, 5]
    subsets.rename("demo", "a", "first", ws)
    assert subsets.get("demo", "first", ws).row_ids.tolist() == [1, 2, 3, 4]
    with pytest.raises(SubsetError, match="no subset named 'a'"):
        subsets.get("demo", "a", ws)
    subsets.delete("demo", "first", ws)
    assert sorted(p.name for p in (ws / "demo" / "subsets").glob("first*")) == []
    for call, why in [
        (lambda: subsets.save("demo", "../x", Selection(), ws), "bad subset name"),
        (lambda: subsets.save("demo", "b", Selection(), ws), "already exists"),
        (lambda: subsets.rename("demo", "b", "u", ws), "already exists"),
        (lambda: subsets.combine("demo", "b", "u", "xor", "z", ws), "unknown operation"),
        (lambda: subsets.save("demo", "s", Selection(subsets_all=["s"]), ws), "itself"),
        (lambda: subsets.save("demo", "s", Selection(subsets_all=["nope"]), ws), "no subset"),
        (lambda: subsets.delete("demo", "nope", ws), "no subset"),
    ]:
        with pytest.raises(ValueError, match=why):
            call()
    assert not list((ws / "demo" / "subsets").glob(".*tmp"))


def test_compare_sizes_overlap_histograms_top_shards(ws: Path):
    subsets.save("demo", "wide", Selection(sql="width > 200"), ws)
    subsets.save("demo", "pretty", Selection(ranges={"aesthetic": (5, None)}), ws)
    c = subsets.compare("demo", "wide", "pretty", ws)
    wide, pretty = set(sql_ids(ws, "width > 200")), set(sql_ids(ws, "aesthetic >= 5"))
    assert c["sizes"] == {"wide": len(wide), "pretty": len(pretty)}
    assert c["overlap"] == len(wide & pretty) and c["only_a"] == len(wide - pretty)
    assert c["jaccard"] == pytest.approx(len(wide & pretty) / len(wide | pretty))
    h = c["histograms"]["aesthetic"]
    assert sum(h["wide"]) == len(wide) and sum(h["pretty"]) == len(pretty)
    assert len(h["edges"]) == subsets.HIST_BINS + 1 and "row_id" not in c["histograms"]
    shards = dict(c["top"]["shard"]["wide"])
    assert sum(shards.values()) == len(wide) and "concepts" not in c["top"]


def test_added_columns_keep_the_build_and_a_rebuild_marks_subsets_stale(
    workspace: Path, photo_folder: Path
):
    build("photos", photo_folder, "folder", root=workspace, workers=1)
    s = subsets.save("photos", "two", Selection(row_ids=(0, 1)), workspace)
    add_columns("photos", pa.table({"row_id": [0, 1], "score": [1.0, 2.0]}), workspace)
    assert not subsets.get("photos", "two", workspace).stale
    time.sleep(1.1)  # the build time has one-second resolution
    build("photos", photo_folder, "folder", root=workspace, workers=1)
    again = subsets.get("photos", "two", workspace)
    assert again.stale and again.row_ids.tolist() == [0, 1] and again.build == s.build


def test_cli_save_list_mv_combine_rm(ws: Path, tmp_path: Path, capsys):
    assert main(["subset", "demo", "save", "wide", "--where", "width > 200", "--note", "n"]) == 0
    recipe = tmp_path / "r.json"
    recipe.write_text(json.dumps({"ranges": {"aesthetic": [5, None]}}))
    assert main(["subset", "demo", "save", "pretty", "--recipe", str(recipe)]) == 0
    assert (
        main(["subset", "demo", "combine", "wide", "intersection", "pretty", "--as", "both"]) == 0
    )
    assert main(["subset", "demo", "mv", "both", "wide_pretty"]) == 0
    capsys.readouterr()
    assert main(["subset", "demo", "list", "--json"]) == 0
    listed = {s["name"]: s for s in json.loads(capsys.readouterr().out)}
    assert sorted(listed) == ["pretty", "wide", "wide_pretty"]
    assert listed["wide_pretty"]["count"] == len(sql_ids(ws, "width > 200 AND aesthetic >= 5"))
    assert listed["wide"]["note"] == "n"
    assert main(["subset", "demo", "rm", "pretty"]) == 0
    assert main(["subset", "demo", "save", "bad", "--where", "read_csv('/etc/passwd')"]) == 2
    assert "read_csv() is not allowed" in capsys.readouterr().err
    assert main(["subset", "demo", "save", "x"]) == 2
    assert [s.name for s in subsets.list_subsets("demo", ws)] == ["wide", "wide_pretty"]


def test_compare_counts_each_subsets_concepts(ws: Path):
    import shutil as _sh

    from backend.concepts import analyse, load, parse, rows_with

    _sh.rmtree(ws / "demo" / "concepts", ignore_errors=True)
    analyse("demo", parse("shapes", b"circle\nsquare\nstar\n"), ws)
    subsets.save("demo", "wide", Selection(sql="width > 200"), ws)
    subsets.save("demo", "pretty", Selection(ranges={"aesthetic": (5, None)}), ws)
    tops = subsets.compare("demo", "wide", "pretty", ws)["top"]["concepts (shapes)"]
    res = load("demo", "shapes", ws)
    for name, where in (("wide", "width > 200"), ("pretty", "aesthetic >= 5")):
        ids = set(sql_ids(ws, where))
        want = {c: len(ids & set(rows_with(res, [c]).tolist())) for c in ("circle", "square")}
        got = dict(tops[name])
        assert {c: got.get(c, 0) for c in want} == want and want["circle"] > 0
