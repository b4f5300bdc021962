"""Pages in a real browser: time from each action until Streamlit is idle again (issue 17).

    .venv/bin/python bench/pages.py [--home DIR] [--dataset demo] [--rows 10000000 ...]
        [--dir /work/scale] [--repeats 5] [--json out.json] [--no-demo]

Starts ``streamlit run app.py`` (headless, file watcher off: tests/screenshot.py's settings)
and drives Debian Chromium (Playwright, ``--no-sandbox --disable-gpu``) through: open Browse,
next page, caption filter, open details, a Search meaning query, open Map, a Map caption filter,
open Concepts, open
Safety. Each action: one warm-up, then the median (and range) of ``--repeats``. An interaction
is timed from the click or Enter until what it changes is on screen (the pager's page number,
the row count, the dialog's caption, the query's results line), its thumbnails loaded, and the
app's ``data-test-script-state`` is notRunning; an "open" is a fresh
page load of that page's address (a new tab of one browser context: a new Streamlit session
with the browser's cache warm, as a returning user has it) until the same. Repeats avoid the
server's caches where a user would miss them too: each "next page" reaches a page not seen
before, each filter and query uses other words, each detail another row.

Sizes: the demo (``--home``/``--dataset``; built with ``python -m backend demo`` when missing)
and ``--rows N`` synthetic parquet-backed datasets (``backend.synth``, generated or reused by
bench/scale_app.py's ``dataset()`` under ``--dir``): no images, and no vectors unless
``python -m backend synth-vectors NAME --index`` gave them synthetic ones (bench only) and an index;
without an index the Search query is "not run" (it says why).

Baseline, in the same run and on the same server settings: a bare Streamlit page with one
button (the framework's floor): opening it, and clicking its button. Ratios: page ÷ baseline
(open) and interaction ÷ baseline (click). Printed with each size: the load average (the
machine is shared: rely on the ratios) before, during (sampled every 5 s) and after, and the
server's peak RSS.
"""

from __future__ import annotations

import os
import sys

sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

import argparse  # noqa: E402
import contextlib  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import urllib.request  # noqa: E402
from collections.abc import Callable, Iterator  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from tests.screenshot import CHROMIUM_ARGS, VIEWPORT, free_port, stop, streamlit_cmd  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
WAIT_MS = 180_000
ONLY: list[str] = []  # --only: the actions to run (all when empty)
TARGETS = {"demo": (1.5, 0.5), "big": (3.0, 1.0)}  # (open s, interaction s)
BARE = """import streamlit as st

st.title("Bare")
n = st.session_state.get("n", 0)
st.button("Go", key="go", on_click=lambda: st.session_state.update(n=n + 1))
st.markdown(f"clicks {st.session_state.get('n', 0)}")
"""
FILTER_WORDS = {"demo": ["red", "blue", "circle", "green", "square", "yellow", "star"],
                "big": ["dog", "cat", "car", "house", "tree", "bird", "book"]}  # fmt: skip
MEANING = ["a red circle", "two blue squares", "a green triangle", "three yellow stars",
           "a purple hexagon", "an orange heart", "one black square"]  # fmt: skip

IDLE_JS = """() => { const a = document.querySelector('[data-testid="stApp"]');
    return !!a && a.getAttribute('data-test-script-state') === 'notRunning'; }"""
TEXT_JS = "(sel) => Array.from(document.querySelectorAll(sel)).map(e => e.innerText).join('|')"
CHANGED_JS = f"(a) => ({TEXT_JS})(a[0]) !== a[1]"  # the text of a[0] is no longer a[1]
THUMBS_JS = """() => Array.from(document.querySelectorAll('[class*="st-key-card-"] img'))
    .every(x => x.complete)"""
CARDS_JS = """() => document.querySelectorAll('[class*="st-key-card-"]').length > 0
    && Array.from(document.querySelectorAll('[class*="st-key-card-"] img'))
        .every(x => x.complete)"""
