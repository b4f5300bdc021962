"""Map page: payload and time to first points drawn, vs a plain scattergl of every point.

    .venv/bin/python bench/map_page.py [--sizes 10000 100000 1000000] [--dir DIR]
        [--demo WORKSPACE] [--variants] [--repeats 3]

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

``--demo WS``: also the demo dataset of workspace WS (its real map, labels and captions).
``--variants``: the same figure drawn other ways, each in the same run (median of
``--repeats`` draws, interleaved): its points as SVG ``scatter`` and as WebGL ``scattergl``,
and, for a sampled map, its density layer as the heatmap trace it used to be instead of the
PNG layout image (``ui.map_figure.density_image``).
"""

from __future__ import annotations

import os
import sys

sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
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
from ui.map_figure import figure, thin  # noqa: E402

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


def ours(root: Path, name: str = "bench") -> tuple[str, float, mapview.Density | None]:
    """The Map page's figure JSON, the server time to make it and its density grid (None when
    every row is drawn)."""
    t0 = time.perf_counter()
    con = connect(name, root)
    sel = Selection()
    pts = mapview.points(con, sel, "cluster")
    frame = mapview.extent(con)
    dens = mapview.density(con, sel, frame) if pts.sampled else None
    labels = mapview.clusters(con, sel, mapview.load_labels(name, root))
    view = mapview.view(con)
    con.close()
    if dens is not None:  # as the page does: fewer points where the shading shows the mass
        pts = thin(pts, dens)
    fig, _ = figure(pts, frame, "cluster", labels, dens, (), view)
    spec = pio.to_json(fig, validate=False)
    return spec, time.perf_counter() - t0, dens


def variants(spec: str, dens: mapview.Density | None) -> dict[str, str]:
    """The figure as the page sends it, and drawn other ways (see the module's doc)."""
    fig = json.loads(spec)
    pts = [t for t in fig["data"] if t.get("type") in ("scatter", "scattergl")
           and t.get("name") in ("rows", "outside the selection")]  # fmt: skip
    other = "scattergl" if pts and pts[0]["type"] == "scatter" else "scatter"
    out = {"as sent": spec}
    for t in pts:
        t["type"] = other
    out[f"points {other}"] = json.dumps(fig)
    if dens is not None:
        fig = json.loads(spec)
        fig["layout"]["images"] = []
        z = np.log1p(dens.counts.astype(np.float32)).round(3).astype(object)
        z[dens.counts == 0] = None  # empty cells transparent
        # the density trace the map had before its PNG layer
        heat = {"type": "heatmap", "z": z.tolist(), "x0": dens.x0 + dens.dx / 2, "dx": dens.dx,
                "y0": dens.y0 + dens.dy / 2, "dy": dens.dy, "showscale": False,
                "colorscale": [[0, "#eef0f4"], [1, "#5b6170"]], "hoverinfo": "skip",
                "zsmooth": "best"}  # fmt: skip
        fig["data"].insert(0, heat)
        out["density heatmap"] = json.dumps(fig)
    return out


def baseline(root: Path, name: str = "bench") -> tuple[str, float]:
    """A plain scattergl of every point, full captions as hover text."""
    t0 = time.perf_counter()
    con = connect(name, root)
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


def median_draw(browser, specs: dict[str, str], work: Path, repeats: int) -> dict[str, tuple]:
    """Label → (median drawn s, median +js s), the labels' draws interleaved."""
    got: dict[str, list[tuple[float, float]]] = {k: [] for k in specs}
    for _ in range(repeats):
        for label, spec in specs.items():
            got[label].append(draw_s(browser, spec, work, "v"))
    return {k: (statistics.median(d for d, _ in v), statistics.median(f for _, f in v))
            for k, v in got.items()}  # fmt: skip


def report(browser, label: str, root: Path, name: str, work: Path, a: argparse.Namespace) -> None:
    """One size: the page's figure against the plain baseline, then its variants."""
    spec_o, t_o, dens = ours(root, name)
    spec_b, t_b = baseline(root, name)
    drawn = median_draw(browser, {"ours": spec_o, "base": spec_b}, work, a.repeats)
    (d_o, full_o), (d_b, full_b) = drawn["ours"], drawn["base"]
    mb_o, mb_b = len(spec_o.encode()) / 1e6, len(spec_b.encode()) / 1e6
    print(f"{label:>9} {'map page':16} {mb_o:>10.2f} {t_o:>9.2f} {d_o:>8.2f} "
          f"{full_o:>6.2f}  {mb_b / mb_o:>8.1f}x {d_b / d_o:>7.1f}x")  # fmt: skip
    print(f"{'':>9} {'baseline':16} {mb_b:>10.2f} {t_b:>9.2f} {d_b:>8.2f} {full_b:>6.2f}")
    if not a.variants:
        return
    specs = variants(spec_o, dens)
    for v, (d, full) in median_draw(browser, specs, work, a.repeats).items():
        mb = len(specs[v].encode()) / 1e6
        print(f"{'':>9} {'· ' + v:16} {mb:>10.2f} {'':>9} {d:>8.2f} {full:>6.2f}", flush=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=int, nargs="*", default=[10_000, 100_000, 1_000_000])
    p.add_argument("--dir", type=Path, help="work folder (default: a temp folder, removed)")
    p.add_argument("--demo", type=Path, help="a workspace holding the demo: draw its map too")
    p.add_argument("--variants", action="store_true", help="SVG/WebGL points, heatmap/image")
    p.add_argument("--repeats", type=int, default=1, help="draws per figure (median)")
    args = p.parse_args(argv)
    from playwright.sync_api import sync_playwright

    work = Path(tempfile.mkdtemp(prefix="bench-map-", dir=args.dir))
    print(f"# map page bench · {platform.processor() or platform.machine()} · "
          f"{os.cpu_count()} cpus · plotly {plotly.__version__} · headless Chromium, "
          f"software WebGL · draw limit {mapview.DRAW_LIMIT:,} · "
          f"median of {args.repeats}")  # fmt: skip
    print(f"{'N':>9} {'':16} {'payload MB':>10} {'server s':>9} {'drawn s':>8} {'+js s':>6}  "
          f"{'payload ÷':>9} {'drawn ÷':>8}")  # fmt: skip
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path="/usr/bin/chromium",
                args=["--no-sandbox", "--enable-unsafe-swiftshader", "--use-angle=swiftshader"],
            )
            if args.demo:
                report(browser, "demo", args.demo, "demo", work, args)
            for n in args.sizes:
                root = work / f"n{n}"
                make_store(root, n)
                report(browser, f"{n:,}", root, "bench", work, args)
                shutil.rmtree(root)
            browser.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(
        "drawn s: plotly.js ready → points painted; +js s: from navigation start, loading "
        "plotly.js too. Ratios: baseline ÷ map page (payload, drawn s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
