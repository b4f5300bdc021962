"""Shared-server mode (issue 16): no build buttons, no absolute server paths, downloads capped;
and the SQL box on the Browse page with casts, refusals and the time limit, on real data."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import copy_demo, run_ok
from streamlit.testing.v1 import AppTest

from backend import bounded, synth
from backend.selection import Selection
from ui import export as ui_export
from ui import shared

REPO = Path(__file__).resolve().parent.parent


def run(path: str) -> AppTest:
    return run_ok(AppTest.from_file(str(REPO / path), default_timeout=120))


def page_text(at: AppTest) -> str:
    parts = [m.value for m in at.markdown] + [c.value for c in at.caption]
    parts += [e.value for kind in ("info", "warning", "error") for e in at.get(kind)]
    return "\n".join(str(p) for p in parts)


@pytest.fixture
def demo_ws(demo_pristine: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "ws"
    copy_demo(demo_pristine, home)
    monkeypatch.setenv("TAILSCOPE_HOME", str(home))
    return home


def test_shared_mode_follows_the_bind_address_unless_set(monkeypatch) -> None:
    monkeypatch.delenv(shared.SHARED_ENV, raising=False)
    import streamlit as st

    monkeypatch.setattr(st, "get_option", lambda key: "0.0.0.0")
    assert shared.is_shared()
    monkeypatch.setattr(st, "get_option", lambda key: "127.0.0.1")
    assert not shared.is_shared()
    monkeypatch.setenv(shared.SHARED_ENV, "1")
    assert shared.is_shared()
    monkeypatch.setattr(st, "get_option", lambda key: "")
    monkeypatch.setenv(shared.SHARED_ENV, "0")
    assert not shared.is_shared()


def test_paths_are_shown_relative_to_the_workspace(demo_ws: Path, monkeypatch) -> None:
    monkeypatch.delenv(shared.PATHS_ENV, raising=False)
    assert shared.show_path(demo_ws / "demo" / "exports") == "demo/exports"
    assert shared.show_path(demo_ws) == "ws"
    assert shared.show_path("/srv/data/pools/laion/part-0.tar") == "…/laion/part-0.tar"
    monkeypatch.setenv(shared.PATHS_ENV, "1")
    assert shared.show_path(demo_ws / "demo") == str(demo_ws / "demo")


def test_shared_home_names_the_cli_and_shows_no_server_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, demo_ws: Path
) -> None:
    monkeypatch.setenv(shared.SHARED_ENV, "1")
    at = run("app.py")
    text = page_text(at)
    assert str(demo_ws) not in text and str(tmp_path) not in text, "an absolute server path"
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("TAILSCOPE_HOME", str(empty))
    at = run("app.py")
    keys = [b.key for b in at.button]
    assert "build-demo" not in keys
    assert "This server is shared, so builds run from the command line" in page_text(at)
    assert "python -m backend demo" in [c.value for c in at.code]
    assert str(empty) not in page_text(at)
    monkeypatch.setenv(shared.SHARED_ENV, "0")
    assert "build-demo" in [b.key for b in run("app.py").button]


def test_shared_map_page_has_no_build_button(demo_ws: Path, monkeypatch) -> None:
    from ui import state

    monkeypatch.setattr(state, "embed_info", lambda name: {"kinds": {"img": {}}})  # embedded
    monkeypatch.setenv(shared.SHARED_ENV, "0")
    assert "map-build" in [b.key for b in run("pages/3_Map.py").button]
    monkeypatch.setenv(shared.SHARED_ENV, "1")
    at = run("pages/3_Map.py")
    assert "map-build" not in [b.key for b in at.button]
    assert "builds run from the command line on the server: `python -m backend map demo`" in (
        page_text(at))


def test_download_now_is_capped_in_bytes(demo_ws: Path, monkeypatch) -> None:
    monkeypatch.setenv(ui_export.DOWNLOAD_MB_ENV, "1")
    with pytest.raises(ui_export.DownloadTooBig, match="over the 1 MB a download may hold"):
        ui_export.download_bytes("demo", "webdataset", selection=Selection(), subset=None,
                                 columns=None, shard_size=10_000)  # fmt: skip
    name, data, mime, rows = ui_export.download_bytes(
        "demo", "csv", selection=Selection(text="red"), subset=None, columns=None,
        shard_size=10_000)  # fmt: skip
    assert name.endswith(".csv") and data.count(b"\n") == rows + 1 and rows > 0


def test_downloads_at_once_are_capped(monkeypatch) -> None:
    shared._download_slots.clear()
    monkeypatch.setenv(shared.DOWNLOADS_ENV, "2")
    with shared.download_slot() as a, shared.download_slot() as b, shared.download_slot() as c:
        assert (a, b, c) == (True, True, False)
    with shared.download_slot() as again:
        assert again
    shared._download_slots.clear()


# --- the SQL box on the Browse page ---------------------------------------------------------
def _sql(at: AppTest, text: str) -> AppTest:
    at.sidebar.text_area(key="w.f.sql").input(text)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_browse_sql_box_takes_casts_and_refuses_catalog_reads(demo_ws: Path) -> None:
    at = _sql(run("pages/1_Browse.py"), "width::DOUBLE > 300 AND (height > 0) IS TRUE")
    assert not at.error, [e.value for e in at.error]
    at = _sql(at, "contains(pg_get_viewdef(row_id), 'p')")
    errors = [e.value for e in at.error]
    assert any("pg_get_viewdef() is not allowed: it reads the catalog" in e for e in errors)
    assert any("at character 10" in e for e in errors), errors


def test_browse_sql_box_says_when_a_filter_is_too_slow(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TAILSCOPE_HOME", str(tmp_path))
    monkeypatch.setenv(bounded.SECONDS_ENV, "1")
    synth.generate("big", 200_000, 2, tmp_path, concepts=False)
    at = AppTest.from_file(str(REPO / "pages/1_Browse.py"), default_timeout=120)
    at.run()
    at = _sql(at, "regexp_matches(repeat(caption, 160), '(a|e)+z')")
    errors = [e.value for e in at.error]
    assert any(bounded.too_slow(1.0) in e for e in errors), errors
    # remembered by this session (not in the shared cache): the next rerun says it again
    assert list(at.session_state["ts.sql_timeouts"].values()) == [bounded.too_slow(1.0)]
    at.run()
    assert any(bounded.too_slow(1.0) in e.value for e in at.error)


def test_browse_says_so_when_a_page_of_rows_runs_past_the_limit(demo_ws: Path, monkeypatch) -> None:
    """The count fitted but the page of rows (a sort) did not: the message, not a crash."""
    from backend import browse
    from backend.sqlguard import QueryTimeout

    def too_slow(*a, **k):
        raise QueryTimeout(bounded.too_slow(10))

    monkeypatch.setattr(browse, "page", too_slow)
    at = run("pages/1_Browse.py")
    assert any(bounded.too_slow(10) in e.value for e in at.error), [e.value for e in at.error]
    assert "bad-clear" in [b.key for b in at.button]


@pytest.mark.parametrize(("page_file", "module"), [("pages/5_Safety.py", "ui.safety"),
                                                   ("pages/4_Concepts.py", "ui.concepts")])
def test_safety_and_concepts_say_so_when_a_query_runs_past_the_limit(
    demo_ws: Path, monkeypatch, page_file: str, module: str
) -> None:
    import importlib

    from backend.sqlguard import QueryTimeout

    def too_slow(*a, **k):
        raise QueryTimeout(bounded.too_slow(10))

    monkeypatch.setattr(importlib.import_module(module), "draw", too_slow)
    at = run(page_file)
    assert any(bounded.too_slow(10) in e.value for e in at.error), [e.value for e in at.error]


def test_shared_concepts_page_names_the_command_of_the_choices(demo_ws: Path, monkeypatch) -> None:
    monkeypatch.setenv(shared.SHARED_ENV, "0")
    assert "w.concepts.run" in [b.key for b in run("pages/4_Concepts.py").button]
    monkeypatch.setenv(shared.SHARED_ENV, "1")
    at = run("pages/4_Concepts.py")
    assert "w.concepts.run" not in [b.key for b in at.button]
    assert "`python -m backend concepts demo --vocab imagenet`" in page_text(at)
    at.radio(key="w.concepts.kind").set_value("Mined from captions").run()
    at.toggle[0].set_value(False).run()  # fold plurals off
    assert "`python -m backend concepts demo --vocab mined --no-plurals`" in page_text(at)
