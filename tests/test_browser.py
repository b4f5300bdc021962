"""The real app in a real browser: ``streamlit run app.py`` driven by headless Chromium.

Skipped (with the reason) only when no Chromium is installed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import PHOTOS, write_photo_folder
from screenshot import (
    CHROMIUM_ARGS,
    VIEWPORT,
    chromium_path,
    click_similar,
    open_detail,
    search,
    serve,
    wait_for_thumbs,
    wait_idle,
)

from backend.ingest import build
from backend.store import connect

pytestmark = pytest.mark.browser
WAIT_MS = 60_000
CHROMIUM = chromium_path()


@pytest.fixture(scope="module")
def app_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if CHROMIUM is None:
        pytest.skip("Chromium is not installed (no /usr/bin/chromium, none on PATH)")
    home = tmp_path_factory.mktemp("browser_ws")
    folder = tmp_path_factory.mktemp("browser_src") / "photos"
    write_photo_folder(folder)
    build("photos", folder, root=home, workers=1)
    with serve(home, timeout=60) as url:
        yield url


@pytest.fixture(scope="module")
def demo_url(demo_embedded: Path) -> Iterator[str]:
    """The app on the session's demo workspace, embedded (packaged models) and indexed."""
    if CHROMIUM is None:
        pytest.skip("Chromium is not installed (no /usr/bin/chromium, none on PATH)")
    with serve(demo_embedded, timeout=60) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        pytest.skip("Chromium is not installed (no /usr/bin/chromium, none on PATH)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=WAIT_MS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser):
    p = browser.new_page(viewport=VIEWPORT)
    p.set_default_timeout(WAIT_MS)
    try:
        yield p
    finally:
        p.close()


def cards(page) -> int:
    return page.locator('[class*="st-key-card-"]').count()


def test_home_lists_the_dataset(app_url: str, page) -> None:
    page.goto(app_url)
    card = page.locator('[class*="st-key-ds-photos"]')
    card.get_by_text("Stored at").wait_for()
    wait_idle(page, WAIT_MS)
    rows = card.locator('[data-testid="stMetric"]').filter(has_text="Rows")
    assert rows.locator('[data-testid="stMetricValue"]').inner_text() == "8"
    text = card.inner_text()
    assert "ingest" in text and "dedup" in text and "folder" in text


def test_browse_renders_thumbnails_and_detail(app_url: str, page) -> None:
    page.goto(f"{app_url}/Browse")
    assert wait_for_thumbs(page, len(PHOTOS), WAIT_MS) == len(PHOTOS)
    assert cards(page) == len(PHOTOS)
    # every thumbnail sits in a box of the same height, whatever the photo's shape
    heights = page.evaluate(
        """() => Array.from(document.querySelectorAll('[class*="st-key-card-"] img'))
        .map(i => Math.round(i.getBoundingClientRect().height))"""
    )
    assert len(set(heights)) == 1 and heights[0] > 100, heights

    dialog = open_detail(page, timeout_ms=WAIT_MS, row_id=0)  # astronaut (keys sort by name)
    caption = dialog.locator(".ts-caption-full")
    assert caption.inner_text() == PHOTOS["astronaut"]
    assert dialog.locator("img").evaluate("i => i.naturalWidth") > 0
    # 19 of ingest's own columns plus domain and tld, derived from the sidecar URL
    # (the table may come after the image and caption: wait for it, do not race it)
    dialog.get_by_text("ALL 21 COLUMNS", exact=True).wait_for(timeout=WAIT_MS)
    dialog.get_by_role("button", name="Next").click()
    page.wait_for_function(
        """c => document.querySelector('[role="dialog"] .ts-caption-full')?.innerText === c""",
        arg=PHOTOS["camera"],
        timeout=WAIT_MS,
    )


def test_caption_filter_and_empty_state(app_url: str, page) -> None:
    page.goto(f"{app_url}/Browse")
    wait_for_thumbs(page, 1, WAIT_MS)
    box = page.get_by_label("Caption contains", exact=True)
    box.fill("coffee")
    box.press("Enter")
    page.wait_for_function(
        """() => document.querySelectorAll('[class*="st-key-card-"]').length === 1""",
        timeout=WAIT_MS,
    )
    assert "1 of 8 rows match" in page.locator(".ts-count").inner_text()
    assert PHOTOS["coffee"] in page.locator('[class*="st-key-card-"]').inner_text()
    box.fill("zebra")
    box.press("Enter")
    page.get_by_text("No rows match").wait_for()
    page.get_by_role("button", name="Clear filters").click()
    wait_for_thumbs(page, len(PHOTOS), WAIT_MS)
    assert box.input_value() == ""


def card_ids(page) -> list[int]:
    """Row ids of the cards on screen, in grid order."""
    return page.eval_on_selector_all(
        '[class*="st-key-card-"]',
        "els => els.map(e => parseInt(e.className.match(/st-key-card-(\\d+)/)[1]))",
    )


def test_search_then_similar_shows_the_twins(demo_embedded: Path, demo_url: str, page) -> None:
    truth = json.loads((demo_embedded / "demo" / "source" / "ground_truth.json").read_text())
    con = connect("demo", demo_embedded)
    keys = dict(con.execute("SELECT key, row_id FROM samples").fetchall())
    sha = dict(con.execute("SELECT row_id, sha256 FROM samples").fetchall())
    caption = dict(con.execute("SELECT row_id, caption FROM samples").fetchall())
    con.close()
    group = next(  # the planted Grace Hopper twin: a real photo, watermarked
        g
        for g in truth["near_duplicates"]
        if truth["samples"][g["original"]]["source"] != "synthetic"
        and "grace hopper" in truth["samples"][g["original"]]["caption"].lower()
    )
    original = keys[group["original"]]
    twins = {keys[k] for k in group["variants"]}
    twins |= {i for i, h in sha.items() if h == sha[original] and i != original}

    page.goto(f"{demo_url}/Search")
    page.get_by_label("Query", exact=True).wait_for()
    search(page, caption[original], timeout_ms=WAIT_MS)  # Meaning: the caption's own words
    assert wait_for_thumbs(page, 24, WAIT_MS) == 24  # every result has its thumbnail
    assert "Text→image search needs CLIP" in page.locator('[data-testid="stAlert"]').inner_text()
    shown = card_ids(page)
    assert original in shown[:4], shown[:8]
    caps = page.locator('[class*="st-key-card-"] .ts-cap').all_inner_texts()
    assert caps[0] == caption[original]  # the same words are the closest meaning

    click_similar(page, original, WAIT_MS)
    head = page.locator('[class*="st-key-qhead-row"]').inner_text()
    assert f"Images like row {original}" in head and caption[original] in head
    assert wait_for_thumbs(page, len(twins), WAIT_MS) >= len(twins)
    ids = card_ids(page)
    assert set(ids[: len(twins)]) == twins and original not in ids, (twins, ids[:6])
    assert "results from images (more like this)" in page.locator(".ts-count").inner_text()
