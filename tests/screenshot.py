"""Start the app on a workspace and save screenshots of home, Browse and a detail view.

    .venv/bin/python tests/screenshot.py --home /tmp/uiws --dataset demo --out /tmp/shots

Writes ``home.png``, ``browse.png``, ``detail.png`` (and ``filtered.png`` with ``--filter``),
and, when the dataset is embedded, ``search_keywords.png``, ``search_meaning.png`` and
``search_similar.png`` (the queries: ``--keywords``, ``--meaning``), and ``map.png`` +
``map_selected.png`` (a box selection) when the dataset has a map (else ``map_setup.png``),
and ``safety.png`` (+ ``safety_thresholds.png``, ``safety_duplicates.png``), ``subsets.png``,
``export.png``.
Also the helpers the Playwright tests use: :func:`serve` runs ``streamlit run app.py`` as a
subprocess and stops it afterwards; :func:`wait_for_thumbs` waits until grid images loaded.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import IO

REPO = Path(__file__).resolve().parent.parent
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
VIEWPORT = {"width": 1400, "height": 900}
THUMBS_JS = """n => Array.from(document.querySelectorAll('[class*="st-key-card-"] img'))
    .filter(i => i.complete && i.naturalWidth > 0).length >= n"""


def chromium_path() -> str | None:
    if Path("/usr/bin/chromium").is_file():
        return "/usr/bin/chromium"
    return shutil.which("chromium") or shutil.which("chromium-browser")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def streamlit_cmd(script: str, port: int) -> list[str]:
    """``streamlit run script`` headless on 127.0.0.1:port, file watcher and telemetry off (the
    settings every browser test and bench/pages.py use)."""
    return [sys.executable, "-m", "streamlit", "run", script, "--server.headless", "true",
            "--server.port", str(port), "--server.address", "127.0.0.1",
            "--server.fileWatcherType", "none", "--browser.gatherUsageStats", "false"]  # fmt: skip


def stop(proc: subprocess.Popen, log: IO[str], wait: float = 10) -> None:
    """Stop a server started by :func:`serve` (kill it after ``wait`` s) and delete its log."""
    proc.terminate()
    try:
        proc.wait(timeout=wait)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)
    log.close()
    os.unlink(log.name)


@contextlib.contextmanager
def serve(home: Path, port: int | None = None, timeout: float = 60) -> Iterator[str]:
    """Run the app with ``TAILSCOPE_HOME=home``; yield its base url; always stop it."""
    port = port or free_port()
    log = tempfile.NamedTemporaryFile("w+", prefix="tailscope-app-", suffix=".log", delete=False)
    env = {**os.environ, "TAILSCOPE_HOME": str(home), "PYTHONUNBUFFERED": "1"}
    cmd = streamlit_cmd("app.py", port)
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"streamlit exited with {proc.returncode}: {_tail(log.name)}")
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"streamlit did not answer in {timeout:.0f} s: {_tail(log.name)}"
                )
            time.sleep(0.3)
        yield url
    finally:
        stop(proc, log)


def _tail(path: str, n: int = 3000) -> str:
    return Path(path).read_text(errors="replace")[-n:]


def wait_for_thumbs(page, n: int, timeout_ms: int = 60_000) -> int:
    """Wait until at least ``n`` grid thumbnails have loaded; return how many did."""
    page.wait_for_function(THUMBS_JS, arg=n, timeout=timeout_ms)
    return page.evaluate(
        """() => Array.from(document.querySelectorAll('[class*="st-key-card-"] img'))
        .filter(i => i.complete && i.naturalWidth > 0).length"""
    )


def wait_idle(page, timeout_ms: int = 60_000) -> None:
    """Wait until the script run finished (Streamlit's 'running' indicator is gone)."""
    page.wait_for_selector('[data-testid="stApp"]', timeout=timeout_ms)
    page.wait_for_function(
        """() => document.querySelector('[data-testid="stApp"]')
            .getAttribute('data-test-script-state') === 'notRunning'""",
        timeout=timeout_ms,
    )
    page.wait_for_timeout(400)


def open_detail(page, index: int = 0, timeout_ms: int = 60_000, row_id: int | None = None):
    """Click the Details button of the ``index``-th card (of row ``row_id``'s card, if given:
    the grid's order in the page may change while a rerun replaces it) once the page is idle,
    and return the dialog locator."""
    wait_idle(page, timeout_ms)
    buttons = page.locator(f".st-key-detail-{row_id} button" if row_id is not None
                           else '[class*="st-key-detail-"] button')  # fmt: skip
    buttons.nth(0 if row_id is not None else index).click()
    dialog = page.get_by_role("dialog")
    dialog.wait_for(state="visible", timeout=timeout_ms)
    page.wait_for_function(
        """() => { const d = document.querySelector('[role="dialog"]');
                   if (!d) return false;
                   const imgs = Array.from(d.querySelectorAll('img'));
                   return imgs.every(i => i.complete)
                          && !!d.querySelector('.ts-caption-full'); }""",
        timeout=timeout_ms,
    )
    return dialog


def wait_for_results(page, expect: str, timeout_ms: int = 60_000) -> None:
    """Wait until the Search summary line contains ``expect`` and every thumbnail loaded."""
    page.wait_for_function(
        """e => Array.from(document.querySelectorAll('.ts-count'))
            .some(c => c.innerText.includes(e))""",
        arg=expect,
        timeout=timeout_ms,
    )
    wait_idle(page, timeout_ms)
    page.wait_for_function(
        """() => Array.from(document.querySelectorAll('[class*="st-key-card-"] img'))
        .every(i => i.complete)""",
        timeout=timeout_ms,
    )


def search(page, text: str, mode: str | None = None, timeout_ms: int = 60_000) -> None:
    """On the Search page: pick the mode (its label, e.g. "Keywords"), type ``text``, submit,
    and wait for the results of that kind."""
    if mode:
        page.locator('[data-testid="stButtonGroup"] button').filter(has_text=mode).click()
        wait_idle(page, timeout_ms)
    box = page.get_by_label("Query", exact=True)
    box.fill(text)
    box.press("Enter")
    wait_for_results(page, f"for “{text}” from", timeout_ms)


def click_similar(page, row_id: int, timeout_ms: int = 60_000) -> None:
    """Click "Similar" on the card of ``row_id`` and wait for the more-like-this results."""
    page.locator(f".st-key-similar-{row_id} button:visible").click()  # help: 2 buttons
    page.get_by_text(f"Images like row {row_id}", exact=True).wait_for(timeout=timeout_ms)
    wait_for_results(page, "more like this", timeout_ms)


def capture_search(page, url: str, query: str, out: Path, keywords: str, meaning: str):
    """Keyword results, Meaning results (with the CLIP banner when it applies), and more like
    the first keyword result."""
    saved = []
    page.goto(f"{url}/Search{query}")
    page.wait_for_selector('[class*="st-key-search-"], [class*="st-key-card-"]')
    wait_idle(page)
    if page.locator(".st-key-search-setup").count():  # not embedded: nothing to search
        saved.append(out / "search_setup.png")
        page.screenshot(path=saved[-1])
        return saved
    search(page, keywords, "Keywords")
    saved.append(out / "search_keywords.png")
    page.screenshot(path=saved[-1])
    first = page.locator('[class*="st-key-similar-"]').first.get_attribute("class")
    row_id = int(first.split("st-key-similar-")[1].split()[0])
    search(page, meaning, "Meaning")
    saved.append(out / "search_meaning.png")
    page.screenshot(path=saved[-1])
    search(page, keywords, "Keywords")
    click_similar(page, row_id)
    saved.append(out / "search_similar.png")
    page.screenshot(path=saved[-1])
    return saved


MAP_CHART = ".st-key-map-chart .js-plotly-plot"


def open_map(page, url: str, query: str = "", timeout_ms: int = 60_000) -> bool:
    """Open the Map page; True when the map is drawn (its points on the canvas), False when
    the dataset has no map (the setup box is shown)."""
    page.goto(f"{url}/Map{query}")
    page.wait_for_selector(f"{MAP_CHART} .scatterlayer, .st-key-map-setup", timeout=timeout_ms)
    wait_idle(page, timeout_ms)
    return page.locator(MAP_CHART).count() > 0


def box_select(page, fx0: float, fy0: float, fx1: float, fy1: float, timeout_ms: int = 60_000):
    """Pick plotly's "Box Select" in the modebar and drag a box from (fx0, fy0) to (fx1, fy1),
    given as fractions of the plot area; return the box in data units (x0, x1, y0, y1)."""
    chart = page.locator(MAP_CHART)
    chart.hover()
    chart.locator('.modebar-btn[data-title="Box Select"]').click()
    area = chart.locator(".nsewdrag").first.bounding_box()
    ax, ay = area["x"] + fx0 * area["width"], area["y"] + fy0 * area["height"]
    bx, by = area["x"] + fx1 * area["width"], area["y"] + fy1 * area["height"]
    data = page.evaluate(
        """([ax, ay, bx, by]) => {
            const gd = document.querySelector('.st-key-map-chart .js-plotly-plot');
            const r = gd.querySelector('.nsewdrag').getBoundingClientRect();
            const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis;
            return [xa.p2d(ax - r.left), xa.p2d(bx - r.left),
                    ya.p2d(ay - r.top), ya.p2d(by - r.top)];
        }""",
        [ax, ay, bx, by],
    )
    page.mouse.move(ax, ay)
    page.mouse.down()
    steps = 12
    for i in range(1, steps + 1):
        page.mouse.move(ax + (bx - ax) * i / steps, ay + (by - ay) * i / steps)
    page.mouse.up()
    page.wait_for_selector(".st-key-map-clear", timeout=timeout_ms)  # the selection arrived
    wait_idle(page, timeout_ms)
    x0, x1, y0, y1 = data
    return min(x0, x1), max(x0, x1), min(y0, y1), max(y0, y1)


def drawn_region(page) -> list[tuple[float, float]]:
    """The vertices of the selected region as the page drew it (the outline shape it adds to
    the figure from the Selection's polygon)."""
    path = page.evaluate(
        """() => document.querySelector('.st-key-map-chart .js-plotly-plot')
            .layout.shapes[0].path"""
    )
    pts = path.strip("MZ ").split(" L ")
    return [(float(a), float(b)) for a, b in (p.split(",") for p in pts)]


def capture_map(page, url: str, query: str, out: Path) -> list[Path]:
    """The map (or its setup box), then a box selection with its side panel."""
    saved = [out / "map.png"]
    if not open_map(page, url, query):
        saved[0] = out / "map_setup.png"
        page.screenshot(path=saved[0])
        return saved
    page.wait_for_timeout(800)
    page.screenshot(path=saved[-1])
    box_select(page, 0.15, 0.2, 0.55, 0.6)
    page.wait_for_function(
        """() => Array.from(document.querySelectorAll('[class*="st-key-card-"] img'))
        .every(i => i.complete)"""
    )
    page.wait_for_timeout(800)
    saved.append(out / "map_selected.png")
    page.screenshot(path=saved[-1])
    return saved


def capture_pages(page, url: str, query: str, out: Path) -> list[Path]:
    """The Safety, Subsets and Export pages as they first open (whole page)."""
    saved = []
    for title in ("Safety", "Subsets", "Export"):
        page.goto(f"{url}/{title}{query}")
        page.wait_for_selector("h1, h2, .ts-hero", timeout=60_000)
        wait_idle(page)
        page.wait_for_function(
            """() => Array.from(document.querySelectorAll('img')).every(i => i.complete)"""
        )
        page.wait_for_timeout(800)
        saved.append(out / f"{title.lower()}.png")
        page.screenshot(path=saved[-1], full_page=True)
        if title == "Safety":
            saved += capture_safety_views(page, out)
    return saved


def capture_safety_views(page, out: Path) -> list[Path]:
    """The Safety page's Thresholds and Duplicates views (each a click on the view switch);
    none when the dataset has no scores (no switch)."""
    saved = []
    for view, file in (("Thresholds", "safety_thresholds"), ("Duplicates", "safety_duplicates")):
        button = page.locator('[data-testid="stButtonGroup"] button').filter(has_text=view)
        if not button.count():
            break
        button.first.click()
        page.wait_for_timeout(500)
        wait_idle(page)
        page.wait_for_function(
            """() => Array.from(document.querySelectorAll('img')).every(i => i.complete)"""
        )
        saved.append(out / f"{file}.png")
        page.screenshot(path=saved[-1], full_page=True)
    return saved


def capture(
    home: Path,
    out: Path,
    dataset: str | None,
    text_filter: str | None,
    keywords: str = '"grace hopper"',
    meaning: str = "a cup of espresso",
) -> list[Path]:
    from playwright.sync_api import sync_playwright

    exe = chromium_path()
    if not exe:
        raise SystemExit("no chromium found (looked for /usr/bin/chromium and on PATH)")
    out.mkdir(parents=True, exist_ok=True)
    query = f"?dataset={dataset}" if dataset else ""
    saved: list[Path] = []
    with serve(home) as url, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport=VIEWPORT, device_scale_factor=1)
            page.set_default_timeout(60_000)
            page.goto(f"{url}/{query}")
            page.wait_for_selector('[class*="st-key-ds-"], [class*="st-key-empty"]')
            wait_idle(page)
            saved.append(out / "home.png")
            page.screenshot(path=saved[-1])
            if page.locator('[class*="st-key-empty"]').count():
                return saved
            page.goto(f"{url}/Browse{query}")
            page.wait_for_selector('[class*="st-key-card-"], .ts-empty')
            wait_idle(page)
            page.wait_for_function(
                """() => Array.from(document.querySelectorAll('[class*="st-key-card-"] img'))
                .every(i => i.complete)"""
            )
            saved.append(out / "browse.png")
            page.screenshot(path=saved[-1])
            open_detail(page, 0)
            page.wait_for_timeout(500)
            saved.append(out / "detail.png")
            page.screenshot(path=saved[-1])
            if text_filter:
                page.keyboard.press("Escape")
                page.get_by_role("dialog").wait_for(state="hidden")
                box = page.get_by_label("Caption contains", exact=True)
                box.fill(text_filter)
                box.press("Enter")
                page.wait_for_timeout(800)
                wait_idle(page)
                saved.append(out / "filtered.png")
                page.screenshot(path=saved[-1])
            saved += capture_search(page, url, query, out, keywords, meaning)
            saved += capture_map(page, url, query, out)
            saved += capture_pages(page, url, query, out)
        finally:
            browser.close()
    return saved


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--home", type=Path, required=True, help="the workspace (TAILSCOPE_HOME)")
    p.add_argument("--dataset", help="dataset to make active (default: the first)")
    p.add_argument("--out", type=Path, default=Path("/tmp/shots"))
    p.add_argument(
        "--filter", dest="text_filter", help="also capture Browse with this caption filter"
    )
    p.add_argument("--keywords", default='"grace hopper"', help="keyword query for Search")
    p.add_argument("--meaning", default="a cup of espresso", help="Meaning query for Search")
    args = p.parse_args(argv)
    home = args.home.resolve()
    shots = capture(home, args.out, args.dataset, args.text_filter, args.keywords, args.meaning)
    for path in shots:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
