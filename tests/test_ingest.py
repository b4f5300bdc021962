"""Build semantics: resume, swap-at-end, clear errors; and keyset paging over the store."""

from __future__ import annotations

import json
import shutil

import pytest

from backend import browse, paths
from backend.ingest import build, ingest_shard
from backend.selection import BadSelection, Selection
from backend.sources import SourceError, reader_for
from backend.store import StoreMissing, connect
from tests.conftest import PHOTOS, write_photo_folder
from tests.test_sources import jpeg, make_tar


def tar_source(tmp_path, shards: int = 3, per_shard: int = 4):
    src = tmp_path / "shards"
    src.mkdir(exist_ok=True)
    for s in range(shards):
        make_tar(
            src / f"{s:05d}.tar",
            [
                (
                    f"{s * per_shard + i:09d}",
                    {".jpg": jpeg("coffee", 40 + i), ".txt": f"cup {s} {i}".encode()},
                )
                for i in range(per_shard)
            ],
        )
    return src


def test_resume_skips_finished_shards(workspace, tmp_path):
    src = tar_source(tmp_path)
    reader = reader_for("webdataset")
    shards = reader.shards(src)
    staging = paths.staging_dir("res") / "shards"
    staging.mkdir(parents=True)
    (staging.parent / "state.json").write_text(
        json.dumps({"source": str(src), "format": "webdataset"})
    )
    ingest_shard("webdataset", shards[0], 0, staging)  # as if a build died after shard 0
    result = build("res", src, "webdataset", workers=1)
    assert result.resumed_shards == 1 and result.rows == 12
    assert not paths.staging_dir("res").exists()
    # a changed shard is redone, not reused
    again = build("res", src, "webdataset", workers=1)
    assert again.resumed_shards == 0 and again.rows == 12


def test_parallel_build_equals_serial(workspace, tmp_path):
    src = tar_source(tmp_path)
    build("serial", src, workers=1)
    build("parallel", src, workers=2)
    cols = "row_id, key, caption, byte_offset, sha256"
    a = connect("serial").execute(f"SELECT {cols} FROM samples ORDER BY row_id").fetchall()
    b = connect("parallel").execute(f"SELECT {cols} FROM samples ORDER BY row_id").fetchall()
    assert a == b and len(a) == 12


def test_failed_build_leaves_previous_store_intact(workspace, tmp_path):
    folder = tmp_path / "photos"
    write_photo_folder(folder)
    assert build("keep", folder).rows == len(PHOTOS)
    before = paths.store_path("keep").read_bytes()
    bad = tmp_path / "bad.csv"
    bad.write_text("nothing,useful\n1,2\n")
    with pytest.raises(SourceError):
        build("keep", bad)
    assert paths.store_path("keep").read_bytes() == before
    con = connect("keep")
    assert browse.count(con, Selection()) == len(PHOTOS)


def test_bad_names_and_missing_store(workspace, tmp_path):
    for name in ("../escape", "/abs", "a/b", "", ".hidden", "x" * 65):
        with pytest.raises(paths.BadName):
            build(name, tmp_path)
    with pytest.raises(StoreMissing, match="python -m backend build nothing"):
        connect("nothing")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SourceError, match="empty"):
        build("empty", empty)


def test_keyset_pages_cover_every_row_once(workspace, tmp_path):
    src = tar_source(tmp_path, shards=3, per_shard=7)
    build("pages", src)
    con = connect("pages")
    sel = Selection(shards=["00000.tar", "00002.tar"])
    assert browse.count(con, sel) == 14
    seen, after = [], -1
    while rows := browse.page(con, sel, after=after, limit=5):
        seen += [r["row_id"] for r in rows]
        after = rows[-1]["row_id"]
    assert seen == sorted(seen) and len(seen) == len(set(seen)) == 14
    assert {browse.row(con, i)["shard"] for i in seen} == {"00000.tar", "00002.tar"}
    back = browse.page(con, sel, before=seen[10], limit=5)
    assert [r["row_id"] for r in back] == seen[5:10]


def test_selection_rejects_unknown_columns_and_binds_values(workspace, photo_folder):
    build("sel", photo_folder)
    con = connect("sel")
    cols = browse.columns(con)
    with pytest.raises(BadSelection, match="no column named"):
        Selection(ranges={'width" OR 1=1 --': (0, 1)}).where(cols)
    with pytest.raises(BadSelection, match="not numeric"):
        Selection(ranges={"caption": (0, 1)}).where(cols)
    with pytest.raises(BadSelection, match="above maximum"):
        Selection(ranges={"width": (10, 1)}).where(cols)
    assert browse.count(con, Selection(text="'; DROP TABLE samples; --")) == 0
    assert browse.count(con, Selection(text="CUP coffee")) == 1
    wide_short = Selection(ranges={"width": (500, None), "height": (None, 450)})
    assert {r["key"] for r in browse.page(con, wide_short)} == {
        "coffee",
        "rocket",
    }  # 600x400, 640x427
    assert browse.count(con, wide_short) == 2
    assert browse.count(con, Selection()) == len(PHOTOS)


def test_cli_info_json_and_errors(workspace, photo_folder, capsys):
    from backend.cli import main

    assert main(["build", "cli", "--source", str(photo_folder), "--workers", "1"]) == 0
    capsys.readouterr()
    assert main(["info", "cli", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert {k: info[k] for k in ("name", "rows", "rejects")} == {
        "name": "cli",
        "rows": 8,
        "rejects": 0,
    }
    assert info["steps"] == ["ingest"]
    assert main(["info", "nothing"]) == 2
    assert "not built" in capsys.readouterr().err
    assert main(["build", "x", "--source", str(workspace / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err
    shutil.rmtree(photo_folder)
