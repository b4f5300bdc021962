"""The map as a plotly figure: density layer, points, cluster labels, the selected region.

Pure data → figure (no Streamlit), so the benchmark measures the very figure the page sends.
Arrays go in as float32/int numpy arrays: plotly writes them as compact base64 typed arrays.
"""

from __future__ import annotations

import base64
import io
from dataclasses import replace
from typing import Any

import numpy as np
import plotly.graph_objects as go
from PIL import Image
from plotly.colors import qualitative

from backend.mapview import Density, MapPoints

POINTS, CONTEXT, LABELS, DENSITY, LEGEND = "points", "context", "labels", "density", "legend"
MAX_LABELS = 14
MAX_LEGEND = 12  # colour keys listed under the map; the cluster list below has them all
PALETTE = qualitative.Dark24 + qualitative.Light24
MUTED = "#c9ccd3"
HEIGHT = 620
# Label boxes are placed in data space from the plot's size in pixels: the chart is about this
# wide in the page's left column (wider screens only give labels more room), and 12 px semibold
# text is about 7.2 px a character and 16 px a line.
PLOT_PX = (680, HEIGHT - 70)
# Once the map is sampled, a cell of THIN_CELLS x THIN_CELLS density cells (1/40 of the map's
# width with the 160 x 160 grid) keeps about PER_CELL drawn points.
PER_CELL, THIN_CELLS = 12, 4
# The points are WebGL (``scattergl``) at every size. Alone in a fresh page SVG (``scatter``)
# draws the demo's 4,980 points faster with software WebGL (0.56 against 0.72 s, bench/
# map_page.py --variants), but on the page it was slower (open Map 4.64 against 3.78 s, same
# run): the page redraws the chart after its first draw, and the scattergl placeholder has
# WebGL started by the time the figure arrives.
DENSITY_LO, DENSITY_HI = (0xEE, 0xF0, 0xF4), (0x5B, 0x61, 0x70)  # empty-ish → dense cells
CHAR_PX, LINE_PX, PAD_PX = 7.2, 16.0, 3.0


def _marker_size(n: int) -> float:
    return 6.0 if n < 2_000 else 4.0 if n < 20_000 else 2.5 if n < 200_000 else 1.6


def _discrete(n: int) -> list[list[Any]]:
    """A step colour scale for category codes 0..n-1 (cmin -0.5, cmax n-0.5)."""
    scale: list[list[Any]] = []
    for i in range(max(n, 1)):
        c = PALETTE[i % len(PALETTE)]
        scale += [[i / max(n, 1), c], [(i + 1) / max(n, 1), c]]
    return scale


def _marker(pts: MapPoints, keep: np.ndarray, color_by: str | None, n: int) -> dict[str, Any]:
    m: dict[str, Any] = {"size": _marker_size(n), "opacity": 0.85 if n < 20_000 else 0.6}
    if pts.color is None:
        m["color"] = PALETTE[0]
        return m
    vals = pts.color[keep]
    if color_by == "cluster":
        codes = np.nan_to_num(vals, nan=-1).astype(np.int16)
        top = int(codes.max()) + 1 if len(codes) else 1
        m.update(color=codes, colorscale=_discrete(top), cmin=-0.5, cmax=top - 0.5)
    elif pts.categories:
        k = len(pts.categories)
        m.update(color=vals, colorscale=_discrete(k), cmin=-0.5, cmax=k - 0.5)
    else:
        bar = {"title": {"text": color_by or ""}, "thickness": 12, "len": 0.6}
        m.update(color=vals, colorscale="Viridis", showscale=True, colorbar=bar)
    return m


Box = tuple[float, float, float, float]  # x0, x1, y0, y1


def _variants(label: str) -> list[str]:
    """The label, then shorter: its first two terms, its first term."""
    terms = [t.strip() for t in label.split(",") if t.strip()]
    out = [_short(label), _short(", ".join(terms[:2])), _short(terms[0] if terms else label)]
    return list(dict.fromkeys(out))


def _overlaps(a: Box, b: Box) -> bool:
    return a[0] < b[1] and b[0] < a[1] and a[2] < b[3] and b[2] < a[3]


