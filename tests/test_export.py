"""Exports: known rows in, exactly those rows out, in every format; recipes replay; WebDataset
shards round-trip through our own ingest and resume after an interruption."""

from __future__ import annotations

import csv
import io
import json
import tarfile
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from backend.export import (
    BadExportName,
    ExportError,
    ExportExists,
    export,
    list_exports,
    replay,
    resolve_out,
)
from backend.export.uids import UID_DTYPE, array_to_uids, uids_to_array
from backend.selection import Selection
from backend.store import connect

PICK = [3, 10, 57, 200, 401, 589]


def store_rows(home: Path, ids: list[int], cols: str = "row_id, key, caption, url, sha256"):
    con = connect("demo", home)
    try:
        cur = con.execute(f"SELECT {cols} FROM samples WHERE row_id IN "
                          "(SELECT unnest(?::BIGINT[])) ORDER BY row_id", [ids])  # fmt: skip
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    finally:
        con.close()


def selected_ids(home: Path, sel: Selection) -> list[int]:
    return [int(i) for i in replay("demo", {"selection": sel.to_dict()}, home)]


def out_dir(tmp_path: Path, name: str) -> Path:
    return tmp_path / name


def run(home: Path, tmp_path: Path, fmt: str, name: str, **kw):
    return export("demo", fmt=fmt, out=out_dir(tmp_path, name), root=home, allow_absolute=True,
                  **kw)  # fmt: skip


def test_parquet_known_rows_all_columns(demo_home: Path, tmp_path: Path) -> None:
    res = run(demo_home, tmp_path, "parquet", "p", row_ids=PICK)
    table = pq.read_table(res.out / "data.parquet")
    assert res.count == table.num_rows == len(PICK)
    assert table.column("row_id").to_pylist() == PICK
    want = store_rows(demo_home, PICK)
    assert table.select(["row_id", "key", "caption", "url", "sha256"]).to_pylist() == want
    con = connect("demo", demo_home)
    n_cols = len(con.execute("DESCRIBE samples").fetchall())
    con.close()
    assert table.num_columns == n_cols


def test_chosen_columns_only(demo_home: Path, tmp_path: Path) -> None:
    res = run(demo_home, tmp_path, "parquet", "c", row_ids=PICK, columns=["key", "caption"])
    table = pq.read_table(res.out / "data.parquet")
    assert table.column_names == ["key", "caption"]
    assert table.to_pylist() == [{"key": r["key"], "caption": r["caption"]}
                                 for r in store_rows(demo_home, PICK)]  # fmt: skip
    with pytest.raises(ExportError, match="no column"):
        run(demo_home, tmp_path, "parquet", "c2", row_ids=PICK, columns=["key", "nope"])


