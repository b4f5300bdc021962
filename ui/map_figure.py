"""The map as a plotly figure: density layer, points, cluster labels, the selected region.

Pure data → figure (no Streamlit), so the benchmark measures the very figure the page sends.
Arrays go in as float32/int numpy arrays: plotly writes them as compact base64 typed arrays.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.colors import qualitative

from backend.mapview import Density, MapPoints

POINTS, CONTEXT, LABELS, DENSITY = "points", "context", "labels", "density"
MAX_LABELS = 14
PALETTE = qualitative.Dark24 + qualitative.Light24
MUTED = "#c9ccd3"
HEIGHT = 620


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
    ``density``), by curve number, so a click on it can be told apart."""
    traces: list[Any] = []
    roles: list[str] = []
    if dens is not None:
        z = np.log1p(dens.counts.astype(np.float32))
        z[dens.counts == 0] = np.nan  # empty cells stay transparent
        traces.append(
            go.Heatmap(
                z=z,
                x0=dens.x0 + dens.dx / 2,
                dx=dens.dx,
                y0=dens.y0 + dens.dy / 2,
                dy=dens.dy,
                colorscale=[[0, "#eef0f4"], [1, "#5b6170"]],
                showscale=False,
                hoverinfo="skip",
                zsmooth="best",
            )
        )
        roles.append(DENSITY)
    n = len(pts.row_id)
    every = np.ones(n, dtype=bool)
    groups = [(POINTS, every)] if pts.inside is None else [(CONTEXT, ~pts.inside),
                                                           (POINTS, pts.inside)]  # fmt: skip
    for role, keep in groups:
        marker = (
            {"size": _marker_size(n), "color": MUTED, "opacity": 0.45}
            if role == CONTEXT
            else _marker(pts, keep, color_by, n)
        )
        traces.append(
            go.Scattergl(
                x=pts.x[keep],
                y=pts.y[keep],
                mode="markers",
                marker=marker,
                customdata=pts.row_id[keep].astype(np.int32),
                hovertext=[c for c, k in zip(pts.caption, keep, strict=True) if k],
                hovertemplate="%{hovertext}<extra>row %{customdata}</extra>",
                showlegend=False,
                name="outside the selection" if role == CONTEXT else "rows",
            )
        )
        roles.append(role)
    if labels:  # the biggest clusters only: more labels overlap; the picker lists them all
        labels = sorted(labels, key=lambda c: -c.get("size", 0))[:MAX_LABELS]
        traces.append(
            go.Scatter(
                x=[c["x"] for c in labels],
                y=[c["y"] for c in labels],
                mode="markers+text",
                text=[_short(c["label"]) for c in labels],
                textposition="middle center",
                cliponaxis=False,
                textfont={"size": 12, "color": "#1f2430", "family": "Inter, sans-serif",
                          "weight": 600, "shadow": "0 0 3px #fff, 0 0 2px #fff"},  # fmt: skip
                marker={"size": 22, "color": "rgba(255,255,255,0.55)",
                        "line": {"width": 0}},  # fmt: skip
                customdata=[c["cluster"] for c in labels],
                hovertemplate="%{text}<extra>click to select cluster %{customdata}</extra>",
                showlegend=False,
                name="clusters",
            )
        )
        roles.append(LABELS)
    fig = go.Figure(traces)
    axis = {"showgrid": False, "zeroline": False, "showticklabels": False, "title": None}
    shown = view or frame
    if shown:
        # room for the labels of clusters at the edge
        pad_x, pad_y = (shown[1] - shown[0]) * 0.1 or 1, (shown[3] - shown[2]) * 0.06 or 1
        axis_x = {**axis, "range": [shown[0] - pad_x, shown[1] + pad_x]}
        axis_y = {**axis, "range": [shown[2] - pad_y, shown[3] + pad_y]}
    else:
        axis_x = axis_y = axis
    shapes = []
    if polygon:
        path = "M " + " L ".join(f"{x},{y}" for x, y in polygon) + " Z"
        shapes.append({"type": "path", "path": path, "line": {"color": "#e4572e", "width": 2,
                       "dash": "dot"}, "fillcolor": "rgba(228,87,46,0.06)"})  # fmt: skip
    fig.update_layout(
        xaxis=axis_x,
        yaxis=axis_y,
        height=HEIGHT,
        margin={"l": 4, "r": 4, "t": 4, "b": 4},
        plot_bgcolor="white",
        dragmode="select",
        hovermode="closest",
        hoverlabel={"namelength": 0, "bgcolor": "white", "font": {"size": 12}},
        shapes=shapes,
        uirevision="map",
    )
    return fig, roles


def _short(label: str, chars: int = 28) -> str:
    return label if len(label) <= chars else label[: chars - 1] + "…"
