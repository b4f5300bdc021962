"""Many users: N concurrent headless Chromium sessions on one Tailscope server (loopback only).

    .venv/bin/python bench/load.py [--home /tmp/demows] [--dataset demo] [--sessions 20]
                                    [--rounds 3] [--keywords '"grace hopper"']

Starts the app on the workspace (``tests/screenshot.py`` ``serve()``; without ``--home`` it
builds the 600-row demo in a temp workspace first), then each session, in its own browser
context of one Chromium, does ``--rounds`` times: Browse (cards' thumbnails loaded) → a
Keywords search on the Search page (results and thumbnails loaded) → Map (points drawn). A page
interaction is timed from ``goto``/submit to its content visible and the script run finished.

Baseline, in the same run: one session alone (after a warm-up round that loads the caches
every session then shares). With ``--attack DATASET``, instead of the N concurrent sessions,
N - 1 ordinary users run without and then with one attacker that keeps opening Browse on DATASET
with a heavy SQL condition (``HEAVY``, made of allowed functions, a new text each time so no
cache answers it); it prints the others' p95 with ÷ without the attacker, the attacker's
refusals, and the server's peak RSS against ``TAILSCOPE_QUERY_MEMORY``.
Ratios are concurrent ÷ alone. Prints p50/p95 per interaction, the
server's RSS (``/proc``, the streamlit process and its children) before and after, and errors:
a timeout, a page exception or Streamlit exception box on a page counts; there must be none.
Bounded: every wait has a timeout (``--timeout`` s) and the whole run a deadline.
"""

from __future__ import annotations

import os
import sys

# bench/keyword.py would shadow the standard library's ``keyword``: the repo root goes first.
sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

import argparse  # noqa: E402
import asyncio  # noqa: E402
import contextlib  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from tests.screenshot import CHROMIUM_ARGS, THUMBS_JS, VIEWPORT, chromium_path, serve  # noqa: E402

IDLE_JS = """() => { const a = document.querySelector('[data-testid="stApp"]');
    return !!a && a.getAttribute('data-test-script-state') === 'notRunning'; }"""
IMGS_DONE_JS = """() => Array.from(document.querySelectorAll('[class*="st-key-card-"] img'))
    .every(i => i.complete)"""
RESULTS_JS = """e => Array.from(document.querySelectorAll('.ts-count'))
    .some(c => c.innerText.includes(e))"""
EXCEPTION = '[data-testid="stException"]'
MAP_CHART = ".st-key-map-chart .js-plotly-plot"


# -- server memory -----------------------------------------------------------------------------


def _children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        with contextlib.suppress(OSError):
            out += [int(c) for c in task.read_text().split()]
    return out


