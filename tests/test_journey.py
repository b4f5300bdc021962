"""The whole point of exploring, in a real browser: filter on Browse, box a region on the Map,
save the rows as a subset, export it, and get exactly the rows the page counted."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from conftest import copy_demo

from backend import subsets
from backend.store import connect

SQL = "width >= 256"


@pytest.fixture(scope="module")
def mapped(demo_mapped: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private copy of the session's embedded and mapped demo (the journey saves a subset)."""
    return copy_demo(demo_mapped, tmp_path_factory.mktemp("journey_ws"))


def rows_in(home: Path, region: list[tuple[float, float]]) -> np.ndarray:
    """Row ids matching the SQL filter whose map point lies in the drawn box (numpy, not SQL)."""
    con = connect("demo", home)
    c = con.execute(f"SELECT row_id, map_x, map_y FROM samples WHERE {SQL}").fetchnumpy()
    con.close()
    xs, ys = [p[0] for p in region], [p[1] for p in region]
    x, y = np.asarray(c["map_x"], dtype=float), np.asarray(c["map_y"], dtype=float)
    inside = (x >= min(xs)) & (x <= max(xs)) & (y >= min(ys)) & (y <= max(ys))
    return np.sort(np.asarray(c["row_id"])[inside])


@pytest.mark.browser
@pytest.mark.slow
def test_filter_lasso_save_export_counts_match(mapped: Path) -> None:
    from playwright.sync_api import sync_playwright
    from screenshot import (
        CHROMIUM_ARGS,
        VIEWPORT,
        box_select,
        chromium_path,
        drawn_region,
        serve,
        wait_idle,
    )

    if chromium_path() is None:
        pytest.skip("Chromium is not installed (no /usr/bin/chromium, none on PATH)")
    if any(s.name == "journey" for s in subsets.list_subsets("demo", mapped)):
        subsets.delete("demo", "journey", mapped)
    with serve(mapped, timeout=60) as url, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport=VIEWPORT)
        page.set_default_timeout(60_000)
        nav = page.locator('[data-testid="stSidebar"]')

        # 1. Browse: an advanced SQL filter
        page.goto(f"{url}/Browse?ds=demo")
        page.get_by_text("Advanced: SQL WHERE").click()
        area = page.locator('[class*="st-key-w-f-sql"] textarea')
        area.fill(SQL)
        area.press("Control+Enter")
        page.wait_for_function("() => location.search.includes('sel=')")
        wait_idle(page)

        # 2. Map: drag a box; the region applies to all rows, with the filter still on
        nav.get_by_role("link", name="Map").click()
        page.wait_for_selector(".st-key-map-chart .js-plotly-plot .scatterlayer")
        wait_idle(page)
        box_select(page, 0.05, 0.05, 0.75, 0.8)
        expected = rows_in(mapped, drawn_region(page))
        assert 0 < len(expected)
        shown = page.locator(".ts-count").first.inner_text()
        assert shown.startswith(f"{len(expected)} of"), shown

        # 3. Subsets: save what the page shows
        nav.get_by_role("link", name="Subsets").click()
        wait_idle(page)
        page.get_by_label("Subset name").fill("journey")
        page.get_by_label("Note").fill("filter + map box")
        page.get_by_label("Note").press("Enter")
        page.get_by_role("button", name="Save subset").click()
        page.get_by_text("Saved subset").wait_for()

        # 4. Export: the saved subset, as parquet, downloaded by the browser
        nav.get_by_role("link", name="Export").click()
        wait_idle(page)
        page.get_by_role("radio", name="Saved subset").click()
        wait_idle(page)
        page.locator('[class*="st-key-w-export-subset"] input').click()
        page.get_by_role("option", name="journey", exact=True).click()
        wait_idle(page)
        # the picker starts on the newest background export's format: ask for Parquet
        page.locator('[class*="st-key-w-export-fmt"] input').click()
        page.get_by_role("option", name="Parquet", exact=True).click()
        wait_idle(page)
        page.get_by_role("button", name="Prepare download").click()
        button = page.get_by_role("button", name=re.compile(r"^Download .* rows\)$"))
        button.wait_for()
        with page.expect_download() as dl:
            button.click()
        data = Path(dl.value.path()).read_bytes()
        browser.close()

    saved = subsets.get("demo", "journey", mapped)
    assert saved.count == len(expected)
    assert saved.selection.sql == SQL and saved.selection.polygon
    table = pq.read_table(io.BytesIO(data))
    assert table.num_rows == len(expected)
    assert np.array_equal(np.sort(table.column("row_id").to_numpy()), expected)
    assert json.dumps(saved.selection.to_dict())  # the recipe is plain JSON