DIALOG_JS = """() => { const d = document.querySelector('[role="dialog"]');
    return !!d && !!d.querySelector('.ts-caption-full')
        && Array.from(d.querySelectorAll('img')).every(i => i.complete)
        && d.innerText.includes(' COLUMNS') && !!d.querySelector('.ts-cols td'); }"""
MAP_JS = """() => !!document.querySelector('.st-key-map-chart .js-plotly-plot .scatterlayer')
    || !!document.querySelector('.st-key-map-setup')"""
HERO_JS = """() => !!document.querySelector('.ts-hero')
    && Array.from(document.querySelectorAll('.js-plotly-plot'))
        .every(p => !!p.querySelector('.main-svg'))
    && Array.from(document.querySelectorAll('img')).every(i => i.complete)"""


# -- the server --------------------------------------------------------------------------------


@contextlib.contextmanager
def serve(script: Path, home: Path) -> Iterator[tuple[str, int]]:
    """``streamlit run script`` with the app's server settings; yields (url, pid)."""
    port = free_port()
    log = tempfile.NamedTemporaryFile("w+", prefix="bench-pages-", suffix=".log", delete=False)
    env = {**os.environ, "TAILSCOPE_HOME": str(home), "PYTHONUNBUFFERED": "1",
           "HF_HUB_OFFLINE": "1"}  # fmt: skip
    cmd = streamlit_cmd(str(script), port)
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"streamlit exited: {Path(log.name).read_text()[-2000:]}")
            with contextlib.suppress(OSError):
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        break
            if time.monotonic() > deadline:
                raise TimeoutError("streamlit did not start in 120 s")
            time.sleep(0.3)
        yield url, proc.pid
    finally:
        stop(proc, log, 15)


@contextlib.contextmanager
def samples(read: Callable[[], float], every: float) -> Iterator[list[float]]:
    """``read()`` now and every ``every`` seconds while the block runs: the 1-minute load
    average (what a shared machine's figures were taken under), the server's memory."""
    got, done = [read()], threading.Event()

    def sample() -> None:
        while not done.wait(every):
            got.append(read())

    worker = threading.Thread(target=sample, daemon=True)
    worker.start()
    try:
        yield got
    finally:
        done.set()
        worker.join()


def peak_rss(pid: int) -> int:
    """The process's peak resident set (VmHWM), in bytes."""
    return _status(pid, "VmHWM")


def _status(pid: int, field: str) -> int:
    """A ``kB`` field of /proc/PID/status, in bytes (0 when absent)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024
    return 0


def anon(pid: int) -> float:
    """The server's anonymous resident memory (``RssAnon``): its own memory, apart from file
    pages of memory-mapped indexes (which VmHWM counts too, and the kernel can drop)."""
    try:
        return _status(pid, "RssAnon")
    except OSError:  # (the server has stopped)
        return 0


# -- timing one action -------------------------------------------------------------------------


def open_page(page, url: str, ready_js: str) -> float:
    """Seconds from navigation to the page's script run finished and ``ready_js`` true."""
    t0 = time.perf_counter()
    page.goto(url)
    page.wait_for_function(f"() => ({ready_js})() && ({IDLE_JS})()", timeout=WAIT_MS)
    return time.perf_counter() - t0


def interact(page, act: Callable[[], None], ready_js: str, watch: str | None = None) -> float:
    """Seconds from ``act`` (a click, Enter) until what it changes is on screen (the text of
    the elements ``watch`` selects differs from before; ``ready_js``) and the run is idle.
    (Content, not the app's running flag: a fast rerun's flag can flip and back unseen.)"""
    before = page.evaluate(TEXT_JS, watch) if watch else None
    t0 = time.perf_counter()
    act()
    changed = f"({CHANGED_JS})(a)" if watch else "true"
    page.wait_for_function(f"(a) => {changed} && ({ready_js})() && ({IDLE_JS})()",
                           arg=[watch, before], timeout=WAIT_MS)  # fmt: skip
    return time.perf_counter() - t0