def place_labels(
    labels: list[dict[str, Any]],
    ranges: tuple[float, float, float, float],
    plot_px: tuple[int, int] = PLOT_PX,
    limit: int = MAX_LABELS,
) -> list[dict[str, Any]]:
    """Cluster labels that do not collide, biggest clusters first, each with its ``box`` in
    data space (``ranges``: the axes' x0, x1, y0, y1). A label tries its cluster's centre,
    then just above, below, right and left of it, then the same with shorter text; one that
    fits nowhere inside the frame is left out (its cluster is in the list under the map)."""
    x0, x1, y0, y1 = ranges
    sx, sy = (x1 - x0) / plot_px[0], (y1 - y0) / plot_px[1]
    hh = (LINE_PX / 2 + PAD_PX) * sy
    placed: list[dict[str, Any]] = []
    for c in sorted(labels, key=lambda d: -d.get("size", 0)):
        if len(placed) >= limit:
            break
        spot = _spot(c, placed, (sx, hh), ranges)
        if spot is not None:
            placed.append(spot)
    return placed


def _spot(c: dict[str, Any], placed: list[dict[str, Any]], scale: tuple[float, float],
          ranges: Box) -> dict[str, Any] | None:  # fmt: skip
    sx, hh = scale
    for text in _variants(str(c["label"])):
        hw = (len(text) * CHAR_PX / 2 + PAD_PX) * sx
        for dx, dy in ((0, 0), (0, 2), (0, -2), (1, 0), (-1, 0)):
            x, y = c["x"] + dx * (hw + 2 * sx), c["y"] + dy * hh
            box = (x - hw, x + hw, y - hh, y + hh)
            inside = ranges[0] <= box[0] and box[1] <= ranges[1] and ranges[2] <= box[2] \
                and box[3] <= ranges[3]  # fmt: skip
            if inside and not any(_overlaps(box, p["box"]) for p in placed):
                return {**c, "x": x, "y": y, "text": text, "box": box}
    return None


def _legend(pts: MapPoints, color_by: str | None, labels: list[dict[str, Any]] | None) -> list:
    """Invisible one-marker traces whose legend entries say what a colour means."""
    if pts.color is None or not (color_by == "cluster" or pts.categories):
        return []
    if color_by == "cluster":
        by_size = sorted(labels or [], key=lambda d: -d.get("size", 0))[:MAX_LEGEND]
        keys = [(int(d["cluster"]), f"{d['cluster']} · {_short(str(d['label']), 24)}")
                for d in by_size]  # fmt: skip
    else:
        keys = [(i, _short(str(v), 24)) for i, v in enumerate(pts.categories[:MAX_LEGEND])]
    return [go.Scatter(x=[None], y=[None], mode="markers", name=text, showlegend=True,
                       marker={"size": 9, "color": PALETTE[code % len(PALETTE)]},
                       hoverinfo="skip") for code, text in keys]  # fmt: skip


def density_image(dens: Density) -> dict[str, Any]:
    """The grey density layer under the points, as a layout image: a PNG of the grid (log
    counts from light to dark grey, empty cells transparent) that the browser stretches over
    the map's frame, smoothed. Cheaper to send and to draw than a heatmap trace of the grid."""
    counts = dens.counts[::-1]  # row 0 of the grid is the bottom; row 0 of an image the top
    z = np.log1p(counts.astype(np.float32))
    t = (z / z.max() if z.max() > 0 else z)[..., None]
    rgb = np.asarray(DENSITY_LO, np.float32) * (1 - t) + np.asarray(DENSITY_HI, np.float32) * t
    alpha = np.where(counts > 0, 255, 0).astype(np.uint8)[..., None]
    rgba = np.concatenate([np.rint(rgb).astype(np.uint8), alpha], axis=-1)
    buf = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buf, "PNG", optimize=True)
    ny, nx = counts.shape
    return {
        "source": "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode(),
        "xref": "x", "yref": "y", "x": dens.x0, "y": dens.y0 + ny * dens.dy,
        "sizex": nx * dens.dx, "sizey": ny * dens.dy, "xanchor": "left", "yanchor": "top",
        "sizing": "stretch", "layer": "below", "name": DENSITY,
    }  # fmt: skip


