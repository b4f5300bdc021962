"""The Subsets page, the SQL box and the selection bar, driven headless through AppTest; and a
real-browser run that saves a subset from a Browse filter."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import count_text, open_page, run_ok
from streamlit.testing.v1 import AppTest

from backend import subsets
from backend.selection import Selection
from backend.store import connect
from ui.state import decode_selection, encode_selection

REPO = Path(__file__).resolve().parent.parent
BROWSE, SUBSETS = "pages/1_Browse.py", "pages/8_Subsets.py"
TIMEOUT = 60


@pytest.fixture
def ws(demo_home: Path, workspace: Path) -> Path:
    skip = shutil.ignore_patterns("source", "subsets", "index", "embeddings")
    shutil.copytree(demo_home / "demo", workspace / "demo", symlinks=True, ignore=skip)
    return workspace


def count_where(root: Path, where: str) -> int:
    con = connect("demo", root)
    try:
        return con.execute(f"SELECT count(*) FROM samples WHERE {where}").fetchone()[0]
    finally:
        con.close()


def param(at: AppTest, key: str) -> str:
    v = at.query_params[key]
    return v if isinstance(v, str) else v[0]


def chips(at: AppTest) -> list[str]:
    return [b.label for b in at.button if str(b.key).startswith("selbar-") and b.key[7:].isdigit()]


def test_sql_box_filters_browse_reports_errors_and_writes_the_url(ws: Path):
    at = open_page(BROWSE)
    at.sidebar.text_area(key="w.f.sql").input("width > 200 AND aesthetic >= 5")
    run_ok(at)
    n = count_where(ws, "width > 200 AND aesthetic >= 5")
    assert f"{n:,} of" in count_text(at) and 0 < n < 590
    assert chips(at) == ["SQL: width > 200 AND aesthetic >= 5"]
    assert decode_selection(param(at, "sel")).sql == "width > 200 AND aesthetic >= 5"
    assert param(at, "ds") == "demo"
    at.sidebar.text_area(key="w.f.sql").input("read_csv('/etc/passwd')")
    run_ok(at)
    errors = [e.value for e in at.sidebar.error]
    assert any("read_csv() is not allowed" in e for e in errors), errors
    assert "of" not in count_text(at)  # the bad condition is not applied: every row
    at.sidebar.text_area(key="w.f.sql").input("widht > 3")
    run_ok(at)
    assert any("did you mean 'width'" in e.value for e in at.sidebar.error)


def test_a_link_reopens_the_same_selection(ws: Path):
    sel = Selection(ranges={"width": (201, None)}, values={"shard": ["00001.tar"]})
    token, note = encode_selection(sel)
    assert note is None and "=" not in token and "/" not in token and "+" not in token
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=TIMEOUT)
    at.query_params["ds"] = "demo"
    at.query_params["sel"] = token
    at = open_page(BROWSE, run_ok(at))
    n = count_where(ws, "width >= 201 AND shard = '00001.tar'")
    assert f"{n:,} of" in count_text(at)
    labels = chips(at)  # the width slider adds its top end
    assert labels[0].startswith("201 ≤ width") and labels[1:] == ["shard in 00001.tar"]
    big, note = encode_selection(Selection(row_ids=tuple(range(1000))))
    assert decode_selection(big) == Selection() and "1,000 chosen rows" in note


def test_subsets_page_save_combine_compare_use_delete(ws: Path):
    # (AppTest does not carry widget values across switch_page; the browser test below does
    # Browse → Subsets for real)
    at = open_page(SUBSETS)
    assert any("No subsets yet" in m.value for m in at.markdown)
    at.sidebar.text_area(key="w.f.sql").input("width > 200")
    run_ok(at)
    assert chips(at) == ["SQL: width > 200"]  # the bar shows the Selection on this page too
    assert f"{count_where(ws, 'width > 200'):,} of" in count_text(at)
    at.text_input(key="w.sub.name").input("wide")
    at.text_input(key="w.sub.note").input("wider than 200")
    at.button(key="sub-save").click()
    run_ok(at)
    wide = subsets.get("demo", "wide", ws)
    assert wide.count == count_where(ws, "width > 200") and wide.note == "wider than 200"
    assert any("Saved subset **wide**" in s.value for s in at.success)
    # a bad name is refused inline, nothing written
    at.text_input(key="w.sub.name").input("../evil")
    at.button(key="sub-save").click()
    run_ok(at)
    assert any("bad subset name" in e.value for e in at.error)
    subsets.save("demo", "pretty", Selection(ranges={"aesthetic": (5, None)}), ws)
    run_ok(at)
    table = at.dataframe[0].value
    assert list(table["Subset"]) == ["pretty", "wide"] and list(table["Rows"])[1] == wide.count
    # combine: wide ∩ pretty
    at.selectbox(key="w.sub.a").select("wide")
    at.selectbox(key="w.sub.op").select("intersection")
    at.selectbox(key="w.sub.b").select("pretty")
    at.text_input(key="w.sub.as").input("both")
    at.button(key="sub-combine").click()
    run_ok(at)
    assert subsets.get("demo", "both", ws).count == count_where(
        ws, "width > 200 AND aesthetic >= 5"
    )
    # compare shows sizes and overlap
    at.selectbox(key="w.sub.cmp_a").select("wide")
    at.selectbox(key="w.sub.cmp_b").select("pretty")
    run_ok(at)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["In both"] == f"{count_where(ws, 'width > 200 AND aesthetic >= 5'):,}"
    assert metrics["A · wide"] == f"{wide.count:,}"
    # a stale subset warns
    rec = ws / "demo" / "subsets" / "pretty.json"
    rec.write_text(rec.read_text().replace(wide.build, "0ldbuild0000"))
    at.selectbox(key="w.sub.pick").select("pretty")
    run_ok(at)
    assert any("older build" in w.value for w in at.warning)
    # delete (inside its confirm popover)
    at.button(key="sub-delete").click()
    run_ok(at)
    assert [s.name for s in subsets.list_subsets("demo", ws)] == ["both", "wide"]
    # use as selection: Browse shows exactly the subset's rows
    at.selectbox(key="w.sub.pick").select("both")
    at.button(key="sub-use").click()
    run_ok(at)
    run_ok(at)
    assert "in subset both" in chips(at)
    assert f"{subsets.get('demo', 'both', ws).count:,} of" in count_text(at)


# -- a real browser --------------------------------------------------------------------------


@pytest.fixture
def served(ws: Path) -> Iterator[str]:
    from screenshot import chromium_path, serve

    if chromium_path() is None:
        pytest.skip("Chromium is not installed")
    with serve(ws, timeout=60) as url:
        yield url


@pytest.mark.browser
@pytest.mark.slow
def test_browser_saves_a_subset_from_a_browse_filter(served: str, ws: Path):
    from playwright.sync_api import sync_playwright
    from screenshot import CHROMIUM_ARGS, VIEWPORT, chromium_path, wait_idle

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        page = b.new_page(viewport=VIEWPORT)
        page.set_default_timeout(60_000)
        page.goto(f"{served}/Browse")
        box = page.get_by_text("Advanced: SQL WHERE")
        box.click()
        area = page.locator('[class*="st-key-w-f-sql"] textarea')
        area.fill("width > 200 AND aesthetic >= 5")
        area.press("Control+Enter")
        n = count_where(ws, "width > 200 AND aesthetic >= 5")
        page.get_by_text(f"{n:,}", exact=True).first.wait_for()
        assert "sel=" in page.url
        page.get_by_role("link", name="Subsets").click()
        wait_idle(page)
        page.get_by_label("Subset name").fill("wide_pretty")
        page.get_by_label("Note").fill("from the browser")
        page.get_by_label("Note").press("Enter")
        page.get_by_role("button", name="Save subset").click()
        page.get_by_text("Saved subset").wait_for()
        b.close()
    s = subsets.get("demo", "wide_pretty", ws)
    assert s.count == n and s.note == "from the browser"
    assert s.selection.sql == "width > 200 AND aesthetic >= 5"