def settle(page, ready_js: str) -> None:
    page.wait_for_function(f"() => ({ready_js})() && ({IDLE_JS})()", timeout=WAIT_MS)
    page.wait_for_timeout(300)


# -- the actions -------------------------------------------------------------------------------


def actions(url: str, q: str, kind: str, searchable: bool) -> dict[str, Callable[[Any, int], Any]]:
    """Label → function(page, repetition) returning seconds (or a "not run" reason)."""

    def browse(page) -> None:
        page.goto(f"{url}/Browse{q}")
        settle(page, CARDS_JS)

    def next_page(page, i: int) -> float:
        browse(page)
        pager, turn = ".st-key-pager-top", page.locator(".st-key-pg-next-top button").click
        for _ in range(i):  # reach a page never shown before; only the last turn is timed
            interact(page, turn, CARDS_JS, pager)
        return interact(page, turn, CARDS_JS, pager)

    def caption_filter(page, i: int) -> float:
        browse(page)
        box = page.get_by_label("Caption contains", exact=True)
        box.fill(FILTER_WORDS[kind][i % len(FILTER_WORDS[kind])])
        return interact(page, lambda: box.press("Enter"), THUMBS_JS, ".ts-count")

    def map_filter(page, i: int) -> float:
        page.goto(f"{url}/Map{q}")
        settle(page, MAP_JS)
        box = page.get_by_label("Caption contains", exact=True)
        box.fill(FILTER_WORDS[kind][i % len(FILTER_WORDS[kind])])
        return interact(page, lambda: box.press("Enter"), MAP_JS, ".ts-count")

    def details(page, i: int) -> float:
        browse(page)
        button = page.locator('[class*="st-key-detail-"] button').nth(i)
        return interact(page, button.click, DIALOG_JS)

    def meaning(page, i: int) -> float | str:
        if not searchable:
            return (
                "not run: this dataset has no vector index (synthetic metadata only; "
                "`python -m backend synth-vectors NAME --index` adds synthetic ones)"
            )
        page.goto(f"{url}/Search{q}")
        settle(page, "() => !!document.querySelector('.ts-hero')")
        mode = page.locator('[data-testid="stButtonGroup"] button').filter(has_text="Meaning")
        if mode.count():  # (no rerun when it is already the mode: wait for idle, not a rerun)
            mode.first.click()
            page.wait_for_timeout(300)
            settle(page, "() => true")
        box = page.get_by_label("Query", exact=True)
        text = MEANING[i % len(MEANING)]
        box.fill(text)
        done = (
            "() => Array.from(document.querySelectorAll('.ts-count')).some(c => "
            f"c.innerText.includes({json.dumps(f'for “{text}” from')})) && ({THUMBS_JS})()"
        )
        return interact(page, lambda: box.press("Enter"), done)

    return {
        "open Browse": lambda page, i: open_page(page, f"{url}/Browse{q}", CARDS_JS),
        "Browse: next page": next_page,
        "Browse: caption filter": caption_filter,
        "Browse: open details": details,
        "Search: a meaning query": meaning,
        "open Map": lambda page, i: open_page(page, f"{url}/Map{q}", MAP_JS),
        "Map: caption filter": map_filter,
        "open Concepts": lambda page, i: open_page(page, f"{url}/Concepts{q}", HERO_JS),
        "open Safety": lambda page, i: open_page(page, f"{url}/Safety{q}", HERO_JS),
    }


