"""The map's lasso or box as SQL: a polygon simplified to at most ``MAX_VERTICES`` vertices,
compiled to a point-in-polygon test over the map columns (the Selection's ``polygon`` part).
"""

from __future__ import annotations

from typing import Any

from backend.query_errors import BadSelection

MAP_X, MAP_Y = "map_x", "map_y"
MAX_VERTICES = 64  # each vertex costs one comparison per row: 64 keep 10^6 rows under 0.5 s


def simplify(pts: list[tuple[float, float]], most: int = MAX_VERTICES) -> list[tuple[float, float]]:
    """The lasso path with at most ``most`` vertices and (nearly) the same shape
    (Douglas-Peucker with a growing tolerance): a drawn lasso has hundreds of points."""
    if len(pts) <= most:
        return pts
    import numpy as np
    from skimage.measure import approximate_polygon

    ring = np.asarray([*pts, pts[0]], dtype=np.float64)
    tol = float(np.ptp(ring, axis=0).max()) * 1e-3
    while True:
        out = approximate_polygon(ring, tol)
        if len(out) - 1 <= most:
            break
        tol *= 1.5
    kept = [(float(x), float(y)) for x, y in out[:-1]]
    if len(kept) < 3:  # pathological: fall back to every k-th point
        kept = pts[:: -(-len(pts) // most)]
    return kept


def polygon_area(poly: tuple[tuple[float, float], ...]) -> float:
    """Absolute area by the shoelace formula (zero for a line or a point)."""
    n = len(poly)
    twice = sum(poly[i][0] * poly[(i + 1) % n][1] - poly[(i + 1) % n][0] * poly[i][1]
                for i in range(n))  # fmt: skip
    return abs(twice) / 2


def polygon_where(
    poly: tuple[tuple[float, float], ...], columns: dict[str, str]
) -> tuple[str, list[Any]]:
    """Point-in-polygon over the map columns of every row (even-odd ray casting), behind a
    bounding-box test so DuckDB's zone maps and a cheap comparison discard most rows first."""
    if MAP_X not in columns or MAP_Y not in columns:
        raise BadSelection("this dataset has no map yet: run `python -m backend map NAME`")
    pts = [(float(x), float(y)) for x, y in poly]
    if len(pts) > 1 and pts[0] == pts[-1]:
        pts = pts[:-1]
    if len(pts) < 3 or not all(
        map(lambda p: all(v == v and abs(v) != float("inf") for v in p), pts)
    ):
        raise BadSelection("a map region needs at least three finite points")
    if polygon_area(tuple(pts)) <= 1e-12:
        raise BadSelection("the map region has no area: drag a box or draw a lasso around points")
    pts = simplify(pts)
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    x, y = f'"{MAP_X}"', f'"{MAP_Y}"'  # plain names: nothing to escape
    params: list[Any] = [min(xs), max(xs), min(ys), max(ys)]
    edges: list[str] = []
    for i, (xi, yi) in enumerate(pts):
        xj, yj = pts[i - 1]
        if yi == yj:  # a horizontal edge never crosses a horizontal ray
            continue
        # crosses when y is between the ends and the ray from (x, y) to +inf meets the edge
        edges.append(f"(({y} > ?) <> ({y} > ?) AND {x} < (? * ({y} - ?) + ?))::INT")
        params += [yi, yj, (xj - xi) / (yj - yi), yi, xi]
    bbox = f"{x} BETWEEN ? AND ? AND {y} BETWEEN ? AND ?"
    return f"({bbox} AND ({' + '.join(edges)}) % 2 = 1)", params


def polygon_from_event(selection: dict[str, Any] | None) -> tuple[tuple[float, float], ...]:
    """The map region of a plotly selection event: the last box (its four corners) or lasso
    (its path), from the drawn GEOMETRY, never from the list of selected points (a big chart
    sends that list empty). () when the event holds no box or lasso; raises BadSelection for
    a shape with no area (a click-drag of zero size, a lasso along a line)."""
    if not selection:
        return ()
    shapes = [("box", s) for s in selection.get("box") or []]
    shapes += [("lasso", s) for s in selection.get("lasso") or []]
    if not shapes:
        return ()
    kind, shape = shapes[-1]
    xs = [float(v) for v in shape.get("x") or []]
    ys = [float(v) for v in shape.get("y") or []]
    if kind == "box":
        if len(xs) < 2 or len(ys) < 2:
            raise BadSelection("the box has no corners")
        lo_x, hi_x, lo_y, hi_y = min(xs), max(xs), min(ys), max(ys)
        poly = ((lo_x, lo_y), (hi_x, lo_y), (hi_x, hi_y), (lo_x, hi_y))
    else:
        poly = tuple(zip(xs, ys, strict=False))
    polygon_where(poly, {MAP_X: "DOUBLE", MAP_Y: "DOUBLE"})  # raises for a degenerate shape
    return poly