def test_jsonl_and_csv_known_rows(demo_home: Path, tmp_path: Path) -> None:
    want = store_rows(demo_home, PICK)
    cols = ["row_id", "key", "caption", "url", "sha256"]
    res = run(demo_home, tmp_path, "jsonl", "j", row_ids=PICK, columns=cols)
    lines = (res.out / "data.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == want
    res = run(demo_home, tmp_path, "csv", "v", row_ids=PICK, columns=cols)
    with (res.out / "data.csv").open(newline="", encoding="utf-8") as f:
        got = list(csv.DictReader(f))
    assert [{**r, "row_id": int(r["row_id"])} for r in got] == want


def test_urls_for_img2dataset(demo_home: Path, tmp_path: Path) -> None:
    res = run(demo_home, tmp_path, "urls", "u", row_ids=PICK)
    table = pq.read_table(res.out / "urls.parquet")
    assert table.column_names == ["url", "caption"]
    assert table.to_pylist() == [{"url": r["url"], "caption": r["caption"]}
                                 for r in store_rows(demo_home, PICK)]  # fmt: skip


def test_manifest_records_recipe_source_and_files(demo_home: Path, tmp_path: Path) -> None:
    sel = Selection(text="red", ranges={"aesthetic": (4.0, None)})
    res = run(demo_home, tmp_path, "parquet", "m", selection=sel)
    m = json.loads(res.manifest.read_text())
    assert Selection.from_dict(m["recipe"]["selection"]) == sel and m["recipe"]["subset"] is None
    assert m["source"]["dataset"] == "demo" and m["source"]["build_id"].startswith("store-")
    assert m["source"]["rows"] == 590 and m["count"] == res.count > 0
    f = m["files"][0]
    assert f["path"] == "data.parquet" and f["bytes"] == (res.out / "data.parquet").stat().st_size
    import hashlib

    assert f["sha256"] == hashlib.sha256((res.out / "data.parquet").read_bytes()).hexdigest()
    assert m["versions"]["duckdb"]
    # the recipe replayed on the same build gives the same rows, and they are the exported ones
    exported = pq.read_table(res.out / "data.parquet").column("row_id").to_pylist()
    assert [int(i) for i in replay("demo", m["recipe"], demo_home)] == exported
    con = connect("demo", demo_home)
    direct = [r[0] for r in con.execute(
        "SELECT row_id FROM samples WHERE aesthetic >= 4 AND "
        "regexp_matches(lower(caption), '(^|[^a-z0-9_])red([^a-z0-9_]|$)') "  # a whole word
        "ORDER BY row_id").fetchall()]  # fmt: skip
    con.close()
    assert exported == direct


def test_overwrite_refused_then_allowed(demo_home: Path, tmp_path: Path) -> None:
    run(demo_home, tmp_path, "parquet", "o", row_ids=PICK[:2])
    before = (tmp_path / "o" / "data.parquet").read_bytes()
    with pytest.raises(ExportExists, match="already exists"):
        run(demo_home, tmp_path, "parquet", "o", row_ids=PICK)
    assert (tmp_path / "o" / "data.parquet").read_bytes() == before
    res = run(demo_home, tmp_path, "parquet", "o", row_ids=PICK, overwrite=True)
    assert pq.read_table(res.out / "data.parquet").num_rows == len(PICK)
    assert not list(tmp_path.glob(".o.*"))  # no partial or old folder left behind


@pytest.mark.parametrize("bad", ["../x", "/tmp/x", "a/b", "..", ".hidden", "a\\b", ""])
def test_ui_names_must_be_plain(demo_home: Path, bad: str) -> None:
    with pytest.raises(BadExportName):
        resolve_out("demo", bad, demo_home)
    with pytest.raises(BadExportName):
        export("demo", fmt="parquet", out=bad, root=demo_home, row_ids=PICK)


def test_plain_name_lands_in_export_folder_and_is_listed(demo_home: Path) -> None:
    res = export("demo", fmt="csv", out="listed-1", root=demo_home, row_ids=PICK)
    assert res.out == demo_home / "demo" / "exports" / "listed-1"
    listed = {e["export_name"]: e for e in list_exports("demo", demo_home)}
    assert listed["listed-1"]["count"] == len(PICK) and listed["listed-1"]["format"] == "csv"


def tar_members(path: Path) -> dict[str, bytes]:
    with tarfile.open(path) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar if m.isfile()}