def _rss(pid: int) -> int:
    """Resident bytes of one process (0 when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def server_pid() -> int:
    """The streamlit process that ``serve()`` started: our child running ``streamlit run``."""
    for pid in _children(os.getpid()):
        with contextlib.suppress(OSError):
            if b"streamlit" in Path(f"/proc/{pid}/cmdline").read_bytes():
                return pid
    raise RuntimeError("no streamlit child process found")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used (its threads included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_rss(pid: int) -> int:
    todo, total = [pid], 0
    while todo:
        p = todo.pop()
        total += _rss(p)
        todo += _children(p)
    return total


# -- one session -------------------------------------------------------------------------------


async def _idle(page, timeout_ms: int) -> None:
    await page.wait_for_selector('[data-testid="stApp"]', timeout=timeout_ms)
    await page.wait_for_function(IDLE_JS, timeout=timeout_ms)


async def _check(page, where: str) -> None:
    if await page.locator(EXCEPTION).count():
        text = await page.locator(EXCEPTION).first.inner_text()
        raise RuntimeError(f"{where}: exception on the page: {text[:300]}")


async def browse(page, url: str, q: str, t: int) -> None:
    await page.goto(f"{url}/Browse{q}")
    await page.wait_for_selector('[class*="st-key-card-"], .ts-empty', timeout=t)
    await _idle(page, t)
    await page.wait_for_function(THUMBS_JS, arg=1, timeout=t)
    await page.wait_for_function(IMGS_DONE_JS, timeout=t)


async def search(page, url: str, q: str, words: str, t: int) -> None:
    """Open Search, pick Keywords, submit ``words``; timed from goto to the results shown."""
    await page.goto(f"{url}/Search{q}")
    await page.wait_for_selector('[data-testid="stButtonGroup"]', timeout=t)
    await _idle(page, t)
    await page.locator('[data-testid="stButtonGroup"] button').filter(
        has_text="Keywords"
    ).click()
    await page.wait_for_timeout(150)
    await _idle(page, t)
    box = page.get_by_label("Query", exact=True)
    await box.fill(words)
    await box.press("Enter")
    await page.wait_for_function(RESULTS_JS, arg=f"for “{words}” from", timeout=t)
    await _idle(page, t)
    await page.wait_for_function(IMGS_DONE_JS, timeout=t)


async def map_page(page, url: str, q: str, t: int) -> None:
    await page.goto(f"{url}/Map{q}")
    await page.wait_for_selector(f"{MAP_CHART} .scatterlayer, .st-key-map-setup", timeout=t)
    await _idle(page, t)


async def session(browser, url: str, args, times: dict[str, list[float]], errors: list[str]):
    """One user: ``rounds`` × (Browse → Search → Map), each interaction timed."""
    q = f"?dataset={args.dataset}"
    t = int(args.timeout * 1000)
    ctx = await browser.new_context(viewport=VIEWPORT)
    page = await ctx.new_page()
    page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
    try:
        for _ in range(args.rounds):
            for label, step in (
                ("browse", lambda: browse(page, url, q, t)),
                ("search", lambda: search(page, url, q, args.keywords, t)),
                ("map", lambda: map_page(page, url, q, t)),
            ):
                t0 = time.perf_counter()
                try:
                    await step()
                    await _check(page, label)
                except Exception as e:  # noqa: BLE001 - counted and reported, the run goes on
                    errors.append(f"{label}: {type(e).__name__}: {str(e).splitlines()[0][:200]}")
                    continue
                times.setdefault(label, []).append(time.perf_counter() - t0)
    finally:
        await ctx.close()


HEAVY = "regexp_matches(repeat(caption, 160), '(a|e)+z') AND width <> {i}"
STOPPED = "took longer than"


async def attacker(browser, url: str, args, stop: asyncio.Event, got: dict[str, int]) -> None:
    """Keeps submitting a heavy condition on ``args.attack`` until ``stop``; counts how each
    one ended (the time-limit message, or something else)."""
    import base64
    import json

    t = int(args.timeout * 1000)
    ctx = await browser.new_context(viewport=VIEWPORT)
    page = await ctx.new_page()
    i = 0
    try:
        while not stop.is_set():
            i += 1
            sel = base64.urlsafe_b64encode(json.dumps({"sql": HEAVY.format(i=i)}).encode())
            await page.goto(f"{url}/Browse?ds={args.attack}&sel={sel.decode().rstrip('=')}")
            try:
                await page.wait_for_selector('[data-testid="stAlertContentError"]', timeout=t)
                text = await page.locator('[data-testid="stAlertContentError"]').first.inner_text()
                key = "stopped by the time limit" if STOPPED in text else text[:80]
            except Exception as e:  # noqa: BLE001 - counted, the attack goes on
                key = f"no refusal shown: {type(e).__name__}"
            got[key] = got.get(key, 0) + 1
    finally:
        await ctx.close()


async def peak_rss(pid: int, stop: asyncio.Event, out: list[int]) -> None:
    while not stop.is_set():
        out.append(tree_rss(pid))
        await asyncio.sleep(0.5)


async def run_sessions(browser, url: str, n: int, args) -> tuple[dict, list[str], float]:
    times: dict[str, list[float]] = {}
    errors: list[str] = []
    t0 = time.perf_counter()
    tasks = [asyncio.create_task(session(browser, url, args, times, errors)) for _ in range(n)]
    done, pending = await asyncio.wait(tasks, timeout=args.deadline)
    for task in pending:  # past the deadline: counted, and the figures so far still print
        task.cancel()
        errors.append(f"session: still running after the {args.deadline:.0f} s deadline")
    errors += [f"session: {t.exception()!r}" for t in done if t.exception()]
    return times, errors, time.perf_counter() - t0


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    if not xs:
        return float("nan")
    return xs[min(len(xs) - 1, max(0, round(p / 100 * len(xs) + 0.5) - 1))]


def report(title: str, times: dict[str, list[float]], base: dict[str, list[float]] | None):
    print(f"\n{title}", flush=True)
    print(f"  {'interaction':<12}{'n':>5}{'p50 s':>9}{'p95 s':>9}{'max s':>9}"
          + ("{:>16}".format("p50 vs alone") if base else ""))  # fmt: skip
    for label in ("browse", "search", "map"):
        xs = times.get(label, [])
        row = f"  {label:<12}{len(xs):>5}{pct(xs, 50):>9.2f}{pct(xs, 95):>9.2f}"
        row += f"{max(xs, default=float('nan')):>9.2f}"
        if base and base.get(label):
            row += f"{pct(xs, 50) / statistics.median(base[label]):>15.1f}×"
        print(row, flush=True)


async def main_async(url: str, args) -> int:
    from playwright.async_api import async_playwright

    pid = server_pid()
    rss_start = tree_rss(pid)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        try:
            warm = argparse.Namespace(**{**vars(args), "rounds": 1})
            _, warm_errors, _ = await run_sessions(browser, url, 1, warm)
            rss_before = tree_rss(pid)
            alone, alone_errors, _ = await run_sessions(browser, url, 1, args)
            print(f"server: {url} (pid {pid}), dataset {args.dataset!r}, {os.cpu_count()} CPUs")
            report("one session alone (baseline), after a warm-up round:", alone, None)
            if args.attack:  # the attack runs have their own baseline (no attacker)
                attack = await attack_runs(browser, url, pid, args)
                errors = attack_report(attack, args)
                print(f"errors: {len(warm_errors + alone_errors + errors)}")
                for e in (warm_errors + alone_errors + errors)[:20]:
                    print(f"  {e}")
                return 1 if warm_errors + alone_errors + errors else 0
            cpu0 = cpu_seconds(pid)
            many, errors, wall = await run_sessions(browser, url, args.sessions, args)
            cpu = cpu_seconds(pid) - cpu0
            rss_after = tree_rss(pid)
        finally:
            await browser.close()
    mib = 1 / 2**20
    report(f"{args.sessions} concurrent sessions × {args.rounds} rounds "
           f"(wall {wall:.1f} s):", many, alone)  # fmt: skip
    print(f"\nserver RSS: {rss_start * mib:.0f} MiB at start, {rss_before * mib:.0f} MiB after "
          f"the warm-up, {rss_after * mib:.0f} MiB after {args.sessions} sessions "
          f"(+{(rss_after - rss_before) * mib:.0f} MiB, "
          f"{(rss_after - rss_before) * mib / args.sessions:.1f} MiB a session)")
    n = sum(len(v) for v in many.values())
    print(f"server CPU: {cpu:.1f} s over {n} interactions ({cpu / max(n, 1):.2f} s each, "
          f"{cpu / wall:.2f} cores busy on average; the rest of the machine ran the browsers)")
    all_errors = warm_errors + alone_errors + errors
    print(f"errors: {len(all_errors)}")
    for e in all_errors[:20]:
        print(f"  {e}")
    return 1 if all_errors else 0


async def attack_runs(browser, url: str, pid: int, args) -> dict:
    """N - 1 ordinary sessions without, then with, one attacker; the peak RSS of each run."""
    out: dict = {}
    for label in ("without", "with"):
        stop, rss = asyncio.Event(), []
        got: dict[str, int] = {}
        side = [asyncio.create_task(peak_rss(pid, stop, rss))]
        if label == "with":
            side.append(asyncio.create_task(attacker(browser, url, args, stop, got)))
        times, errors, wall = await run_sessions(browser, url, args.sessions - 1, args)
        stop.set()
        await asyncio.gather(*side)
        out[label] = {"times": times, "errors": errors, "wall": wall, "rss": max(rss or [0]),
                      "attacks": got}  # fmt: skip
        report(f"{args.sessions - 1} sessions, {label} the attacker (wall {wall:.1f} s):", times,
               None)  # fmt: skip
        print(f"  peak RSS {max(rss or [0]) / 2**20:.0f} MiB; attacker: {got}", flush=True)
    return out


def attack_report(attack: dict, args) -> list[str]:
    """Prints the comparison; returns the errors of both runs."""
    mib = 1 / 2**20
    every = [x for v in attack["without"]["times"].values() for x in v]
    under = [x for v in attack["with"]["times"].values() for x in v]
    print(f"\nothers' p95 over every interaction: {pct(every, 95):.2f} s without, "
          f"{pct(under, 95):.2f} s with the attacker ({pct(under, 95) / pct(every, 95):.2f}×; "
          "target ≤ 1.5×)")
    print(f"attacker's conditions: {attack['with']['attacks']}")
    limit = os.environ.get("TAILSCOPE_QUERY_MEMORY", "2GB")
    print(f"server peak RSS: {attack['without']['rss'] * mib:.0f} MiB without, "
          f"{attack['with']['rss'] * mib:.0f} MiB with the attacker (memory_limit {limit})")
    return attack["without"]["errors"] + attack["with"]["errors"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--home", type=Path, help="workspace with the dataset (default: build demo)")
    p.add_argument("--dataset", default="demo")
    p.add_argument("--sessions", type=int, default=20)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--keywords", default='"grace hopper"', help="the Keywords query")
    p.add_argument("--timeout", type=float, default=120, help="seconds any one wait may take")
    p.add_argument("--deadline", type=float, default=900, help="seconds the whole run may take")
    p.add_argument("--attack", metavar="DATASET", help="also run the sessions without and with "
                   "one attacker submitting heavy SQL conditions on DATASET (in the workspace)")
    args = p.parse_args(argv)
    if not chromium_path():
        raise SystemExit("no chromium found (looked for /usr/bin/chromium and on PATH)")
    with contextlib.ExitStack() as stack:
        home = args.home
        if home is None:
            home = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ts-load-")))
            env = {**os.environ, "TAILSCOPE_HOME": str(home)}
            cmd = [sys.executable, "-m", "backend", "demo", "--rows", "600"]
            subprocess.run(cmd, env=env, check=True, cwd=Path(__file__).resolve().parents[1])
        url = stack.enter_context(serve(home.resolve(), timeout=120))
        return asyncio.run(main_async(url, args))


if __name__ == "__main__":
    sys.exit(main())