def run_size(browser, home: Path, dataset: str, kind: str, searchable: bool,
             repeats: int) -> dict[str, Any]:  # fmt: skip
    """Every action on one dataset: warm-up, then ``repeats`` timed runs each."""
    out: dict[str, Any] = {"dataset": dataset, "load_before": os.getloadavg(), "actions": {}}
    with serve(REPO / "app.py", home) as (url, pid), \
            samples(lambda: os.getloadavg()[0], 5.0) as loads, \
            samples(lambda: anon(pid), 0.5) as memory:  # fmt: skip
        q = f"?ds={dataset}"
        ctx = browser.new_context(viewport=VIEWPORT)  # one browser cache, as a user has
        for label, fn in actions(url, q, kind, searchable).items():
            if ONLY and not any(w.lower() in label.lower() for w in ONLY):
                continue
            times: list[float] = []
            note = None
            for i in range(repeats + 1):
                page = ctx.new_page()  # a new tab: a new Streamlit session
                page.set_default_timeout(WAIT_MS)
                try:
                    got = fn(page, i)
                except Exception as e:  # noqa: BLE001 - one action failing keeps the others
                    got = f"failed: {type(e).__name__}: {str(e).splitlines()[0][:120]}"
                finally:
                    page.close()
                if isinstance(got, str):
                    note = got
                    break
                if i:  # repetition 0 is the warm-up
                    times.append(got)
            out["actions"][label] = summary(times, note)
            print(f"  {dataset:>14s}  {label:26s} {show(out['actions'][label])}", flush=True)
        ctx.close()
        out["server_peak_rss"] = peak_rss(pid)
        out["server_peak_anon"] = max(memory)
    out["load_after"] = os.getloadavg()
    out["load_during"] = {"min": min(loads), "mean": statistics.mean(loads), "max": max(loads)}
    return out


def run_bare(browser, repeats: int) -> dict[str, Any]:
    """The framework's floor: a one-button page, opened and clicked."""
    with tempfile.TemporaryDirectory(prefix="bench-bare-") as tmp:
        script = Path(tmp) / "bare.py"
        script.write_text(BARE)
        button = "() => !!document.querySelector('.st-key-go button')"
        with serve(script, Path(tmp)) as (url, _pid):
            opens, clicks = [], []
            ctx = browser.new_context(viewport=VIEWPORT)
            for i in range(repeats + 1):
                page = ctx.new_page()
                try:
                    o = open_page(page, url, button)
                    go = page.locator(".st-key-go button")
                    c = interact(page, go.click, button, '[data-testid="stMarkdown"]')
                finally:
                    page.close()
                if i:
                    opens.append(o)
                    clicks.append(c)
            ctx.close()
    return {"open": summary(opens, None), "click": summary(clicks, None)}


def summary(times: list[float], note: str | None) -> dict[str, Any]:
    if note or not times:
        return {"not_run": note or "no timing"}
    return {"median_s": statistics.median(times), "min_s": min(times), "max_s": max(times),
            "runs": times}  # fmt: skip


def show(r: dict[str, Any]) -> str:
    if "not_run" in r:
        return r["not_run"]
    return f"{r['median_s']:.2f} s ({r['min_s']:.2f}–{r['max_s']:.2f})"


# -- sizes -------------------------------------------------------------------------------------


def demo_home(home: Path, dataset: str) -> Path:
    from backend import paths

    if not paths.store_path(dataset, home).exists():
        print(f"building the demo in {home} (python -m backend demo, ~5 min) …", flush=True)
        env = {**os.environ, "TAILSCOPE_HOME": str(home), "HF_HUB_OFFLINE": "1"}
        subprocess.run([sys.executable, "-m", "backend", "demo", "--name", dataset], cwd=REPO,
                       env=env, check=True)  # fmt: skip
    return home


def has_index(root: Path, name: str) -> bool:
    """Whether ``name`` has a vector index to search (``python -m backend synth-vectors``)."""
    from backend.search import index_path, ondisk_path

    return any(index_path(name, k, root).is_file() or ondisk_path(name, k, root).is_dir()
               for k in ("img", "text"))  # fmt: skip


def synthetic(root: Path, rows: int) -> str:
    from bench.scale_app import dataset

    name, rec = dataset(root, rows)
    print(f"{name}: {'reused' if rec['reused'] else 'generated'}", flush=True)
    return name


