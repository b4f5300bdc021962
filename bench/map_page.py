"""Map page: payload and time to first points drawn, vs a plain scattergl of every point.

    .venv/bin/python bench/map_page.py [--sizes 10000 100000 1000000] [--dir DIR]

Data: a synthetic store per N (DuckDB, in a temp workspace) with ``map_x``/``map_y`` from a
seeded mixture of 40 Gaussian blobs, a ``cluster`` per row, a score column and ~55-character
captions of random words (hover text).

Ours: the figure the Map page sends (``backend.mapview.points`` + ``density`` above the draw
limit, ``ui.map_figure.figure``), coloured by cluster, with cluster labels. Baseline, in the same
run: ``go.Scattergl`` of all N points with their full captions as hover text, coloured by
cluster. Payload = the figure JSON Streamlit puts in the page's websocket message
(``plotly.io.to_json``; the rest of the page is a few kB). Time to first points drawn: a
file:// page in headless Chromium (/usr/bin/chromium, software WebGL) holding plotly.js and
the figure JSON, from navigation start until ``Plotly.newPlot`` resolved and two animation
frames passed (so the WebGL canvas has painted). Server time: query + figure + JSON.
"""

from __future__ import annotations

import os
import sys

sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

import argparse  # noqa: E402
import platform  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import plotly  # noqa: E402
import plotly.graph_objects as go  # noqa: E402
import plotly.io as pio  # noqa: E402
import pyarrow as pa  # noqa: E402

from backend import mapview, paths  # noqa: E402
from backend.selection import Selection  # noqa: E402
from backend.store import connect, create_store, swap_in  # noqa: E402
from ui.map_figure import figure  # noqa: E402

WORDS = (
    "red blue green small large photo close up of a the cat dog car tree house street "
    "night day sky sea beach mountain city people man woman child food plate cup"
).split()
PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"


def make_store(root: Path, n: int, seed: int = 0) -> None:
    """A ``samples`` table of n rows with map coordinates, clusters, a score and captions."""
    rng = np.random.default_rng(seed)
    k = 40
    centres = rng.normal(scale=8, size=(k, 2))
    cluster = rng.integers(0, k, n)
    xy = centres[cluster] + rng.normal(scale=rng.uniform(0.4, 1.5, k)[cluster, None], size=(n, 2))
    vocab = np.array(WORDS)
    words = vocab[rng.integers(0, len(vocab), (n, 9))]
    captions = [" ".join(w) for w in words]
    table = pa.table({
        "row_id": np.arange(n, dtype=np.int64),
        "key": [f"{i:09d}" for i in range(n)],
        "caption": captions,
        "shard": [f"{i // 10_000:05d}.tar" for i in range(n)],
        "score": rng.random(n).astype(np.float32),
        "map_x": xy[:, 0],
        "map_y": xy[:, 1],
        "cluster": cluster.astype(np.int32),
    })  # fmt: skip
    ds = paths.dataset_dir("bench", root)
    ds.mkdir(parents=True, exist_ok=True)
    tmp = ds / ".new.duckdb"
    con = create_store(tmp)
    con.register("t", table)
    con.execute("CREATE TABLE samples AS SELECT * FROM t")
    con.close()
    swap_in(tmp, ds)


def ours(root: Path) -> tuple[str, float]:
    """The Map page's figure JSON and the server time to make it."""
    t0 = time.perf_counter()
    con = connect("bench", root)
    sel = Selection()
    pts = mapview.points(con, sel, "cluster")
    frame = mapview.extent(con)
    dens = mapview.density(con, sel, frame) if pts.sampled else None
    labels = mapview.clusters(con, sel)
    con.close()
    fig, _ = figure(pts, frame, "cluster", labels, dens)
    spec = pio.to_json(fig, validate=False)
    return spec, time.perf_counter() - t0