def _point_traces(pts: MapPoints, color_by: str | None) -> list[tuple[str, dict[str, Any]]]:
    """(role, trace) for the points: one trace, or the muted context and the selection's rows."""
    n = len(pts.row_id)
    every = np.ones(n, dtype=bool)
    # an object array, not a list: plotly validates a list of 50k strings one by one (~0.5 s)
    captions = np.asarray(pts.caption, dtype=object)
    groups = [(POINTS, every)] if pts.inside is None else [(CONTEXT, ~pts.inside),
                                                           (POINTS, pts.inside)]  # fmt: skip
    out = []
    for role, keep in groups:
        marker = (
            {"size": _marker_size(n), "color": MUTED, "opacity": 0.45}
            if role == CONTEXT
            else _marker(pts, keep, color_by, n)
        )
        trace = dict(  # a dict: plotly deep-copies a trace object's arrays on go.Figure (~0.5 s)
            type="scattergl",
            x=pts.x[keep],
            y=pts.y[keep],
            mode="markers",
            marker=marker,
            customdata=pts.row_id[keep].astype(np.int32),
            hovertext=captions[keep],
            hovertemplate="%{hovertext}<extra>row %{customdata}</extra>",
            showlegend=False,
            name="outside the selection" if role == CONTEXT else "rows",
        )
        out.append((role, trace))
    return out


def _axes(shown: tuple[float, ...] | None) -> tuple[tuple[float, ...] | None, dict, dict]:
    """(the padded x0, x1, y0, y1 ranges or None, the x axis, the y axis)."""
    axis = {"showgrid": False, "zeroline": False, "showticklabels": False, "title": None}
    if not shown:
        return None, axis, axis
    # room for the labels of clusters at the edge
    pad_x, pad_y = (shown[1] - shown[0]) * 0.1 or 1, (shown[3] - shown[2]) * 0.06 or 1
    ranges = (shown[0] - pad_x, shown[1] + pad_x, shown[2] - pad_y, shown[3] + pad_y)
    return (ranges, {**axis, "range": [ranges[0], ranges[1]]},
            {**axis, "range": [ranges[2], ranges[3]]})  # fmt: skip


def _labels_trace(placed: list[dict[str, Any]]) -> go.Scatter:
    """The cluster names that fit; a click on one selects its cluster."""
    return go.Scatter(
        x=[c["x"] for c in placed],
        y=[c["y"] for c in placed],
        mode="markers+text",
        text=[c["text"] for c in placed],
        textposition="middle center",
        cliponaxis=False,
        textfont={
            "size": 12,
            "color": "#1f2430",
            "family": "Inter, sans-serif",
            "weight": 600,
            "shadow": "0 0 3px #fff, 0 0 2px #fff",
        },  # fmt: skip
        marker={"size": 22, "color": "rgba(255,255,255,0.55)", "line": {"width": 0}},
        customdata=[c["cluster"] for c in placed],
        hovertext=[c["label"] for c in placed],
        hovertemplate="%{hovertext}<extra>click to select cluster %{customdata}</extra>",
        showlegend=False,
        name="clusters",
    )


def _layout(fig: go.Figure, axes: tuple[dict, dict], color_by: str | None, legend: bool,
            polygon: tuple[tuple[float, float], ...], images: list[dict]) -> None:  # fmt: skip
    """Axes, size, the colour legend under the map, the drawn region's outline and the
    density image."""
    shapes = []
    if polygon:
        path = "M " + " L ".join(f"{x},{y}" for x, y in polygon) + " Z"
        shapes.append({"type": "path", "path": path, "line": {"color": "#e4572e", "width": 2,
                       "dash": "dot"}, "fillcolor": "rgba(228,87,46,0.06)"})  # fmt: skip
    fig.update_layout(
        xaxis=axes[0],
        yaxis=axes[1],
        height=HEIGHT,
        margin={"l": 4, "r": 4, "t": 4, "b": 4},
        showlegend=legend,
        legend={
            "orientation": "h",
            "yanchor": "top",
            "y": -0.01,
            "x": 0,
            "itemclick": False,
            "itemdoubleclick": False,
            "font": {"size": 11},
            "title": {"text": f"Colour: {'cluster' if color_by == 'cluster' else color_by}"},
        },
        plot_bgcolor="white",
        dragmode="select",
        hovermode="closest",
        hoverlabel={"namelength": 0, "bgcolor": "white", "font": {"size": 12}},
        shapes=shapes,
        images=images,
        uirevision="map",
    )


