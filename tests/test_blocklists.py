"""Blocklists and opt-outs on real photos: each list flags exactly the planted rows, listed rows
leave the Selection through the ``blocklisted`` subset, and every application is logged and
referenced by the export manifests made after it."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import write_photo_folder
from PIL import Image

from backend import blocklists
from backend.blocklist_match import BlocklistError
from backend.cli import main
from backend.export.run import export
from backend.ingest import build
from backend.safety.phash import phash64
from backend.selection import Selection
from backend.store import connect
from backend.subsets import resolve, select_ids

URLS = {  # photo -> its URL (the rest keep conftest's https://example.invalid/<name>.jpg)
    "rocket": "https://cdn.optout.example.com/r.jpg",
    "coins": "https://optout.example.com/c.jpg?size=2",
    "camera": "https://optout.example.com.evil.org/cam.jpg",  # not under optout.example.com
}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, int]]:
    """The eight conftest photos with three planted URLs, built and pHashed once."""
    from backend.safety.run import score

    root = tmp_path_factory.mktemp("blocklists_ws")
    src = root / "src"
    write_photo_folder(src)
    for name, url in URLS.items():
        (src / f"{name}.json").write_text(json.dumps({"url": url}))
    build("photos", src, "folder", root=root, workers=1)
    score("photos", ["phash"], root=root)
    con = connect("photos", root)
    rows = con.execute("SELECT row_id, path FROM samples").fetchall()
    con.close()
    return root, src, {Path(p).stem: int(r) for r, p in rows}


@pytest.fixture
def photos(built, workspace: Path) -> tuple[str, Path, dict[str, int]]:
    """A fresh copy of the built dataset for one test (lists and logs start empty)."""
    root, src, ids = built
    shutil.copytree(root / "photos", workspace / "photos", symlinks=True)
    return "photos", src, ids


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def _flagged(name: str, root: Path, lst: str) -> set[int]:
    t = blocklists.flagged(name, root)
    return {r["row_id"] for r in t.to_pylist() if r["list"] == lst}


def test_each_kind_flags_exactly_the_planted_rows(photos, workspace: Path, tmp_path: Path):
    name, src, ids = photos
    sha = [hashlib.sha256((src / f"{n}.jpg").read_bytes()).hexdigest()
           for n in ("coffee", "chelsea")]  # fmt: skip
    lists = {
        "sha": ("sha256", ["# child-safety list, sha256", sha[0].upper(), f"{sha[1]}, reported",
                           "0" * 64]),  # fmt: skip
        "md5": ("md5", [hashlib.md5((src / "astronaut.jpg").read_bytes()).hexdigest(), "f" * 32]),
        "urls": ("url", ["HTTPS://Example.INVALID/hubble_deep_field.jpg#top",
                         "https://example.invalid/not-in-pool.jpg"]),  # fmt: skip
        "optout": ("domain", ["optout.example.com", "nowhere.example.net"]),
    }
    # a pHash list entry made from a perturbed copy: resized to 60%, re-encoded at quality 70
    img = Image.open(src / "immunohistochemistry.jpg")
    buf = io.BytesIO()
    img.resize((img.width * 3 // 5, img.height * 3 // 5)).save(buf, "JPEG", quality=70)
    near = np.array(phash64(buf.getvalue()), dtype=np.int64).view(np.uint64)
    lists["ph"] = ("phash", [f"{int(near):016x}"])
    want = {"sha": {"coffee", "chelsea"}, "md5": {"astronaut"}, "urls": {"hubble_deep_field"},
            "optout": {"rocket", "coins"}, "ph": {"immunohistochemistry"}}  # fmt: skip
    for lst, (kind, lines) in lists.items():
        rec = blocklists.add(name, _write(tmp_path / f"{lst}.txt", lines), kind, who="tester",
                             root=workspace)  # fmt: skip
        assert _flagged(name, workspace, lst) == {ids[n] for n in want[lst]}, lst
        assert rec["rows"] == len(want[lst]) and rec["who"] == "tester"
    assert blocklists.flagged(name, workspace).to_pylist()[0].keys() >= {"row_id", "list", "entry"}
    # the subset holds the union; "none of blocklisted" leaves exactly the other rows
    every = {ids[n] for w in want.values() for n in w}
    sel = resolve(name, Selection(subsets_none=[blocklists.SUBSET]), workspace)
    assert set(select_ids(name, sel, workspace).tolist()) == set(ids.values()) - every
    log = blocklists.read_log(name, workspace)
    assert [(e["list"], e["rows"], e["who"]) for e in log] == [
        (lst, len(want[lst]), "tester") for lst in lists]
    # with the md5 scorer's column the same list is a join, with the same rows
    from backend.safety.run import score

    score(name, ["md5"], root=workspace)
    rec = blocklists.add(name, tmp_path / "md5.txt", "md5", "md5-join", root=workspace)
    assert _flagged(name, workspace, "md5-join") == {ids["astronaut"]}
    assert (rec["rows_without_hash"], rec["md5_from"]) == (0, "md5 column")
    assert log[1]["md5_from"] == "image bytes, read now"
    assert log[-1]["rows_blocklisted"] == len(every) == 7 and all(e["at"] for e in log)
    # the Safety page's count: how many listed rows a Selection holds
    con = connect(name, workspace)
    try:
        listed = sorted(every)
        assert blocklists.count_in(con, Selection(), listed) == 7
        only = Selection(row_ids=(ids["coffee"], ids["rocket"], ids["hubble_deep_field"]))
        assert blocklists.count_in(con, only, listed + [10**9]) == 3
        assert blocklists.count_in(con, Selection(text="no such caption at all"), listed) == 0
    finally:
        con.close()


def test_export_manifest_references_the_removal_log(photos, workspace: Path, tmp_path: Path):
    name, src, ids = photos
    before = export(name, fmt="parquet", out="before", root=workspace)
    assert "removal_log" not in json.loads(before.manifest.read_text())
    sha = hashlib.sha256((src / "coins.jpg").read_bytes()).hexdigest()
    blocklists.add(name, _write(tmp_path / "l.txt", [sha]), "sha256", root=workspace)
    clean = export(name, selection=Selection(subsets_none=[blocklists.SUBSET]), fmt="parquet",
                   out="clean", root=workspace)  # fmt: skip
    everything = export(name, fmt="parquet", out="all", root=workspace)
    got = json.loads(clean.manifest.read_text())["removal_log"]
    log_bytes = (workspace / name / blocklists.LOG).read_bytes()
    assert got["sha256"] == hashlib.sha256(log_bytes).hexdigest() and got["lines"] == 1
    assert (got["blocklisted_excluded"], got["blocklisted_rows_exported"]) == (True, 0)
    assert clean.count == 7
    full = json.loads(everything.manifest.read_text())["removal_log"]
    assert (full["blocklisted_excluded"], full["blocklisted_rows_exported"]) == (False, 1)


def test_malformed_lists_name_their_lines(tmp_path: Path):
    bad = _write(tmp_path / "bad.txt", ["# header", "a" * 64, "not-a-hash", "", "b" * 63])
    with pytest.raises(BlocklistError, match=r"2 malformed line\(s\).*line\(s\) 3, 5 "):
        blocklists.parse(bad, "sha256")
    for kind, line in (("phash", "xyz"), ("url", "ftp://x/y.jpg"), ("domain", "https://a.com/"),
                       ("md5", "0" * 31)):  # fmt: skip
        with pytest.raises(BlocklistError, match="line 1"):
            blocklists.parse(_write(tmp_path / f"{kind}.txt", [line]), kind)
    with pytest.raises(BlocklistError, match="no sha256 entries"):
        blocklists.parse(_write(tmp_path / "empty.txt", ["# nothing"]), "sha256")


def test_cli_blocklist(photos, workspace: Path, tmp_path: Path, capsys):
    name, src, ids = photos
    bad = _write(tmp_path / "bad.txt", ["c" * 64, "oops"])
    assert main(["blocklist", name, "--add", str(bad), "--kind", "sha256"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "line(s) 2" in err
    assert not (workspace / name / blocklists.LOG).exists()  # nothing applied, nothing logged
    sha = hashlib.sha256((src / "rocket.jpg").read_bytes()).hexdigest()
    good = _write(tmp_path / "ok.txt", [sha])
    assert main(["blocklist", name, "--add", str(good), "--kind", "sha256", "--list-name",
                 "ngo-2026", "--who", "Ana", "--json"]) == 0  # fmt: skip
    rec = json.loads(capsys.readouterr().out)
    assert (rec["list"], rec["rows"], rec["who"]) == ("ngo-2026", 1, "Ana")
    assert main(["blocklist", name]) == 0
    assert "ngo-2026" in capsys.readouterr().out
    assert main(["blocklist", name, "--add", str(good), "--kind", "url", "--threshold", "3"]) == 2
    assert "phash lists only" in capsys.readouterr().err


def test_url_only_pool_says_what_it_could_not_check(workspace: Path, tmp_path: Path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    urls = ["https://a.example.com/1.jpg", "https://b.example.com/2.jpg", "ftp://c.org/3.jpg"]
    pq.write_table(pa.table({"url": urls, "caption": ["a", "b", "c"]}), tmp_path / "u.parquet")
    build("urls", tmp_path / "u.parquet", "parquet", root=workspace, workers=1)
    lst = _write(tmp_path / "h.txt", ["0123456789abcdef"])
    with pytest.raises(BlocklistError, match="score urls --scorers phash"):
        blocklists.add("urls", lst, "phash", root=workspace)
    rec = blocklists.add("urls", _write(tmp_path / "m.txt", ["a" * 32]), "md5", root=workspace)
    assert (rec["rows"], rec["rows_without_hash"]) == (0, 3)  # no bytes: not checked, not "0"
    rec = blocklists.add("urls", _write(tmp_path / "d.txt", ["b.example.com"]), "domain",
                         root=workspace)  # fmt: skip
    assert rec["rows"] == 1 and rec["rows_blocklisted"] == 1


def test_row_range_units_give_the_same_matches(photos, workspace: Path, tmp_path: Path):
    """The executor path (units of 3 rows, run inline here) equals the one-pass match."""
    from backend.blocklist_match import match, match_on
    from backend.executor import Executor

    name, src, ids = photos
    con = connect(name, workspace)
    got = con.execute("SELECT sha256, phash FROM samples ORDER BY row_id").fetchall()
    con.close()
    sha = [g[0] for g in got[::2]]  # every other row
    ph = [f"{int(np.array(g[1], dtype=np.int64).view(np.uint64)):016x}" for g in got[1::3]]
    md5 = [hashlib.md5((src / f"{n}.jpg").read_bytes()).hexdigest() for n in ("coins", "camera")]
    for kind, entries in (("sha256", sha), ("phash", ph), ("md5", md5),
                          ("domain", ["optout.example.com"])):  # fmt: skip
        one, notes = match(name, kind, entries, None, workspace)
        split, split_notes = match_on(Executor("inline"), name, kind, entries, None, workspace,
                                      rows_per_unit=3)  # fmt: skip
        assert one.num_rows > 0 and split.equals(one), kind
        assert split_notes == notes
    assert not list((workspace / name).glob(".blocklist-*"))  # unit parts cleaned up