def test_webdataset_round_trip_through_ingest(demo_home: Path, tmp_path: Path) -> None:
    from backend.ingest import build

    sel = Selection(text="red")
    ids = selected_ids(demo_home, sel)
    res = run(demo_home, tmp_path, "webdataset", "w", selection=sel, shard_size=40)
    assert res.count == len(ids) > 40
    assert [f["path"] for f in res.files] == [f"{i:05d}.tar" for i in range(-(-len(ids) // 40))]
    import hashlib

    for f in res.files:
        assert hashlib.sha256((res.out / f["path"]).read_bytes()).hexdigest() == f["sha256"]
    members = tar_members(res.out / "00000.tar")
    first = store_rows(demo_home, ids[:1])[0]
    assert members[f"{first['key']}.txt"].decode() == first["caption"]
    assert json.loads(members[f"{first['key']}.json"])["row_id"] == first["row_id"]
    ws = tmp_path / "ws2"
    built = build("again", res.out, "webdataset", root=ws, workers=1)
    assert built.rows == len(ids) and built.rejects == 0
    con = connect("again", ws)
    got = con.execute("SELECT key, caption, sha256 FROM samples ORDER BY key").fetchall()
    con.close()
    want = [(r["key"], r["caption"], r["sha256"]) for r in store_rows(demo_home, ids)]
    assert got == sorted(want)


def test_webdataset_resume_after_interruption(demo_home: Path, tmp_path: Path) -> None:
    sel = Selection(text="blue")
    full = run(demo_home, tmp_path, "webdataset", "full", selection=sel, shard_size=25)
    assert len(full.files) >= 3

    def stop_after_first_shard(done: int, total: int) -> None:
        if done >= 25:
            raise KeyboardInterrupt("simulated interruption")

    with pytest.raises(KeyboardInterrupt):
        run(demo_home, tmp_path, "webdataset", "part", selection=sel, shard_size=25,
            progress=stop_after_first_shard)  # fmt: skip
    partial = tmp_path / ".part.partial"
    assert sorted(p.name for p in partial.glob("*.tar")) == ["00000.tar"]
    assert not (tmp_path / "part").exists()
    seen: list[int] = []
    resumed = run(demo_home, tmp_path, "webdataset", "part", selection=sel, shard_size=25,
                  progress=lambda d, t: seen.append(d))  # fmt: skip
    assert seen[0] == 0 and 25 in seen  # the first shard was counted as already done
    strip = [{k: f[k] for k in ("path", "bytes", "sha256", "rows")} for f in full.files]
    assert [{k: f[k] for k in ("path", "bytes", "sha256", "rows")} for f in resumed.files] == strip
    for f in full.files:
        assert (tmp_path / "part" / f["path"]).read_bytes() == (full.out / f["path"]).read_bytes()
    assert not partial.exists()


def uid_folder(folder: Path, uids: list[str]) -> None:
    from PIL import Image

    folder.mkdir(parents=True)
    for i, uid in enumerate(uids):
        buf = io.BytesIO()
        Image.new("RGB", (16, 16), (i * 40, 90, 200)).save(buf, format="PNG")
        (folder / f"img{i}.png").write_bytes(buf.getvalue())
        (folder / f"img{i}.txt").write_text(f"picture {i}")
        (folder / f"img{i}.json").write_text(json.dumps({"uid": uid, "url": f"https://x/{i}"}))


def test_uids_as_datacomp_writes_them(tmp_path: Path, photo_folder: Path) -> None:
    from backend.ingest import build

    uids = ["ffd8a3e6c2b1a0c4d9e8f7a6b5c4d3e2", "00000000000000010000000000000002",
            "8b0c7e5f4a3d2c1b0a9f8e7d6c5b4a39"]  # fmt: skip
    uid_folder(tmp_path / "src", uids)
    ws = tmp_path / "ws"
    build("u", tmp_path / "src", "folder", root=ws, workers=1)
    res = export("u", fmt="uids", out="all", root=ws)
    arr = np.load(res.out / "uids.npy")
    assert arr.dtype == UID_DTYPE and res.count == 3
    expect = sorted((int(u[:16], 16), int(u[16:], 16)) for u in uids)
    assert arr.tolist() == expect
    assert array_to_uids(arr) == sorted(uids)
    # a WebDataset export of this folder keeps the image format's own extension
    res = export("u", fmt="webdataset", out="w", root=ws)
    assert sorted(n for n in tar_members(res.out / "00000.tar") if n.endswith(".png")) == [
        "img0.png", "img1.png", "img2.png"]  # fmt: skip
    build("p", photo_folder, "folder", root=ws, workers=1)
    with pytest.raises(ExportError, match="no uid column"):
        export("p", fmt="uids", out="x", root=ws)


def test_uid_conversion_refuses_bad_uids() -> None:
    with pytest.raises(ValueError, match="32 hex"):
        uids_to_array(["abc"])
    with pytest.raises(ValueError, match="hexadecimal"):
        uids_to_array(["z" * 32])


def test_export_of_a_saved_subset(demo_home: Path, tmp_path: Path) -> None:
    from backend import subsets

    sel = Selection(text="green")
    sub = subsets.save("demo", "export-test-green", sel, demo_home, overwrite=True)
    res = run(demo_home, tmp_path, "parquet", "s", subset="export-test-green")
    got = pq.read_table(res.out / "data.parquet").column("row_id").to_pylist()
    assert got == [int(i) for i in sub.row_ids] and len(got) > 0
    m = json.loads(res.manifest.read_text())
    assert m["recipe"]["subset"] == "export-test-green"
    assert Selection.from_dict(m["recipe"]["selection"]) == sel
    assert [int(i) for i in replay("demo", m["recipe"], demo_home)] == got


def test_sql_where_and_limit(demo_home: Path, tmp_path: Path) -> None:
    res = run(demo_home, tmp_path, "parquet", "q", selection=Selection(sql="row_id < 20"))
    assert pq.read_table(res.out / "data.parquet").column("row_id").to_pylist() == list(range(20))
    assert json.loads(res.manifest.read_text())["recipe"]["sql"] == "row_id < 20"
    sel = Selection(sql="row_id < 100", sort="row_id DESC", limit=5)
    res = run(demo_home, tmp_path, "jsonl", "lim", selection=sel, columns=["row_id"])
    rows = [json.loads(x)["row_id"] for x in (res.out / "data.jsonl").read_text().splitlines()]
    assert rows == [95, 96, 97, 98, 99]


def test_cli_export(demo_home: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    from backend.cli import main

    monkeypatch.setenv("TAILSCOPE_HOME", str(demo_home))
    out = tmp_path / "cli"
    rc = main(["export", "demo", "--where", "row_id IN (1, 2, 3)", "--format", "jsonl",
               "--out", str(out), "--columns", "row_id,caption", "--json"])  # fmt: skip
    assert rc == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["count"] == 3 and Path(summary["manifest"]).is_file()
    assert main(["export", "demo", "--all", "--format", "csv", "--out", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["export", "demo", "--all", "--format", "csv", "--out", "../up"]) == 2
    assert "plain name" in capsys.readouterr().err


@pytest.mark.slow
def test_background_job_reports_progress_in_a_status_file(demo_home: Path) -> None:
    from backend.export.jobs import list_jobs, read_status, start

    status = start("demo", "job-1", "webdataset", selection=Selection(text="red"),
                   shard_size=30, root=demo_home)  # fmt: skip
    deadline = time.monotonic() + 60
    while (body := read_status(status)).get("state") in ("starting", "running"):
        assert time.monotonic() < deadline, body
        time.sleep(0.2)
    assert body["state"] == "done", body
    assert body["count"] == len(selected_ids(demo_home, Selection(text="red")))
    assert body["done"] == body["total"] == body["count"]
    assert any(j["export_name"] == "job-1" for j in list_jobs("demo", demo_home))
    assert (demo_home / "demo" / "exports" / "job-1" / "manifest.json").is_file()


def test_export_page_counts_and_builds_a_download(demo_home: Path, monkeypatch) -> None:
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("TAILSCOPE_HOME", str(demo_home))
    at = AppTest.from_file(str(Path(__file__).parent.parent / "pages/9_Export.py"),
                           default_timeout=60)
    at.session_state["ts.selections"] = {"demo": Selection(text="red")}
    at.run()
    assert not at.exception, at.exception
    n = len(selected_ids(demo_home, Selection(text="red")))
    assert any(f"{n:,}" in m.value for m in at.markdown), [m.value for m in at.markdown][:5]
    # an earlier test's background job (WebDataset) seeds the picker: ask for Parquet here
    at.selectbox(key="w.export.fmt").set_value("parquet").run()
    at.button(key="w.export.prep").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    ready = at.session_state["ts.export.ready"]
    table = pq.read_table(io.BytesIO(ready["data"]))
    assert ready["rows"] == table.num_rows == n
    at.text_input(key="w.export.name.parquet.None").set_value("../escape").run()
    at.button(key="w.export.start").click().run()
    assert any("plain name" in e.value for e in at.error)
    assert not (demo_home / "demo" / "escape").exists()


def test_member_keys_are_safe_for_webdataset() -> None:
    from backend.export.wds import member_key

    assert member_key("000123", 7) == "000123"
    assert member_key("dir/a.b", 7) == "dir_a_b_r7"  # WebDataset cuts keys at the first dot
    assert member_key("", 9) == "row_r9"
    assert len(member_key("x" * 500, 123456789)) <= 81


def test_failed_export_leaves_nothing(demo_home: Path, tmp_path: Path) -> None:
    def boom(done: int, total: int) -> None:
        if done:
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        run(demo_home, tmp_path, "jsonl", "f", row_ids=PICK, progress=boom)
    assert list(tmp_path.iterdir()) == []


def test_batches_come_in_row_id_order_in_both_read_paths(demo_home: Path) -> None:
    from backend.export import plan

    ids = list(range(0, 590, 3))[::-1]  # an id list: read back by sorted chunks of ids
    p = plan("demo", row_ids=ids, root=demo_home)
    try:
        assert not p.plain_scan
        got = [i for b in p.batches(["row_id"], after=100, batch_rows=7)
               for i in b.column(0).to_pylist()]  # fmt: skip
    finally:
        p.close()
    assert got == sorted(i for i in ids if i > 100)
    p = plan("demo", selection=Selection(sql="row_id % 2 = 0"), root=demo_home)
    try:
        assert p.plain_scan
        got = [i for b in p.batches(["row_id", "key"], after=10, batch_rows=16)
               for i in b.column(0).to_pylist()]  # fmt: skip
    finally:
        p.close()
    assert got == list(range(12, 590, 2))