def figure(
    pts: MapPoints,
    frame: tuple[float, float, float, float] | None,
    color_by: str | None = "cluster",
    labels: list[dict[str, Any]] | None = None,
    dens: Density | None = None,
    polygon: tuple[tuple[float, float], ...] = (),
    view: tuple[float, ...] | None = None,
) -> tuple[go.Figure, list[str]]:
    """The figure and the role of each trace (``points``, ``context``, ``labels``,
    ``legend``), by curve number, so a click on it can be told apart. The density layer is a
    layout image (:func:`density_image`), not a trace."""
    traces: list[Any] = []
    roles: list[str] = []
    for role, trace in _point_traces(pts, color_by):
        traces.append(trace)
        roles.append(role)
    ranges, axis_x, axis_y = _axes(view or frame)
    legend = _legend(pts, color_by, labels)
    if labels and ranges:  # those that fit without colliding; the picker lists them all
        traces.append(_labels_trace(place_labels(labels, ranges)))
        roles.append(LABELS)
    traces += legend
    roles += [LEGEND] * len(legend)
    fig = go.Figure(traces)
    images = [density_image(dens)] if dens is not None else []
    _layout(fig, (axis_x, axis_y), color_by, bool(legend), polygon, images)
    return fig, roles


def thin(pts: MapPoints, dens: Density, per_cell: int = PER_CELL) -> MapPoints:
    """Fewer drawn points where the density layer already shows the mass: each cell keeps
    about ``per_cell`` of its sampled points (picked by hashed row id, so the same ones every
    run); sparse cells keep all of theirs, so outliers stay visible, and points inside the
    Selection are all kept. Less to send and to draw; selections still cover every row."""
    n = len(pts.row_id)
    if n == 0:
        return pts
    ny, nx = dens.counts.shape  # cells of THIN_CELLS x THIN_CELLS density cells
    ix = np.clip(np.floor((pts.x - dens.x0) / dens.dx), 0, nx - 1).astype(np.int64) // THIN_CELLS
    iy = np.clip(np.floor((pts.y - dens.y0) / dens.dy), 0, ny - 1).astype(np.int64) // THIN_CELLS
    nx = -(-nx // THIN_CELLS)
    cell = iy * nx + ix
    in_cell = np.bincount(cell)[cell]
    mixed = pts.row_id.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)  # wraps: a hash
    u = (mixed >> np.uint64(40)).astype(np.float64) / float(1 << 24)
    keep = u * in_cell < per_cell
    if pts.inside is not None:
        keep |= pts.inside
    if keep.all():
        return pts
    return replace(
        pts,
        row_id=pts.row_id[keep],
        x=pts.x[keep],
        y=pts.y[keep],
        caption=[c for c, k in zip(pts.caption, keep, strict=True) if k],
        color=None if pts.color is None else pts.color[keep],
        inside=None if pts.inside is None else pts.inside[keep],
    )


def placeholder() -> go.Figure:
    """An empty map of the same size, drawn before the map's queries run: its arrival makes the
    browser fetch and compile plotly.js (a 4.7 MB lazy chunk) and start WebGL while the server
    computes, instead of after the figure arrives."""
    axis = {"showgrid": False, "zeroline": False, "showticklabels": False, "title": None}
    fig = go.Figure(go.Scattergl(x=[], y=[], mode="markers", hoverinfo="skip"))
    fig.update_layout(
        xaxis=axis, yaxis=axis, height=HEIGHT, margin={"l": 4, "r": 4, "t": 4, "b": 4},
        plot_bgcolor="white", showlegend=False,
        annotations=[{"text": "Reading the map…", "showarrow": False, "x": 0.5, "y": 0.5,
                      "xref": "paper", "yref": "paper", "font": {"color": "#8a8f9c"}}],
    )  # fmt: skip
    return fig


def _short(label: str, chars: int = 28) -> str:
    return label if len(label) <= chars else label[: chars - 1] + "…"