def table(results: dict[str, Any], bare: dict[str, Any]) -> str:
    sizes = list(results)
    head = "| action | target | " + " | ".join(f"{s} median s (range) | ÷ base" for s in sizes)
    lines = [head + " |", "|---|---|" + "---:|---:|" * len(sizes)]
    labels = next(iter(results.values()))["actions"]  # (the same actions at every size)
    for label in labels:
        is_open = label.startswith("open")
        base = bare["open" if is_open else "click"].get("median_s")
        cells = []
        for s in sizes:
            r = results[s]["actions"][label]
            if "not_run" in r:
                cells.append("not run | –")
            else:
                cells.append(f"{r['median_s']:.2f} ({r['min_s']:.2f}–{r['max_s']:.2f}) | "
                             f"{r['median_s'] / base:.1f}×")  # fmt: skip
        target = " / ".join(f"≤ {TARGETS[k][0 if is_open else 1]:g}" for k in
                            (["demo"] if sizes == ["demo"] else ["demo", "big"]))  # fmt: skip
        lines.append(f"| {label} | {target} | " + " | ".join(cells) + " |")
    b = bare
    lines.append(f"| baseline: bare page open / button click | – | "
                 f"{b['open']['median_s']:.2f} / {b['click']['median_s']:.2f} |")  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--home", type=Path, help="the demo's workspace (default: TAILSCOPE_HOME)")
    p.add_argument("--dataset", default="demo")
    p.add_argument("--no-demo", action="store_true", help="only the --rows sizes")
    p.add_argument("--rows", type=int, nargs="*", default=[],
                   help="synthetic sizes, e.g. 10000000 100000000")  # fmt: skip
    p.add_argument("--dir", type=Path, default=Path("/work/scale"), help="synthetic datasets")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--only", nargs="*", default=[], help="actions whose label contains a word")
    p.add_argument("--json", type=Path)
    a = p.parse_args(argv)
    ONLY[:] = a.only
    from playwright.sync_api import sync_playwright

    from backend import paths

    exe = "/usr/bin/chromium"
    if not Path(exe).is_file():
        print("bench/pages.py needs Debian's chromium at /usr/bin/chromium (apt install chromium)")
        return 2
    results: dict[str, Any] = {}
    print(f"# pages bench · {os.cpu_count()} cpus · load {os.getloadavg()[0]:.2f} at start",
          flush=True)  # fmt: skip
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS)
        try:
            bare = run_bare(browser, a.repeats)
            print(f"  baseline: open {show(bare['open'])}, click {show(bare['click'])}")
            if not a.no_demo:
                home = demo_home((a.home or paths.workspace()).resolve(), a.dataset)
                results["demo"] = run_size(browser, home, a.dataset, "demo", True, a.repeats)
            for rows in a.rows:
                a.dir.mkdir(parents=True, exist_ok=True)
                name = synthetic(a.dir.resolve(), rows)
                searchable = has_index(a.dir.resolve(), name)
                results[f"{rows:.0e}"] = run_size(browser, a.dir.resolve(), name, "big",
                                                  searchable, a.repeats)  # fmt: skip
        finally:
            browser.close()
    if not results:
        print("nothing measured: give --rows or drop --no-demo")
        return 2
    print()
    print(table(results, bare))
    for s, r in results.items():
        d = r["load_during"]
        print(f"{s}: load average {r['load_before'][0]:.2f} before, {d['min']:.2f}–{d['max']:.2f} "
              f"(mean {d['mean']:.2f}) during, {r['load_after'][0]:.2f} after; server peak RSS "
              f"{r['server_peak_rss'] / 1e9:.2f} GB (anonymous, sampled: "
              f"{r.get('server_peak_anon', 0) / 1e9:.2f} GB)")  # fmt: skip
    if a.json:
        a.json.write_text(json.dumps({"sizes": results, "baseline": bare}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
