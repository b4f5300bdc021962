"""Issue 21, "the first ten minutes": what a new user sees and trips over, each on real data.

The concepts step is recorded in the manifest (the home page's pill), and a per-shard run
leaves no ``.parts`` folder behind; offline, CLIP's absence is one calm note, not an ERROR.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import copy_demo

from backend import catalog, paths
from backend.manifest import read_manifest


@pytest.fixture(scope="module")
def home(demo_pristine: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private copy of the ingested 600-row demo."""
    root = tmp_path_factory.mktemp("first_run_ws")
    copy_demo(demo_pristine, root)
    return root


@pytest.fixture(scope="module")
def counted(home: Path) -> dict:
    """Three shapes counted per shard on a two-process local pool."""
    from backend.concepts.run import analyse
    from backend.concepts.vocab import build
    from backend.executor import Executor

    assert "concepts" not in catalog.summary("demo", home)["steps"]
    vocab = build("shapes", [("circle", []), ("square", []), ("hexagon", [])])
    return analyse("demo", vocab, home, executor=Executor("local", workers=2))


def test_concepts_step_is_recorded_and_leaves_no_parts(home: Path, counted: dict) -> None:
    from backend.concepts.run import concepts_dir, list_vocabs

    summary = counted
    step = read_manifest(paths.manifest_path("demo", home))["steps"]["concepts"]
    assert step["status"] == "done"
    assert step["params"]["vocab"] == "shapes" and step["params"]["executor"]["kind"] == "local"
    assert step["rows"] == summary["rows"] == catalog.summary("demo", home)["rows"]
    assert step["hits"] == summary["hits"] > 0
    assert step["vocabs"] == list_vocabs("demo", home) == ["shapes"]
    assert "concepts" in catalog.summary("demo", home)["steps"]
    # the per-shard parts were merged and removed, their parent folder too
    assert sorted(p.name for p in concepts_dir("demo", home).iterdir()) == ["shapes"]