def baseline(root: Path) -> tuple[str, float]:
    """A plain scattergl of every point, full captions as hover text."""
    t0 = time.perf_counter()
    con = connect("bench", root)
    got = con.execute("SELECT map_x, map_y, cluster, caption FROM samples").fetchnumpy()
    con.close()
    fig = go.Figure(
        go.Scattergl(
            x=got["map_x"],
            y=got["map_y"],
            mode="markers",
            marker={"color": got["cluster"], "size": 3},
            hovertext=list(got["caption"]),
        )
    )
    spec = pio.to_json(fig, validate=False)
    return spec, time.perf_counter() - t0


PAGE = """<!doctype html><html><head><meta charset="utf-8">
<script src="{js}"></script></head><body><div id="g" style="width:1000px;height:620px"></div>
<script type="application/json" id="spec">{spec}</script>
<script>
window.drawn = (async () => {{
  const t0 = performance.now();  // plotly.js is loaded (Streamlit has it already)
  const fig = JSON.parse(document.getElementById('spec').textContent);
  await Plotly.newPlot('g', fig.data, fig.layout, {{displaylogo: false}});
  await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
  return [t0, performance.now()];
}})();
</script></body></html>"""


def draw_s(browser, spec: str, work: Path, tag: str) -> tuple[float, float]:
    """Seconds from plotly.js ready to the figure drawn (JSON parse + plot + two frames), and
    from navigation start (plus loading plotly.js itself), in a fresh page."""
    html = work / f"{tag}.html"
    html.write_text(PAGE.format(js=PLOTLY_JS.as_uri(), spec=spec.replace("</", "<\\/")))
    page = browser.new_page(viewport={"width": 1100, "height": 700})
    try:
        page.goto(html.as_uri(), timeout=300_000)
        t0, t1 = page.evaluate("() => window.drawn")
        return (t1 - t0) / 1000, t1 / 1000
    finally:
        page.close()
        html.unlink()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    p.add_argument("--dir", type=Path, help="work folder (default: a temp folder, removed)")
    args = p.parse_args(argv)
    from playwright.sync_api import sync_playwright

    work = Path(tempfile.mkdtemp(prefix="bench-map-", dir=args.dir))
    print(f"# map page bench · {platform.processor() or platform.machine()} · "
          f"{os.cpu_count()} cpus · plotly {plotly.__version__} · headless Chromium, "
          f"software WebGL · draw limit {mapview.DRAW_LIMIT:,}")  # fmt: skip
    print(f"{'N':>9} {'':9} {'payload MB':>10} {'server s':>9} {'drawn s':>8} {'+js s':>6}  "
          f"{'payload ÷':>9} {'drawn ÷':>8}")  # fmt: skip
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path="/usr/bin/chromium",
                args=["--no-sandbox", "--enable-unsafe-swiftshader", "--use-angle=swiftshader"],
            )
            for n in args.sizes:
                root = work / f"n{n}"
                make_store(root, n)
                spec_o, t_o = ours(root)
                spec_b, t_b = baseline(root)
                d_o, full_o = draw_s(browser, spec_o, work, "ours")
                d_b, full_b = draw_s(browser, spec_b, work, "base")
                mb_o, mb_b = len(spec_o.encode()) / 1e6, len(spec_b.encode()) / 1e6
                print(f"{n:>9,} {'map page':9} {mb_o:>10.2f} {t_o:>9.2f} {d_o:>8.2f} "
                      f"{full_o:>6.2f}  {mb_b / mb_o:>8.1f}x {d_b / d_o:>7.1f}x")  # fmt: skip
                print(f"{'':>9} {'baseline':9} {mb_b:>10.2f} {t_b:>9.2f} {d_b:>8.2f} "
                      f"{full_b:>6.2f}")  # fmt: skip
                shutil.rmtree(root)
            browser.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("drawn s: plotly.js ready → points painted; +js s: from navigation start, loading "
          "plotly.js too. Ratios: baseline ÷ map page (payload, drawn s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