def test_home_page_pill_shows_concepts_done(
    home: Path, counted: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("TAILSCOPE_HOME", str(home))
    at = AppTest.from_file(str(Path(__file__).parent.parent / "app.py"), default_timeout=90)
    at.run()
    assert not at.exception
    steps = next(m.value for m in at.markdown if "ts-steps" in m.value)
    assert re.search(r'class="ts-step done"[^>]*>✓ concepts<', steps)
    assert re.search(r'class="ts-step"[^>]*>○ embed<', steps)


# -- the first run's log: no ERROR from open_clip when CLIP weights are not to be had ----------


def test_offline_clip_is_one_calm_message(caplog: pytest.LogCaptureFixture, monkeypatch) -> None:
    from backend.models import ModelUnavailable, load_clip

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    caplog.set_level(logging.DEBUG)
    before = logging.getLogger().level, list(logging.getLogger().handlers)
    with pytest.raises(ModelUnavailable) as e:
        load_clip("ViT-B-32", "laion2b_s34b_b79k", device="cpu")
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text
    msg = str(e.value)
    assert "ViT-B-32/laion2b_s34b_b79k is unavailable" in msg and "(offline)" in msg
    assert "--clip-checkpoint PATH" in msg and "Failed to download" not in msg
    assert (logging.getLogger().level, logging.getLogger().handlers) == before  # as it was


def test_offline_clip_prints_no_error_line_outside_pytest() -> None:
    """Outside pytest the root logger has no handler: open_clip's ``logging.error`` would
    print ``ERROR:root:...`` and install a handler for good. Neither happens."""
    code = (
        "import logging\n"
        "from backend.models import ModelUnavailable, load_clip\n"
        "try:\n    load_clip(device='cpu')\nexcept ModelUnavailable as e:\n    print('note:', e)\n"
        "print('handlers', len(logging.getLogger().handlers))\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         cwd=Path(__file__).parent.parent, timeout=300)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "ERROR" not in out.stderr and "Failed to download" not in out.stderr + out.stdout
    assert out.stdout.count("is unavailable") == 1 and "handlers 0" in out.stdout


# -- progress off a terminal: a few lines, no carriage returns -------------------------------


def test_cli_step_piped_writes_a_line_per_bar(tmp_path: Path) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TAILSCOPE_HOME": str(tmp_path)}
    out = subprocess.run([sys.executable, "-m", "backend", "demo", "--rows", "300", "--no-embed"],
                         capture_output=True, text=True, env=env, timeout=300,
                         cwd=Path(__file__).parent.parent)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "\r" not in out.stderr
    # both steps take well under INTERVAL seconds: one closing line each
    assert out.stderr.splitlines() == [
        "generate demo: 300/300 items (100%)",
        "ingest demo: 1/1 shard (100%) [rows=300]",
    ]


def test_line_bar_writes_one_line_per_step() -> None:
    import io

    from backend.progress import LineBar, bar

    buf = io.StringIO()
    b = LineBar("embed img", total=1000, unit="row", file=buf, interval=0)
    for _ in range(1000):
        b.update()
    b.close()
    lines = buf.getvalue().splitlines()
    assert len(lines) == 10 and lines[0] == "embed img: 100/1,000 rows (10%)"
    assert lines[-1] == "embed img: 1,000/1,000 rows (100%)"
    stopped = LineBar("map", total=7, file=(buf := io.StringIO()), interval=3600)
    stopped.n = 3
    stopped.refresh()
    stopped.close()  # too soon for a step line; the close says where it stopped
    assert buf.getvalue() == "map: 3/7 it (42%)\n"

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert type(bar("x", file=Terminal())).__name__ == "tqdm"
    assert isinstance(bar("x", file=io.StringIO()), LineBar)


# -- rejects: paged and filtered by reason -------------------------------------------------------


def _truth(home: Path) -> dict:
    import json

    return json.loads((home / "demo" / "source" / "ground_truth.json").read_text())


def test_rejects_page_and_filter_by_reason(home: Path) -> None:
    from collections import Counter

    from backend import browse
    from backend.store import connect

    planted = sorted((r["key"], r["reason"]) for r in _truth(home)["rejects"])
    con = connect("demo", home)
    try:
        every = browse.rejects(con)
        pages = [browse.rejects(con, 3, offset=o) for o in range(0, len(every) + 3, 3)]
        reasons = browse.reject_reasons(con)
        one = browse.rejects(con, 100, reason="missing caption")
        second = browse.rejects(con, 1, reason="missing caption", offset=1)
    finally:
        con.close()
    assert len(planted) > 6 and sorted((r["key"], r["reason"]) for r in every) == planted
    assert [r for p in pages for r in p] == every and not pages[-1]
    assert all(len(p) == 3 for p in pages[: len(every) // 3])
    assert reasons == dict(Counter(r for _, r in planted).most_common())
    assert sorted(r["key"] for r in one) == sorted(k for k, r in planted if r == "missing caption")
    assert second == one[1:2]


def test_home_rejects_table_pages_and_filters(home: Path, monkeypatch) -> None:
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("TAILSCOPE_HOME", str(home))
    monkeypatch.setattr("ui.home.REJECTS_SHOWN", 4)
    planted = sorted((r["reason"], r["key"]) for r in _truth(home)["rejects"])
    at = AppTest.from_file(str(Path(__file__).parent.parent / "app.py"), default_timeout=90)
    at.run()
    assert not at.exception

    def shown() -> list[tuple[str, str]]:
        t = at.dataframe[0].value
        return list(zip(t["reason"], t["key"], strict=True))

    first = shown()
    assert len(first) == 4 and [r for r, _ in first] == sorted(r for r, _ in first)
    at.number_input(key="rejects-page-demo-").set_value(2).run()
    assert len(shown()) == 4 and not set(shown()) & set(first)
    assert any("Items 5–8 of" in c.value for c in at.caption)
    at.selectbox(key="rejects-reason-demo").set_value("missing caption").run()
    want = [(r, k) for r, k in planted if r == "missing caption"]
    assert 0 < len(want) <= 4 and sorted(shown()) == want


# -- "Caption contains": whole words, like the keyword box; * for part of a word ---------------

CAPTIONS = ["a cat on a mat", "catalog of parts", "the cats", "Café au lait", "a black-cat",
            "C++ book", "über CAT", "concat"]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("cat", ["a cat on a mat", "a black-cat", "über CAT"]),
        ("cat*", ["a cat on a mat", "catalog of parts", "the cats", "a black-cat", "über CAT"]),
        ("*cat", ["a cat on a mat", "a black-cat", "über CAT", "concat"]),
        ("*cat*", [c for c in CAPTIONS if "cat" in c.lower()]),
        ("café", ["Café au lait"]),
        ("caf", []),
        ("c++", ["C++ book"]),
        ("a cat", ["a cat on a mat", "a black-cat"]),
    ],
)
def test_caption_contains_matches_words(text: str, want: list[str]) -> None:
    import duckdb

    from backend.selection import Selection

    con = duckdb.connect()
    con.execute("CREATE TABLE samples (row_id BIGINT, caption VARCHAR)")
    con.executemany("INSERT INTO samples VALUES (?, ?)", list(enumerate(CAPTIONS)))
    where, params = Selection(text=text).where({"row_id": "BIGINT", "caption": "VARCHAR"})
    got = con.execute(f"SELECT caption FROM samples WHERE {where} ORDER BY row_id", params)
    assert [c for (c,) in got.fetchall()] == want


def test_caption_contains_on_a_built_store(workspace: Path, photo_folder: Path) -> None:
    from backend import browse
    from backend.ingest import build
    from backend.selection import Selection
    from backend.store import connect

    build("photos", photo_folder, root=workspace, workers=1)
    con = connect("photos", workspace)
    try:
        keys = {t: sorted(r["key"] for r in browse.page(con, Selection(text=t), limit=50))
                for t in ("cat", "cam", "cam*", "*amer*")}  # fmt: skip
    finally:
        con.close()
    assert keys == {"cat": ["chelsea"], "cam": [], "cam*": ["camera", "chelsea"],
                    "*amer*": ["astronaut", "camera", "chelsea"]}  # fmt: skip


# -- Export page: a reload shows the background job's real format -------------------------------


def test_export_page_reload_shows_the_jobs_format(home: Path, monkeypatch) -> None:
    import time

    from streamlit.testing.v1 import AppTest

    from backend.export import jobs
    from backend.selection import Selection

    monkeypatch.setenv("TAILSCOPE_HOME", str(home))
    jobs.start("demo", "reds", "jsonl", selection=Selection(text="red"), root=home)
    deadline = time.monotonic() + 120
    while jobs.list_jobs("demo", home)[0]["state"] in ("starting", "running"):
        assert time.monotonic() < deadline, "the export job did not finish"
        time.sleep(0.5)
    assert jobs.list_jobs("demo", home)[0]["state"] == "done"
    # a fresh session is what a reload gives: no widget state at all
    page = Path(__file__).parent.parent / "pages/9_Export.py"
    at = AppTest.from_file(str(page), default_timeout=90)
    at.run()
    assert not at.exception, at.exception
    assert at.selectbox(key="w.export.fmt").value == "jsonl"
    shown = [s.value for s in at.success]
    assert any("**reds** · JSON lines" in v for v in shown), shown
    # the user's own choice is kept on the next run
    at.selectbox(key="w.export.fmt").set_value("csv").run()
    assert at.selectbox(key="w.export.fmt").value == "csv"


# -- the keyword index follows the store: a rebuilt store refuses the old index ----------------


def test_keyword_index_refused_after_a_store_rebuild(workspace: Path, photo_folder: Path,
                                                     capsys) -> None:  # fmt: skip
    import json

    import pyarrow as pa

    from backend import keyword, keyword_build, keyword_errors
    from backend.cli import main
    from backend.columns import add_columns
    from backend.ingest import build
    from backend.search import resolve_keywords
    from backend.selection import Selection
    from backend.store import connect

    def cat_keys() -> list[str]:
        sel = resolve_keywords("photos", Selection(keywords="tabby"), workspace)
        con = connect("photos", workspace)
        try:
            ids = list(sel.keyword_ids)
            return [k for (k,) in con.execute(
                "SELECT key FROM samples WHERE list_contains(?, row_id) ORDER BY key", [ids])
                .fetchall()]  # fmt: skip
        finally:
            con.close()

    build("photos", photo_folder, root=workspace, workers=1)
    keyword_build.build_dataset("photos", workspace)
    assert cat_keys() == ["chelsea"]
    # derived columns swap in a new store file but keep the build: the index stays usable
    add_columns("photos", pa.table({"row_id": pa.array([0], pa.int64()), "x": [1.0]}), workspace)
    assert cat_keys() == ["chelsea"]
    # a rebuild from changed captions (and one more row: row ids move)
    (photo_folder / "chelsea.txt").write_text("a cat looking at the camera")
    (photo_folder / "aaa.txt").write_text("a tabby kitten asleep")
    (photo_folder / "aaa.jpg").write_bytes((photo_folder / "coffee.jpg").read_bytes())
    build("photos", photo_folder, root=workspace, workers=1)
    with pytest.raises(keyword_errors.KeywordIndexStale, match="python -m backend index photos"):
        cat_keys()
    assert main(["search", "photos", "--keywords", "tabby"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "earlier build of the store" in err[0]
    keyword_build.build_dataset("photos", workspace)
    assert cat_keys() == ["aaa"]
    # an index from before build ids were recorded: judged by its build time
    meta_path = keyword.index_dir("photos", workspace).resolve() / "meta.json"
    meta = json.loads(meta_path.read_text())
    del meta["store_build"]
    meta_path.write_text(json.dumps(meta))
    keyword._CACHE.clear()
    assert cat_keys() == ["aaa"]  # built after the store's ingest: kept
    meta_path.write_text(json.dumps({**meta, "built_at": "2001-01-01T00:00:00+0000"}))
    keyword._CACHE.clear()
    with pytest.raises(keyword_errors.KeywordIndexStale):
        cat_keys()


# -- no nanobind "leak" report at exit ----------------------------------------------------------

_APP_THEN_EXIT = """
import sys
import torch  # noqa: F401 - with torch loaded, teardown order left DuckDB objects alive
from streamlit.testing.v1 import AppTest
at = AppTest.from_file(sys.argv[1], default_timeout=120)
at.run()
assert not at.exception, at.exception
{extra}
print("ran", len(at.markdown))
"""


def test_no_nanobind_leak_report_after_the_app_ran(home: Path) -> None:
    """DuckDB's binding lists every object alive at interpreter teardown as a leak: a page of
    noise after each pytest run. The cached store connections are closed at exit; without
    that (the second run unregisters it) the report is there, so this test can see it."""
    app = str(Path(__file__).parent.parent / "app.py")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TAILSCOPE_HOME": str(home)}

    def run(extra: str) -> subprocess.CompletedProcess:
        code = _APP_THEN_EXIT.format(extra=extra)
        return subprocess.run([sys.executable, "-c", code, app], capture_output=True, text=True,
                              env=env, cwd=Path(app).parent, timeout=300)  # fmt: skip

    ours = run("")
    assert ours.returncode == 0 and "ran" in ours.stdout, ours.stderr[-2000:]
    assert "nanobind" not in ours.stderr, ours.stderr[-2000:]
    bare = run("import atexit, ui.state; atexit.unregister(ui.state._drop_cached_connections)")
    assert bare.returncode == 0, bare.stderr[-2000:]
    assert "nanobind: leaked" in bare.stderr


# -- relocate: the source folder moved ----------------------------------------------------------


def test_relocate_after_moving_the_source(workspace: Path, photo_folder: Path, tmp_path: Path,
                                          capsys) -> None:  # fmt: skip
    import hashlib

    from backend import browse
    from backend.cli import main
    from backend.ingest import build
    from backend.media import MediaError, image_bytes
    from backend.relocate import RelocateError, relocate
    from backend.selection import Selection
    from backend.store import connect
    from backend.subsets import build_fingerprint

    def rows() -> list[dict]:
        con = connect("photos", workspace)
        try:
            return [{**r, **browse.row(con, r["row_id"])}
                    for r in browse.page(con, Selection(), limit=100)]  # fmt: skip
        finally:
            con.close()

    build("photos", photo_folder, root=workspace, workers=1)
    before = rows()
    assert len(before) == 8 and all(image_bytes(r) for r in before)
    fingerprint = build_fingerprint("photos", workspace)
    moved = tmp_path / "elsewhere" / "photos-moved"
    moved.parent.mkdir()
    shutil.move(str(photo_folder), str(moved))
    for r in before:
        with pytest.raises(MediaError):
            image_bytes(r)
    # a folder holding files of the same names but other bytes is refused, nothing changes
    impostor = tmp_path / "impostor"
    shutil.copytree(moved, impostor)
    (impostor / "coffee.jpg").write_bytes((impostor / "rocket.jpg").read_bytes())
    (impostor / "chelsea.jpg").write_bytes((impostor / "rocket.jpg").read_bytes())
    with pytest.raises(RelocateError, match="not the file that was ingested"):
        relocate("photos", impostor, workspace)
    assert [r["path"] for r in rows()] == [r["path"] for r in before]
    assert main(["relocate", "photos", "--source", str(tmp_path / "nowhere")]) == 2
    assert "does not exist" in capsys.readouterr().err
    # the real new place
    assert main(["relocate", "photos", "--source", str(moved)]) == 0
    assert "8 rows now read from" in capsys.readouterr().out
    after = rows()
    assert [r["row_id"] for r in after] == [r["row_id"] for r in before]
    for r in after:
        assert r["path"].startswith(str(moved) + "/")
        assert hashlib.sha256(image_bytes(r)).hexdigest() == r["sha256"]
    assert build_fingerprint("photos", workspace) == fingerprint  # same build: indexes hold
    m = read_manifest(paths.manifest_path("photos", workspace))
    assert m["source"] == str(moved) and m["relocated"][-1]["checked"] == 8


def test_packaged_text_model_loads_without_a_progress_bar() -> None:
    code = ("from backend.models import load_minilm\n"
            "print(load_minilm('cpu').encode_texts(['a cat on a mat']).shape)\n")  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         cwd=Path(__file__).parent.parent, timeout=300)  # fmt: skip
    assert out.returncode == 0 and "(1, 384)" in out.stdout, out.stderr
    assert "Loading weights" not in out.stderr and "\r" not in out.stderr, out.stderr[-500:]
